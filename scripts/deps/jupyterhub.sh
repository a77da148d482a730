#!/usr/bin/env bash
# JupyterHub 5.x, KubeSpawner 7 (the spawner hook's slug, the kube-apiserver spawn test) and pytest
# (the authenticator's and the hook's tests) in one cached venv, .cache/venv-hub; and
# configurable-http-proxy (an npm devDependency) for the hub's proxy. Idempotent: a stamp file
# records what was installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.cache/venv-hub"
spec="jupyterhub==5.5.4 jupyterhub-kubespawner==7.1.0 pytest==8.4.2"
stamp="$venv/.installed"

if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$spec" ]]; then
  py=""
  for c in python3.11 /root/.pyenv/versions/3.11*/bin/python3 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
      py="$(command -v "$c")"; break
    fi
  done
  [[ -n "$py" ]] || { echo "jupyterhub.sh: no python >= 3.9 found" >&2; exit 1; }
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
