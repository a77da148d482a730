"""omnisci-handoff for JupyterHub without Kubernetes (local-process, systemd, TLJH spawners).

The non-Kubernetes counterpart of the service's admission webhook: before a single-user server
starts, give it the OmniSci connection env vars and a Jupyter config that enables
jupyterlab-omnisci's server extension with ``session_file`` pointing at the user's session file in
the service's local store (``store.backend: local``). The extension re-reads that file on every
``GET /omnisci/session``, so a later handoff reaches a running server without a restart; the
connection env vars are fixed when the server starts.

    # jupyterhub_config.py
    import sys
    sys.path.insert(0, "/opt/omnisci-handoff/contrib/jupyterhub")
    from omnisci_handoff_hook import OmnisciHandoffHook
    c.Spawner.pre_spawn_hook = OmnisciHandoffHook(store_dir="/var/lib/omnisci-handoff")

The store layout (see the service's src/store/local.ts) is ``<store_dir>/users/<slug>/`` holding
``state.json`` and the session file, where ``<slug>`` is KubeSpawner 7's ``safe_slug`` of the hub
user name. Security model and setup: docs/non-kubernetes.md.
"""

import hashlib
import json
import os
import re
import tempfile

try:  # KubeSpawner's own implementation when it is installed, so both sides agree by construction.
    from kubespawner.slugs import safe_slug
except ImportError:
    _HASH_LENGTH = 8
    _VALID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")  # a DNS label (RFC 1035 and 1123)

    def _extract_safe_name(name, max_length):
        safe = re.sub(r"[^a-z0-9]+", "-", name.lower())
        safe = safe.lstrip("-")[:max_length].rstrip("-")
        if safe and not "a" <= safe[0] <= "z":
            safe = "x-" + safe[: max_length - 2]
        return safe or "x"

    def _strip_and_hash(name, max_length):
        name_length = max_length - (_HASH_LENGTH + 3)
        if name_length < 1:
            raise ValueError(f"Cannot make safe names shorter than {_HASH_LENGTH + 4}")
        digest = hashlib.sha256(name.encode("utf8")).hexdigest()[:_HASH_LENGTH]
        # '---' never occurs in a name that is used as is, so slugs cannot collide.
        return f"{_extract_safe_name(name, name_length)}---{digest}"

    def safe_slug(name, max_length=None):
        """KubeSpawner 7's safe_slug with its default validity check (a DNS label)."""
        if "--" not in name and _VALID.fullmatch(name) and (max_length is None or len(name) <= max_length):
            return name
        return _strip_and_hash(name, max_length or 32)


STATE_FILE = "state.json"
CONFIG_FILE = "omnisci-handoff.json"
SERVER_EXTENSION = "jupyterlab_omnisci.serverextension"
DEFAULT_ENV_NAMES = {"protocol": "OMNISCI_PROTOCOL", "host": "OMNISCI_HOST", "port": "OMNISCI_PORT"}


def _write_atomic(path, content):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _json(obj):
    return json.dumps(obj, indent=2) + "\n"


class OmnisciHandoffHook:
    """A ``Spawner.pre_spawn_hook``; its methods also serve an admin's own hook or ``Spawner.environment``.

    store_dir:         the service's ``store.local.dir``.
    session_file_name: the service's ``notebook.sessionFileName``.
    env_names:         the service's ``notebook.env`` (names of the protocol/host/port env vars).
    config_dir:        where the per-user Jupyter config dirs are written (default ``<store_dir>/jupyter``).
    """

    def __init__(self, store_dir, session_file_name="session", env_names=None, config_dir=None):
        self.store_dir = os.path.abspath(store_dir)
        self.session_file_name = session_file_name
        self.env_names = {**DEFAULT_ENV_NAMES, **(env_names or {})}
        self.config_dir = os.path.abspath(config_dir or os.path.join(self.store_dir, "jupyter"))

    def user_dir(self, name):
        return os.path.join(self.store_dir, "users", safe_slug(name))

    def session_file(self, name):
        return os.path.join(self.user_dir(name), self.session_file_name)

    def record(self, name):
        """The user's stored record (state.json), or None before their first handoff."""
        try:
            with open(os.path.join(self.user_dir(name), STATE_FILE)) as f:
                record = json.load(f)
        except FileNotFoundError:
            return None
        # Slugs never collide; refuse a record of another user should the directory have been tampered with.
        if record.get("user") != name:
            raise ValueError(f"{STATE_FILE} of {safe_slug(name)} belongs to another user")
        return record

    def connection_env(self, name):
        """OMNISCI_PROTOCOL/HOST/PORT (configured names) from the stored connection; empty before any handoff."""
        record = self.record(name)
        if record is None:
            return {}
        conn = record["connection"]
        return {self.env_names[k]: str(conn[k]) for k in ("protocol", "host", "port")}

    def jupyter_config_files(self, name):
        """The same files as the service's jupyterConfigFiles(), for this user's session file."""
        manager = _json(
            {
                "OmniSciSessionManager": {
                    "session_file": self.session_file(name),
                    **{k: self.env_names[k] for k in ("protocol", "host", "port")},
                }
            }
        )
        return {
            f"jupyter_notebook_config.d/{CONFIG_FILE}": _json({"NotebookApp": {"nbserver_extensions": {SERVER_EXTENSION: True}}}),
            f"jupyter_server_config.d/{CONFIG_FILE}": _json({"ServerApp": {"jpserver_extensions": {SERVER_EXTENSION: True}}}),
            "jupyter_notebook_config.json": manager,
            "jupyter_server_config.json": manager,
        }

    def write_jupyter_config(self, name):
        """Writes the user's Jupyter config dir (0700, files 0600) and returns its path."""
        target = os.path.join(self.config_dir, safe_slug(name))
        for rel, content in self.jupyter_config_files(name).items():
            path = os.path.join(target, rel)
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            _write_atomic(path, content)
        return target

    def environment(self, name, inherited_config_path=""):
        """Env vars for the user's server: the connection and JUPYTER_CONFIG_PATH (ours first)."""
        config_path = os.pathsep.join(p for p in (self.write_jupyter_config(name), inherited_config_path) if p)
        return {**self.connection_env(name), "JUPYTER_CONFIG_PATH": config_path}

    def __call__(self, spawner):
        env = dict(spawner.environment)
        env.update(self.environment(spawner.user.name, env.get("JUPYTER_CONFIG_PATH", "")))
        spawner.environment = env
