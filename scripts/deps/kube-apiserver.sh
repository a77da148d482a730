#!/usr/bin/env bash
# Builds the test control plane (etcd + kube-apiserver in one binary, test/k8s/controlplane) from the
# Go modules k8s.io/kubernetes and go.etcd.io/etcd/server/v3, for the tests against a real API server.
# The binary is cached outside the repo, keyed by the Kubernetes version and the wrapper's sources, and
# linked as .cache/k8s/controlplane. The first build takes long (about 15 min on 2 cores): it prints
# its time; a cached run prints nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$root/test/k8s/controlplane"
source "$root/scripts/lib.sh"
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "kube-apiserver.sh: Go (>= 1.26) is required" >&2; exit 1; }

version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$src/go.mod")"
key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
dir="${OMNISCI_K8S_CACHE:-$HOME/.cache/omnisci-handoff/k8s}/$version-$key"
link="$root/.cache/k8s/controlplane"

cache_lock "$dir"
if [[ ! -x "$dir/controlplane" ]]; then
  start=$(date +%s)
  go_build_k8s "$src" "$dir/controlplane"
  echo "kube-apiserver $version + etcd built in $(( $(date +%s) - start ))s: $dir/controlplane"
fi
mkdir -p "$(dirname "$link")"
ln -sfn "$dir/controlplane" "$link"
