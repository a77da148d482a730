#!/usr/bin/env bash
# The released jupyterlab-omnisci 3.0.0 as a single-user server: classic notebook 6 + jupyterlab 2
# on python 3.11, in a cached venv (.cache/venv-omnisci). Idempotent: a stamp records what was installed.
#
# Why these pins (scripts/deps/omnisci-extension.requirements.txt, complete, installed --no-deps):
# - importing `jupyterlab_omnisci.serverextension` runs the package __init__, which imports ibis
#   (`ibis.client`: ibis-framework 1.x), altair (`altair.vegalite.v3`: altair 4), pymapd, IPython...
# - ibis 1.4 needs SQLAlchemy < 1.4 (sa.Binary); JupyterHub >= 4 needs SQLAlchemy >= 1.4, so the
#   singleuser entry point comes from jupyterhub 3.1.1 (the last on SQLAlchemy 1.3; a JupyterHub 5
#   hub serves it; classic NotebookApp via JUPYTERHUB_SINGLEUSER_APP).
# - notebook 6.4 + jupyterlab 2 want jupyter_client 7, traitlets < 5.10, jinja2 3.0, nbconvert 6.
# - pymapd 0.25.0 (the newest installable on 3.11) pins pandas 0.25 / pyarrow 0.17, which do not
#   build on 3.11; it is installed --no-deps over pandas 1.5 / pyarrow 17, enough for its import.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.cache/venv-omnisci"
reqs="$root/scripts/deps/omnisci-extension.requirements.txt"
late="pymapd==0.25.0 jupyterlab-omnisci==3.0.0"
spec="$(sha256sum "$reqs" | cut -c1-16) $late"
stamp="$venv/.installed"

if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$spec" ]]; then
  py=""
  for c in python3.11 /root/.pyenv/versions/3.11*/bin/python3; do
    if command -v "$c" >/dev/null 2>&1; then py="$(command -v "$c")"; break; fi
  done
  [[ -n "$py" ]] || { echo "omnisci-extension.sh: python3.11 not found" >&2; exit 1; }
  echo "omnisci-extension.sh: installing jupyterlab-omnisci 3.0.0, notebook 6 and their pins into .cache/venv-omnisci (pip)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  pip=("$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps)
  "${pip[@]}" -r "$reqs"
  # shellcheck disable=SC2086
  "${pip[@]}" $late
  echo "$spec" > "$stamp"
fi
"$venv/bin/python" -W ignore -c 'import jupyterlab_omnisci.serverextension, jupyterhub.singleuser'
echo "jupyterlab-omnisci $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("jupyterlab-omnisci"))') on notebook $("$venv/bin/jupyter-notebook" --version)"
