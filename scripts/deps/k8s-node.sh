#!/usr/bin/env bash
# Builds the node half of the one-node test cluster (test/support/k8s-node.ts, docs/testing-kubernetes.md):
#  - test/k8s/node: kube-scheduler, kube-controller-manager, kubelet, kube-proxy and the cluster DNS (dns.go) in one binary, from
#    the same k8s.io/kubernetes module version as test/k8s/controlplane (whose build shares the Go
#    build cache: built after it, this one compiles mostly the node packages);
#  - nodeinit (PID 1 of the node's namespaces) and the static programs of the test images (pause, echo).
# containerd, runc and the CNI plugins are Debian's packages (checked here, installed when root and missing).
# Everything is cached outside the repo, keyed by its sources, and linked under .cache/k8s/. The first
# build prints its time; a cached run prints nothing. Go builds run under `nice -n 19`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$root/test/k8s/node"
source "$root/scripts/lib.sh"
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "k8s-node.sh: Go (>= 1.26) is required" >&2; exit 1; }
cache="${OMNISCI_K8S_CACHE:-$HOME/.cache/omnisci-handoff/k8s}"
mkdir -p "$root/.cache/k8s"

# The runtime: containerd (>= 1.6, CRI v1), runc, CNI plugins (bridge, host-local, loopback, portmap), iptables.
missing=()
for p in containerd:containerd containerd-shim-runc-v2:containerd runc:runc iptables:iptables conntrack:conntrack \
  /usr/lib/cni/bridge:containernetworking-plugins nsenter:util-linux; do
  if [[ "${p%%:*}" == /* ]]; then [[ -x "${p%%:*}" ]] || missing+=("${p#*:}"); else command -v "${p%%:*}" >/dev/null || missing+=("${p#*:}"); fi
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "k8s-node.sh: installed ${missing[*]}"
  else
    echo "k8s-node.sh: missing packages (only needed for test/node): ${missing[*]}" >&2
  fi
fi

# The Kubernetes node binary.
version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$src/go.mod")"
key="$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-12)"
dir="$cache/node-$version-$key"
cache_lock "$dir"
if [[ ! -x "$dir/node" ]]; then
  start=$(date +%s)
  # Static like a release build (kubelet's release build uses cgo only for os/user and DNS lookups).
  go_build_k8s "$src" "$dir/node"
  echo "kube-scheduler, kube-controller-manager, kubelet, kube-proxy $version built in $(( $(date +%s) - start ))s: $dir/node"
fi
ln -sfn "$dir/node" "$root/.cache/k8s/node"

# nodeinit and the image programs (small, no dependencies).
tkey="$(cat "$src/nodeinit/main.go" "$src/images/pause/main.go" "$src/images/echo/main.go" | sha256sum | cut -c1-12)"
tdir="$cache/node-tools-$tkey"
cache_lock "$tdir"
if [[ ! -x "$tdir/echo" ]]; then
  start=$(date +%s)
  for p in nodeinit images/pause images/echo; do
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 19 go build -trimpath -ldflags "-s -w" -o "$tdir/$(basename "$p").tmp" "./$p")
    mv "$tdir/$(basename "$p").tmp" "$tdir/$(basename "$p")"
  done
  echo "nodeinit, pause, echo built in $(( $(date +%s) - start ))s: $tdir"
fi
ln -sfn "$tdir" "$root/.cache/k8s/node-tools"
