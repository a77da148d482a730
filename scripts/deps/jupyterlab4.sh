#!/usr/bin/env bash
# omnisci-handoff-jupyter (jupyter/): today's single-user server, jupyter_server 2 + JupyterLab 4 +
# ipykernel + pyheavydb (import name heavydb) + jupyterhub (its jupyterhub-singleuser, for the tests
# that spawn this server from a real JupyterHub 5), in a cached venv (.cache/venv-jlab4), with the wheel
# built from jupyter/ (its lab extension by @jupyterlab/builder: npm ci + `jupyter labextension
# build`, then hatchling + hatch-jupyter-builder) and installed into it. The wheel is left in
# .cache/jlab4-dist/. The venv also runs the HeavyDB stand-in (scripts/demo/heavydb/).
#
# pyheavydb 8.0.1.post1 imports importlib_metadata without declaring it, hence the extra pin.
#
# Idempotent: .venv-spec records the pip pins, .installed the hash of jupyter/'s sources; an edit
# under jupyter/ rebuilds and reinstalls the wheel only. Node: the repo's Node 24
# (node_modules/node, an npm devDependency) when present, else `node` on PATH (>= 18).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$root/scripts/lib.sh"
venv="$root/.cache/venv-jlab4"
dist="$root/.cache/jlab4-dist"
pkg="$root/jupyter"
mkdir -p "$root/.cache"
# One run at a time (npm test's pretest runs every deps script; two runs would rebuild the same venv).
exec 9>"$root/.cache/.jupyterlab4.lock"
flock 9

spec="jupyterlab==4.5.11 jupyter_server==2.21.1 ipykernel==7.4.0 jupyterhub==5.5.4 pyheavydb==8.0.1.post1 importlib-metadata==10.2.0 hatchling==1.33.0 hatch-jupyter-builder==0.10.0 pytest==8.4.2"

# What goes into the wheel: everything under jupyter/ but build outputs, node_modules and tests.
sources_hash() {
  (cd "$pkg" && find . -type f \
    -not -path './node_modules/*' -not -path './omnisci_handoff_jupyter/labextension/*' \
    -not -path './tests/*' -not -path '*/__pycache__/*' -not -path './.pytest_cache/*' \
    -not -path './dist/*' -not -path './build/*' -not -path '*.egg-info/*' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

if [[ ! -x "$venv/bin/python" || ! -f "$venv/.venv-spec" || "$(cat "$venv/.venv-spec")" != "$spec" ]]; then
  py="$(find_python)"
  echo "jupyterlab4.sh: installing JupyterLab 4, jupyter_server 2, ipykernel, JupyterHub 5 and pyheavydb into .cache/venv-jlab4 (pip)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  # shellcheck disable=SC2086
  nice -n 10 "$venv/bin/pip" install --quiet --disable-pip-version-check $spec
  echo "$spec" > "$venv/.venv-spec"
fi

src="$(sources_hash)"
if [[ ! -f "$venv/.installed" || "$(cat "$venv/.installed")" != "$src" ]] || ! compgen -G "$dist/omnisci_handoff_jupyter-*.whl" >/dev/null; then
  node_bin="$root/node_modules/node/bin"
  PATH="$venv/bin:$([[ -x "$node_bin/node" ]] && echo "$node_bin:")$PATH"
  export PATH
  command -v npm >/dev/null || { echo "jupyterlab4.sh: npm not found" >&2; exit 1; }
  echo "jupyterlab4.sh: building omnisci-handoff-jupyter's lab extension (npm ci, @jupyterlab/builder)"
  rm -rf "$pkg/omnisci_handoff_jupyter/labextension" "$dist"
  log="$(cd "$pkg" && nice -n 10 npm ci --no-audit --no-fund --loglevel=error 2>&1 && nice -n 10 npm run --silent build 2>&1)" ||
    { echo "$log" >&2; echo "jupyterlab4.sh: building the lab extension failed" >&2; exit 1; }
  echo "jupyterlab4.sh: building and installing the omnisci-handoff-jupyter wheel"
  # The lab extension is built above; the wheel build only checks it is there.
  HATCH_JUPYTER_BUILDER_SKIP_NPM=1 nice -n 10 "$venv/bin/pip" wheel --quiet --disable-pip-version-check \
    --no-build-isolation --no-deps "$pkg" -w "$dist"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall "$dist"/omnisci_handoff_jupyter-*.whl
  for cmd in "server extension" labextension; do
    # shellcheck disable=SC2086
    listed="$("$venv/bin/jupyter" $cmd list 2>&1)"
    grep -q 'omnisci[-_]handoff[-_]jupyter.*enabled' <<<"$listed" ||
      { echo "$listed" >&2; echo "jupyterlab4.sh: jupyter $cmd list does not show omnisci-handoff-jupyter enabled" >&2; exit 1; }
  done
  echo "$src" > "$venv/.installed"
fi

# One python start (the `jupyter ... list` commands take seconds each): the package imports, the
# wheel's server-extension switch and lab extension are in the venv's prefix.
"$venv/bin/python" - "$(basename "$dist"/omnisci_handoff_jupyter-*.whl)" <<'PY'
import json, os, sys
from importlib.metadata import version
import omnisci_handoff_jupyter  # noqa: F401
switch = os.path.join(sys.prefix, "etc/jupyter/jupyter_server_config.d/omnisci_handoff_jupyter.json")
assert json.load(open(switch))["ServerApp"]["jpserver_extensions"]["omnisci_handoff_jupyter"] is True, switch
lab = os.path.join(sys.prefix, "share/jupyter/labextensions/omnisci-handoff-jupyter/package.json")
assert json.load(open(lab))["jupyterlab"]["_build"]["load"], lab
print(f"{sys.argv[1]} on jupyterlab {version('jupyterlab')}, jupyter_server {version('jupyter_server')}, pyheavydb {version('pyheavydb')}")
PY
