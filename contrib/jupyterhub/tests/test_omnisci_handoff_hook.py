"""Tests of the spawner hook. test/integration/jupyterhub-hook.test.ts runs them in the hub venv
(.cache/venv-hub: JupyterHub 5 + KubeSpawner 7 + pytest, scripts/deps/jupyterhub.sh)."""

import importlib.util
import json
import os
import pwd
import signal
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyterhub.spawner import LocalProcessSpawner
from traitlets.config import Config

HOOK = Path(__file__).resolve().parents[1] / "omnisci_handoff_hook.py"
VECTORS = json.loads((Path(__file__).resolve().parents[3] / "test/fixtures/safe-slug.json").read_text("utf8"))


def load_hook(monkeypatch, with_kubespawner):
    """A fresh copy of the hook module; without KubeSpawner it must use its own port of safe_slug."""
    if not with_kubespawner:
        monkeypatch.setitem(sys.modules, "kubespawner", None)
        monkeypatch.setitem(sys.modules, "kubespawner.slugs", None)
    spec = importlib.util.spec_from_file_location(f"hook_{with_kubespawner}", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=[True, False], ids=["kubespawner", "port"])
def hook_module(request, monkeypatch):
    module = load_hook(monkeypatch, request.param)
    assert (module.safe_slug.__module__ == "kubespawner.slugs") is request.param
    return module


@pytest.mark.parametrize("name,expected", VECTORS["default"])
def test_safe_slug_vectors(hook_module, name, expected):
    assert hook_module.safe_slug(name) == expected


@pytest.mark.parametrize("max_length,name,expected", VECTORS["maxLength"])
def test_safe_slug_max_length(hook_module, max_length, name, expected):
    assert hook_module.safe_slug(name, max_length=max_length) == expected


@pytest.mark.parametrize("max_length,name", VECTORS["refused"])
def test_safe_slug_refuses_short_max_length(hook_module, max_length, name):
    with pytest.raises(ValueError):
        hook_module.safe_slug(name, max_length=max_length)


def test_port_equals_kubespawner_on_hostile_names(monkeypatch):
    from kubespawner.slugs import safe_slug

    port = load_hook(monkeypatch, False).safe_slug
    names = VECTORS["hostile"] + ["".join(chr(c) for c in range(i, i + 40)) for i in range(0, 0x800, 37)]
    for name in names:
        assert port(name) == safe_slug(name), repr(name)


def write_store(root, user, slug, connection, session_file="session"):
    """The service's local store layout (src/store/local.ts) for one user."""
    d = root / "users" / slug
    d.mkdir(parents=True, mode=0o700)
    record = {"user": user, "session": "S" * 32, "query": "", "connection": connection, "iat": 1, "jtis": [], "updatedAt": 1}
    (d / "state.json").write_text(json.dumps(record))
    (d / session_file).write_text(json.dumps({"session": "S" * 32, "query": ""}))
    return d


def spawner(name, environment=None):
    config = Config()
    if environment is not None:
        config.Spawner.environment = environment
    return LocalProcessSpawner(user=SimpleNamespace(name=name, url=f"/user/{name}/"), config=config)


def test_pre_spawn_hook_gives_env_and_config(hook_module, tmp_path):
    conn = {"protocol": "binary", "host": "db.example", "port": 6274, "database": "omnisci"}
    user_dir = write_store(tmp_path, "Alice@Example.org", "alice-example-org---cfd44c4f", conn, "omnisci-session")
    hook = hook_module.OmnisciHandoffHook(tmp_path, session_file_name="omnisci-session", env_names={"host": "DB_HOST"})
    assert hook.user_dir("Alice@Example.org") == str(user_dir)

    s = spawner("Alice@Example.org", {"JUPYTER_CONFIG_PATH": "/etc/site-jupyter", "KEEP": "me"})
    hook(s)
    env = s.environment
    assert env["OMNISCI_PROTOCOL"] == "binary" and env["DB_HOST"] == "db.example" and env["OMNISCI_PORT"] == "6274"
    assert "OMNISCI_HOST" not in env and env["KEEP"] == "me"
    config_dir, inherited = env["JUPYTER_CONFIG_PATH"].split(os.pathsep)
    assert inherited == "/etc/site-jupyter"
    assert config_dir == f"{tmp_path}-jupyter/alice-example-org---cfd44c4f"

    manager = json.loads(Path(config_dir, "jupyter_notebook_config.json").read_text())["OmniSciSessionManager"]
    assert manager == {"session_file": str(user_dir / "omnisci-session"), "protocol": "OMNISCI_PROTOCOL", "host": "DB_HOST", "port": "OMNISCI_PORT"}
    enabled = json.loads(Path(config_dir, "jupyter_notebook_config.d", "omnisci-handoff.json").read_text())
    assert enabled == {"NotebookApp": {"nbserver_extensions": {"jupyterlab_omnisci.serverextension": True}}}
    for path in Path(config_dir).rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    # No secrets leave the store: the session id is in no env var and no config file.
    assert all("S" * 32 not in v for v in env.values())
    assert all("S" * 32 not in p.read_text() for p in Path(config_dir).rglob("*.json"))


def test_before_any_handoff_only_config(hook_module, tmp_path):
    hook = hook_module.OmnisciHandoffHook(tmp_path)
    s = spawner("bob")
    hook(s)
    assert set(s.environment) == {"JUPYTER_CONFIG_PATH"}
    manager = json.loads(Path(s.environment["JUPYTER_CONFIG_PATH"], "jupyter_server_config.json").read_text())
    assert manager["OmniSciSessionManager"]["session_file"] == str(tmp_path / "users" / "bob" / "session")


def test_refuses_a_record_of_another_user(hook_module, tmp_path):
    write_store(tmp_path, "mallory", "bob", {"protocol": "https", "host": "evil.example", "port": 443, "database": ""})
    with pytest.raises(ValueError):
        hook_module.OmnisciHandoffHook(tmp_path)(spawner("bob"))



@pytest.mark.parametrize("link", ["users/bob", "users/bob/state.json"])
def test_record_never_follows_a_symlink(hook_module, tmp_path, link):
    """The store's account could link a user's record to any file root can read (another user's, or one
    it wrote elsewhere): the hook, as root, must not read it into the user's environment."""
    store = tmp_path / "store"
    write_store(store, "bob", "bob", {"protocol": "https", "host": "db.example", "port": 443, "database": ""})
    victim = write_store(tmp_path / "elsewhere", "bob", "bob", {"protocol": "https", "host": "evil.example", "port": 443, "database": ""})
    target = store / link
    if target.is_dir():
        for p in target.iterdir():
            p.unlink()
        target.rmdir()
        target.symlink_to(victim)
    else:
        target.unlink()
        target.symlink_to(victim / "state.json")
    s = spawner("bob")
    with pytest.raises(OSError):
        hook_module.OmnisciHandoffHook(store)(s)
    assert "evil.example" not in json.dumps(s.environment)


def test_record_refuses_a_fifo_without_blocking(hook_module, tmp_path):
    """A FIFO in place of state.json: a plain open() would wait for a writer forever, freezing the hub."""
    store = tmp_path / "store"
    user_dir = write_store(store, "bob", "bob", {"protocol": "https", "host": "h", "port": 443, "database": ""})
    (user_dir / "state.json").unlink()
    os.mkfifo(user_dir / "state.json")

    def frozen(signum, frame):
        raise TimeoutError("the hook blocked on the FIFO")

    previous = signal.signal(signal.SIGALRM, frozen)
    signal.alarm(10)
    try:
        with pytest.raises(ValueError, match="not a regular file"):
            hook_module.OmnisciHandoffHook(store)(spawner("bob"))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_record_too_large_is_refused(hook_module, tmp_path):
    store = tmp_path / "store"
    user_dir = write_store(store, "bob", "bob", {"protocol": "https", "host": "h", "port": 443, "database": ""})
    with open(user_dir / "state.json", "r+b") as f:
        f.truncate(hook_module._MAX_RECORD + 1)
    with pytest.raises(ValueError, match="larger than a record"):
        hook_module.OmnisciHandoffHook(store).record("bob")


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="user_access='group' changes groups: needs root (CI runs as root)")
SERVICE = pwd.getpwnam("daemon")  # stands in for the service's account, owner of the store
USER = pwd.getpwnam("nobody")  # the unix account of the user's server


def mode_gid(path):
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_gid


def service_owns(root):
    """The store as the service, running as its own account, leaves it."""
    for path in [root, *root.rglob("*")]:
        os.chown(path, SERVICE.pw_uid, SERVICE.pw_gid)
    return root


def group_hook(hook_module, store, **kw):
    return hook_module.OmnisciHandoffHook(store, user_access="group", unix_user=lambda s: USER.pw_name, **kw)


@root_only
def test_group_access_after_a_handoff(hook_module, tmp_path):
    store = tmp_path / "store"
    user_dir = write_store(store, "nina", "nina", {"protocol": "https", "host": "h", "port": 443, "database": ""})
    service_owns(store)
    state_before = mode_gid(user_dir / "state.json")
    s = spawner("nina")
    group_hook(hook_module, store)(s)

    assert mode_gid(store)[0] == 0o711 and mode_gid(store / "users")[0] == 0o711
    assert mode_gid(user_dir) == (0o2750, USER.pw_gid)
    assert mode_gid(user_dir / "session") == (0o640, USER.pw_gid)
    assert os.stat(user_dir).st_uid == SERVICE.pw_uid and os.stat(user_dir / "session").st_uid == SERVICE.pw_uid
    assert mode_gid(user_dir / "state.json") == state_before  # the record is left to the service's modes

    config_dir = Path(s.environment["JUPYTER_CONFIG_PATH"])
    assert config_dir == tmp_path / "store-jupyter" / "nina" and mode_gid(config_dir.parent)[0] == 0o711
    assert os.stat(config_dir).st_uid == 0 and os.stat(config_dir.parent).st_uid == 0  # root's, never the service's
    for path in [config_dir, *config_dir.rglob("*")]:
        assert mode_gid(path) == ((0o2750, USER.pw_gid) if path.is_dir() else (0o640, USER.pw_gid)), path


@root_only
def test_group_access_before_the_first_handoff(hook_module, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    service_owns(store)
    group_hook(hook_module, store)(spawner("Bob"))
    users = store / "users"
    user_dir = users / "bob---cd9fb1e1"
    # Made for the service, which owns the store, with the user's group ready for the first handoff.
    assert os.stat(users).st_uid == SERVICE.pw_uid and mode_gid(users)[0] == 0o711
    assert os.stat(user_dir).st_uid == SERVICE.pw_uid and mode_gid(user_dir) == (0o2750, USER.pw_gid)
    assert os.listdir(users) == [user_dir.name] and os.listdir(user_dir) == []


@root_only
@pytest.mark.parametrize("link", ["users/nina", "users/nina/session"])
def test_group_access_never_follows_a_symlink_in_the_store(hook_module, tmp_path, link):
    store = tmp_path / "store"
    write_store(store, "nina", "nina", {"protocol": "https", "host": "h", "port": 443, "database": ""})
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    (victim / "session").write_text("root's")
    service_owns(store)
    target = store / link
    if target.is_dir():
        for p in sorted(target.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        target.rmdir()
    else:
        target.unlink()
    target.symlink_to(victim)
    before = {p: mode_gid(p) for p in (victim, victim / "session")}
    with pytest.raises(OSError):
        group_hook(hook_module, store)(spawner("nina"))
    assert {p: mode_gid(p) for p in before} == before
    assert os.listdir(victim) == ["session"]


@root_only
def test_group_access_refuses_a_session_file_of_another_owner(hook_module, tmp_path):
    store = tmp_path / "store"
    user_dir = write_store(store, "nina", "nina", {"protocol": "https", "host": "h", "port": 443, "database": ""})
    service_owns(store)
    os.chown(user_dir / "session", 0, 0)
    with pytest.raises(ValueError):
        group_hook(hook_module, store)(spawner("nina"))
    assert mode_gid(user_dir / "session")[1] == 0


@root_only
@pytest.mark.parametrize("owner", ["root", "user"])
def test_record_refuses_a_file_of_another_owner(hook_module, tmp_path, owner):
    """A record the service did not write (root's, e.g. a hard link to a root-only file, or the user's own)
    is not read: only the store's owner writes records."""
    store = tmp_path / "store"
    user_dir = write_store(store, "nina", "nina", {"protocol": "https", "host": "h", "port": 443, "database": ""})
    service_owns(store)
    account = USER if owner == "user" else pwd.getpwuid(0)
    os.chown(user_dir / "state.json", account.pw_uid, account.pw_gid)
    s = spawner("nina")
    with pytest.raises(ValueError, match="not a regular file of the store's owner"):
        hook_module.OmnisciHandoffHook(store)(s)
    assert "OMNISCI_HOST" not in s.environment


def test_config_dir_never_inside_the_store(hook_module, tmp_path):
    for inside in (tmp_path / "jupyter", tmp_path, tmp_path / "users" / "x"):
        with pytest.raises(ValueError, match="inside the store"):
            hook_module.OmnisciHandoffHook(tmp_path, config_dir=inside)


@root_only
def test_config_dir_refused_when_others_could_change_it(hook_module, tmp_path):
    store = tmp_path / "store"
    write_store(store, "nina", "nina", {"protocol": "https", "host": "h", "port": 443, "database": ""})
    service_owns(store)
    # Made beforehand by another account (e.g. in a sticky /tmp): it could replace the files later.
    planted = tmp_path / "planted"
    planted.mkdir()
    os.chown(planted, SERVICE.pw_uid, SERVICE.pw_gid)
    with pytest.raises(ValueError, match="must belong to root"):
        group_hook(hook_module, store, config_dir=planted)(spawner("nina"))
    assert os.listdir(planted) == []
    # A parent others can write to, without the sticky bit.
    open_parent = tmp_path / "open"
    open_parent.mkdir()
    os.chmod(open_parent, 0o777)
    with pytest.raises(ValueError, match="must belong to root"):
        group_hook(hook_module, store, config_dir=open_parent / "jupyter")(spawner("nina"))
    # A parent owned by the service's account.
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, SERVICE.pw_uid, SERVICE.pw_gid)
    with pytest.raises(ValueError, match="must belong to root"):
        group_hook(hook_module, store, config_dir=theirs / "jupyter")(spawner("nina"))


def test_group_access_needs_a_unix_account(hook_module, tmp_path):
    hook = hook_module.OmnisciHandoffHook(tmp_path, user_access="group", unix_user=lambda s: "oh-no-such-account")
    with pytest.raises(ValueError, match="no unix account"):
        hook(spawner("nina"))
    with pytest.raises(ValueError):
        hook_module.OmnisciHandoffHook(tmp_path, user_access="world")
