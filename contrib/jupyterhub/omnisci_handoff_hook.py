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

With ``user_access="group"`` (the service's ``store.local.userAccess: group``: each server runs under
its own unix account, the hub as root) the hook also gives the user's store directory and Jupyter
config directory the user's unix group (setgid, 2750) and their files 0640, so that account, and no
other, can read them. Below the directories the admin names, the hook never follows a symlink, and
it reads and changes only regular files of the store's owner (``state.json`` too, opened non-blocking:
a FIFO there must not freeze the hub): the store is writable by the service's account, which must not
be able to steer root's reads, chown or chmod.

The per-user Jupyter config directories are what each server *executes* its configuration from, so
they never live in the store (the service's account could plant a ``jupyter_server_config.py``
there): by default they are ``<store_dir>-jupyter``, beside it, and the hook refuses a config
directory inside the store, one whose parent is not owned by root (or the hub's own account) or is
writable by others without the sticky bit, and one owned by anybody else.
"""

import errno
import hashlib
import json
import os
import pwd
import re
import secrets
import stat
from contextlib import ExitStack

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
# Far above a record's size (store.maxJtis is at most 1000): a larger file is not the service's.
_MAX_RECORD = 4 << 20
CONFIG_FILE = "omnisci-handoff.json"
SERVER_EXTENSION = "jupyterlab_omnisci.serverextension"
COMPANION_EXTENSION = "omnisci_handoff_jupyter"  # the jupyter_server 2 + JupyterLab 4 companion (jupyter/)
DEFAULT_ENV_NAMES = {"protocol": "OMNISCI_PROTOCOL", "host": "OMNISCI_HOST", "port": "OMNISCI_PORT"}
# The service's SCRATCH_CONFIG (src/notebook/outputs.ts), byte for byte: with allow_hidden, both servers
# prepare ~/.jupyterscratch for the HEAVY.AI web server's session file and heavyai_connect().
SCRATCH_CONFIG = """# omnisci-handoff (notebook.allowHidden): the HEAVY.AI web server writes ~/.jupyterscratch/.omniscisession
# through the contents API, which creates no directory; heavyai_connect() reads .heavyaisession there.
import os

_scratch = os.path.join(os.path.expanduser("~"), ".jupyterscratch")
try:
    os.makedirs(_scratch, mode=0o700, exist_ok=True)
    if not os.path.lexists(os.path.join(_scratch, ".heavyaisession")):
        os.symlink(".omniscisession", os.path.join(_scratch, ".heavyaisession"))
except OSError as e:  # a read-only home must not stop the server
    print(f"omnisci-handoff: cannot prepare {_scratch}: {e}")
"""


_TRUSTED_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_FLAGS = _TRUSTED_DIR_FLAGS | os.O_NOFOLLOW


def _keep(fds, fd):
    """Closes fd when the ExitStack fds ends; returns it."""
    fds.callback(os.close, fd)
    return fd


def _tmp_name():
    return f".tmp-{secrets.token_hex(6)}"


def _open_dir(name, dir_fd=None):
    """A directory fd; a symlink as the last component is refused (ELOOP/ENOTDIR)."""
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _write_atomic(dir_fd, name, content, mode):
    """Writes ``name`` in the directory ``dir_fd`` via a temporary file renamed over it."""
    tmp = _tmp_name()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), mode)  # exact mode, whatever the umask
            f.write(content)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.unlink(tmp, dir_fd=dir_fd)
        raise


def _subdir(parent_fd, name, mode, gid=None, owner=-1):
    """Opens (creating if missing) the directory ``name`` under ``parent_fd`` and sets its mode, and its
    group when gid is given. A missing directory is made under a temporary name, given to ``owner`` and
    renamed in, so the owner (the service, when that is not us) never finds it owned by root; if the
    owner made it meanwhile, theirs is used."""
    try:
        fd = _open_dir(name, parent_fd)
    except FileNotFoundError:
        tmp = _tmp_name()
        os.mkdir(tmp, 0o700, dir_fd=parent_fd)
        made = _open_dir(tmp, parent_fd)
        try:
            os.fchown(made, owner, -1)
            os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        except OSError as e:
            os.rmdir(tmp, dir_fd=parent_fd)
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            os.close(made)
        fd = _open_dir(name, parent_fd)
    try:
        if gid is not None:
            os.fchown(fd, -1, gid)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_own_file(dir_fd, name, owner, what):
    """An fd of the regular file ``name`` of ``owner`` in ``dir_fd``, or None when there is none. Never a
    symlink (ELOOP), a FIFO or device (opened non-blocking, so a FIFO cannot freeze the hub, then refused),
    nor a file of another account (e.g. a hard link to root's): the store is writable by the service's
    account, and root must never be steered to act on, or read, anything else."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != owner:
        os.close(fd)
        raise ValueError(f"{what} is not a regular file of the store's owner")
    return fd


def _check_trusted(fd, path, shared_ok=False):
    """Refuses a directory somebody else could change under the hook: owned by neither root nor the hub's
    account, or writable by group or others (a shared parent such as /tmp only with the sticky bit)."""
    st = os.fstat(fd)
    writable_by_others = st.st_mode & 0o022 and not (shared_ok and st.st_mode & stat.S_ISVTX)
    if st.st_uid not in (0, os.geteuid()) or writable_by_others:
        raise ValueError(f"{path} must belong to root (or the hub's account) and be writable by nobody else: it holds what servers execute")


def _json(obj):
    return json.dumps(obj, indent=2) + "\n"


class OmnisciHandoffHook:
    """A ``Spawner.pre_spawn_hook``; its methods also serve an admin's own hook or ``Spawner.environment``.

    store_dir:         the service's ``store.local.dir``.
    session_file_name: the service's ``notebook.sessionFileName``.
    env_names:         the service's ``notebook.env`` (names of the protocol/host/port env vars).
    env_families:      the service's ``notebook.envFamilies`` (e.g. ["HEAVYAI"]: HEAVYAI_PROTOCOL/HOST/PORT too).
    allow_hidden:      the service's ``notebook.allowHidden`` (ContentsManager.allow_hidden in the Jupyter config).
    relink_url:        the service's ``notebook.relinkUrl`` (OmniSciHandoff.relink_url: where the lab's
                       "Re-link with Immerse" goes once the session expired); None: not set.
    config_dir:        where the per-user Jupyter config dirs are written (default ``<store_dir>-jupyter``),
                       never inside the store; its parent must belong to root or the hub's account.
    user_access:       the service's ``store.local.userAccess``: "none" (one account for all) or "group".
    unix_user:         with "group": spawner -> the unix account the server runs as (default: the hub
                       user name, as LocalProcessSpawner uses it).
    """

    def __init__(
        self,
        store_dir,
        session_file_name="session",
        env_names=None,
        config_dir=None,
        user_access="none",
        unix_user=None,
        env_families=(),
        allow_hidden=False,
        relink_url=None,
    ):
        if user_access not in ("none", "group"):
            raise ValueError(f"user_access must be 'none' or 'group', not {user_access!r}")
        self.store_dir = os.path.abspath(store_dir)
        self.session_file_name = session_file_name
        self.env_names = {**DEFAULT_ENV_NAMES, **(env_names or {})}
        self.env_families = list(env_families)
        self.allow_hidden = allow_hidden
        self.relink_url = relink_url
        self.config_dir = os.path.abspath(config_dir or self.store_dir.rstrip(os.sep) + "-jupyter")
        if os.path.commonpath([os.path.realpath(self.config_dir), os.path.realpath(self.store_dir)]) == os.path.realpath(self.store_dir):
            raise ValueError(f"config_dir {self.config_dir} is inside the store: the service's account could plant Jupyter config there")
        self.user_access = user_access
        self.unix_user = unix_user or (lambda spawner: spawner.user.name)

    def user_dir(self, name):
        return os.path.join(self.store_dir, "users", safe_slug(name))

    def session_file(self, name):
        return os.path.join(self.user_dir(name), self.session_file_name)

    def record(self, name):
        """The user's stored record (state.json), or None before their first handoff. Read (as root, in a
        hub's pre_spawn_hook) only from the store's own directories and a regular file of its owner."""
        with ExitStack() as fds:
            try:
                store = _keep(fds, os.open(self.store_dir, _TRUSTED_DIR_FLAGS))
                user = _keep(fds, _open_dir(safe_slug(name), _keep(fds, _open_dir("users", store))))
            except FileNotFoundError:
                return None
            f = _open_own_file(user, STATE_FILE, os.fstat(store).st_uid, f"{STATE_FILE} of {safe_slug(name)}")
            if f is None:
                return None
            with os.fdopen(f, "rb") as file:
                raw = file.read(_MAX_RECORD + 1)
        if len(raw) > _MAX_RECORD:
            raise ValueError(f"{STATE_FILE} of {safe_slug(name)} is larger than a record can be")
        record = json.loads(raw)
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
        name_sets = [self.env_names] + [{k: f"{f}_{k.upper()}" for k in ("protocol", "host", "port")} for f in self.env_families]
        return {names[k]: str(conn[k]) for names in name_sets for k in ("protocol", "host", "port")}

    def jupyter_config_files(self, name):
        """The same files as the service's jupyterConfigFiles(), for this user's session file."""
        manager = _json(
            {
                "OmniSciSessionManager": {
                    "session_file": self.session_file(name),
                    **{k: self.env_names[k] for k in ("protocol", "host", "port")},
                },
                **({"ContentsManager": {"allow_hidden": True}} if self.allow_hidden else {}),
                **({"OmniSciHandoff": {"relink_url": self.relink_url}} if self.relink_url is not None else {}),
            }
        )
        return {
            f"jupyter_notebook_config.d/{CONFIG_FILE}": _json({"NotebookApp": {"nbserver_extensions": {SERVER_EXTENSION: True}}}),
            f"jupyter_server_config.d/{CONFIG_FILE}": _json(
                {"ServerApp": {"jpserver_extensions": {SERVER_EXTENSION: True, COMPANION_EXTENSION: True}}}
            ),
            "jupyter_notebook_config.json": manager,
            "jupyter_server_config.json": manager,
            **({"jupyter_notebook_config.py": SCRATCH_CONFIG, "jupyter_server_config.py": SCRATCH_CONFIG} if self.allow_hidden else {}),
        }

    def write_jupyter_config(self, name, gid=None):
        """Writes the user's Jupyter config dir and returns its path: 0700, files 0600; with a gid (the
        user's unix group) 2750 group gid, files 0640, and ``config_dir`` itself 0711."""
        dir_mode, file_mode = (0o700, 0o600) if gid is None else (0o2750, 0o640)
        parent, base = os.path.split(self.config_dir)
        os.makedirs(parent, mode=0o700, exist_ok=True)
        with ExitStack() as fds:
            parent_fd = _keep(fds, os.open(parent, _TRUSTED_DIR_FLAGS))
            _check_trusted(parent_fd, parent, shared_ok=True)
            top = _keep(fds, _subdir(parent_fd, base, 0o700 if gid is None else 0o711))
            _check_trusted(top, self.config_dir)
            user = _keep(fds, _subdir(top, safe_slug(name), dir_mode, gid))
            for rel, content in self.jupyter_config_files(name).items():
                sub, file_name = os.path.split(rel)
                target = _keep(fds, _subdir(user, sub, dir_mode, gid)) if sub else user
                _write_atomic(target, file_name, content, file_mode)
        return os.path.join(self.config_dir, safe_slug(name))

    def share_user_dir(self, name, gid):
        """Lets the unix group gid read the user's session file: ``users/<slug>/`` group gid, 2750 (its
        files inherit the group), the session file group gid, 0640; ``<store_dir>`` and ``users/`` 0711.
        A missing directory is made for the owner of ``<store_dir>`` (the service), so a handoff to a
        server started before the first one is readable too. Needs root."""
        with ExitStack() as fds:
            store = _keep(fds, os.open(self.store_dir, _TRUSTED_DIR_FLAGS))
            owner = os.fstat(store).st_uid
            os.fchmod(store, 0o711)
            users = _keep(fds, _subdir(store, "users", 0o711, owner=owner))
            user = _keep(fds, _subdir(users, safe_slug(name), 0o2750, gid, owner))
            # Only the service's own file: never hand root's chown a file linked in from elsewhere.
            f = _open_own_file(user, self.session_file_name, owner, f"the session file of {safe_slug(name)}")
            if f is None:
                return
            _keep(fds, f)
            os.fchown(f, -1, gid)
            os.fchmod(f, 0o640)

    def unix_gid(self, spawner):
        """The primary group of the unix account the spawner's server runs as."""
        account = self.unix_user(spawner)
        try:
            return pwd.getpwnam(account).pw_gid
        except KeyError:
            raise ValueError(f"no unix account {account!r} for hub user {spawner.user.name!r}") from None

    def environment(self, name, inherited_config_path="", gid=None):
        """Env vars for the user's server: the connection and JUPYTER_CONFIG_PATH (ours first)."""
        config_path = os.pathsep.join(p for p in (self.write_jupyter_config(name, gid), inherited_config_path) if p)
        return {**self.connection_env(name), "JUPYTER_CONFIG_PATH": config_path}

    def __call__(self, spawner):
        name = spawner.user.name
        gid = None
        if self.user_access == "group":
            gid = self.unix_gid(spawner)
            self.share_user_dir(name, gid)
        env = dict(spawner.environment)
        env.update(self.environment(name, env.get("JUPYTER_CONFIG_PATH", ""), gid))
        spawner.environment = env
