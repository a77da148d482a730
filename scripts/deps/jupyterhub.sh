#!/usr/bin/env bash
# JupyterHub 5.x, KubeSpawner 7 (the spawner hook's slug, the kube-apiserver spawn test) and pytest
# (the authenticator's and the hook's tests) in one cached venv, .cache/venv-hub; and
# configurable-http-proxy (an npm devDependency) for the hub's proxy. Idempotent: a stamp file
# records what was installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$root/scripts/lib.sh"
venv="$root/.cache/venv-hub"
spec="jupyterhub==5.5.4 jupyterhub-kubespawner==7.1.0 pytest==8.4.2"
stamp="$venv/.installed"

if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$spec" ]]; then
  py="$(find_python)"
  echo "jupyterhub.sh: installing $spec into .cache/venv-hub (pip)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $spec
  echo "$spec" > "$stamp"
fi

# configurable-http-proxy is a devDependency; install node_modules when it is missing.
if [[ ! -x "$root/node_modules/.bin/configurable-http-proxy" ]]; then
  (cd "$root" && npm install --no-audit --no-fund)
fi
"$venv/bin/jupyterhub" --version
