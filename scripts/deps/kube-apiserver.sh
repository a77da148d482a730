#!/usr/bin/env bash
# Builds the test control plane (etcd + kube-apiserver in one binary, test/k8s/controlplane) from the
# Go modules k8s.io/kubernetes and go.etcd.io/etcd/server/v3, for the tests against a real API server.
# The binary is cached outside the repo, keyed by the Kubernetes version and the wrapper's sources, and
# linked as .cache/k8s/controlplane. The first build takes long (about 15 min on 2 cores): it prints
# its time; a cached run prints nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$root/test/k8s/controlplane"
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "kube-apiserver.sh: Go (>= 1.26) is required" >&2; exit 1; }

version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$src/go.mod")"
key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
dir="${OMNISCI_K8S_CACHE:-$HOME/.cache/omnisci-handoff/k8s}/$version-$key"
link="$root/.cache/k8s/controlplane"

if [[ ! -x "$dir/controlplane" ]]; then
  start=$(date +%s)
  mkdir -p "$dir"
  # The version is stamped as a release build would be: helm and clients read it from /version.
  minor="$(cut -d. -f2 <<<"$version")"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$dir/controlplane.tmp" .)
  mv "$dir/controlplane.tmp" "$dir/controlplane"
  echo "kube-apiserver $version + etcd built in $(( $(date +%s) - start ))s: $dir/controlplane"
fi
mkdir -p "$(dirname "$link")"
ln -sfn "$dir/controlplane" "$link"
