"""The session manager and its configuration (the HTTP side: test/integration/jupyterlab4.test.ts)."""

import json

import pytest
from traitlets import TraitError
from traitlets.config import Config

from omnisci_handoff_jupyter import (
    BaseOmniSciSessionManager,
    OmniSciConfig,
    OmniSciSessionManager,
    SessionError,
)
from omnisci_handoff_jupyter.session import MAX_SESSION_FILE_BYTES, parse_session_file

SESSION = "d0c5aa2d3bd44a57b8b1e5b7c6a1f0e9"


def manager_for(path, **section):
    return OmniSciSessionManager(config=Config({"OmniSciSessionManager": {"session_file": str(path), **section}}))


@pytest.mark.parametrize(
    "content, expected",
    [
        (b'{"session": "S", "query": "SELECT 1"}\n', ("S", "SELECT 1", None)),
        (b'{"session": "S"}', ("S", "", None)),
        (b'{"session": "S", "query": null}', ("S", "", None)),
        (b'{"session": "S", "query": "SELECT \\"x\\"\\nFROM t -- \\u00e9"}', ("S", 'SELECT "x"\nFROM t -- \u00e9', None)),
        (b'{"session": "S", "query": "q", "fingerprint": "Zm9v_-Ab"}', ("S", "q", "Zm9v_-Ab")),
        (b'{"session": "S", "query": "q", "fingerprint": null}', ("S", "q", None)),
        (f"{SESSION}\n".encode(), (SESSION, "", None)),
        (b"  abc-DEF_123.456:789  \n", ("abc-DEF_123.456:789", "", None)),
    ],
)
def test_formats_omnisci_handoff_writes(content, expected):
    assert tuple(parse_session_file(content)) == expected


@pytest.mark.parametrize(
    "content, code, status",
    [
        (b"", "no_session", 404),
        (b"\n  \n", "no_session", 404),
        (b'{"session": "", "query": "SELECT 1"}', "no_session", 404),
        (b'{"query": "SELECT 1"}', "no_session", 404),
        (b'{"session": "S", ', "session_malformed", 500),
        (b'{"session": 42}', "session_malformed", 500),
        (b'{"session": "S", "query": ["SELECT 1"]}', "session_malformed", 500),
        (b'{"session": "S", "fingerprint": 7}', "session_malformed", 500),
        (b'{"session": "S", "fingerprint": "not base64url!"}', "session_malformed", 500),
        (b'{"session": "S", "fingerprint": ""}', "session_malformed", 500),
        (b'["S"]', "session_malformed", 500),
        (b'"S"', "session_malformed", 500),
        (b"two words", "session_malformed", 500),
        (b"line1\nline2", "session_malformed", 500),
        (b"\xff\xfe", "session_malformed", 500),
        (b"x" * (MAX_SESSION_FILE_BYTES + 1), "session_malformed", 500),
    ],
)
def test_unusable_files_are_errors_with_stable_codes(content, code, status):
    with pytest.raises(SessionError) as e:
        parse_session_file(content)
    assert (e.value.code, e.value.status) == (code, status)


def test_error_messages_never_carry_the_content():
    for content in (f'{{"session": "{SESSION}", '.encode(), f"{SESSION} {SESSION}".encode(), f'{{"session": ["{SESSION}"]}}'.encode()):
        with pytest.raises(SessionError) as e:
            parse_session_file(content)
        assert SESSION not in e.value.message and SESSION not in str(e.value)


def test_answer_is_jupyterlab_omnisci_s(tmp_path, monkeypatch):
    f = tmp_path / "session"
    f.write_text(json.dumps({"session": SESSION, "query": "SELECT 1"}))
    monkeypatch.setenv("HEAVY_PROTO", "https")
    monkeypatch.setenv("HEAVY_HOST", "heavy.example.com")
    monkeypatch.setenv("HEAVY_PORT", "443")
    answer = manager_for(f, protocol="HEAVY_PROTO", host="HEAVY_HOST", port="HEAVY_PORT").get_session()
    assert list(answer) == ["session", "connection", "environment", "query"]
    assert answer == {
        "session": SESSION,
        "connection": {"protocol": "https", "host": "heavy.example.com", "port": "443"},
        "environment": {"protocol": "HEAVY_PROTO", "host": "HEAVY_HOST", "port": "HEAVY_PORT"},
        "query": "SELECT 1",
    }


def test_defaults_and_unset_env(tmp_path, monkeypatch):
    for name in ("OMNISCI_PROTOCOL", "OMNISCI_HOST", "OMNISCI_PORT"):
        monkeypatch.delenv(name, raising=False)
    f = tmp_path / "session"
    f.write_text(SESSION)
    answer = manager_for(f).get_session()
    assert answer["environment"] == {"protocol": "OMNISCI_PROTOCOL", "host": "OMNISCI_HOST", "port": "OMNISCI_PORT"}
    assert answer["connection"] == {"protocol": "", "host": "", "port": ""}


def test_file_is_read_on_every_call(tmp_path):
    f = tmp_path / "session"
    manager = manager_for(f)
    with pytest.raises(SessionError) as e:
        manager.get_session()
    assert e.value.code == "no_session"
    f.write_text(json.dumps({"session": "one", "query": "q1"}))
    assert (manager.get_session()["session"], manager.get_session()["query"]) == ("one", "q1")
    f.write_text(json.dumps({"session": "two", "query": "q2"}))
    assert (manager.get_session()["session"], manager.get_session()["query"]) == ("two", "q2")


def test_the_fingerprint_follows_the_legacy_keys(tmp_path):
    f = tmp_path / "session"
    f.write_text(json.dumps({"session": SESSION, "query": "q", "fingerprint": "fp_1-x"}))
    answer = manager_for(f).get_session()
    assert list(answer) == ["session", "connection", "environment", "query", "fingerprint"]
    assert answer["fingerprint"] == "fp_1-x"


def test_not_configured_and_unreadable(tmp_path):
    with pytest.raises(SessionError) as e:
        OmniSciSessionManager().get_session()
    assert (e.value.code, e.value.status) == ("session_not_configured", 404)
    with pytest.raises(SessionError) as e:
        manager_for(tmp_path).get_session()  # a directory
    assert (e.value.code, e.value.status) == ("session_unreadable", 500)


class FixedManager(BaseOmniSciSessionManager):
    def get_session(self):
        return {"session": "fixed", "connection": {}, "environment": {}, "query": ""}


class LegacyStyleManager:
    """Written against jupyterlab-omnisci's base class (not ours): only get_session() matters."""

    def get_session(self):
        return {"session": "legacy"}


def test_default_manager_gets_the_server_config(tmp_path):
    config = Config({"OmniSciSessionManager": {"session_file": str(tmp_path / "s")}})
    manager = OmniSciConfig(config=config).omnisci_session_manager
    assert isinstance(manager, OmniSciSessionManager)
    assert manager.session_file == str(tmp_path / "s")


def test_manager_class_from_json_config():
    config = Config({"OmniSciConfig": {"omnisci_session_manager_class": f"{__name__}.FixedManager"}})
    assert OmniSciConfig(config=config).omnisci_session_manager.get_session()["session"] == "fixed"


def test_manager_instance_as_in_jupyterlab_omnisci():
    config = Config({"OmniSciConfig": {"omnisci_session_manager": LegacyStyleManager()}})
    assert OmniSciConfig(config=config).omnisci_session_manager.get_session() == {"session": "legacy"}


def test_a_manager_needs_get_session():
    with pytest.raises(TraitError):
        OmniSciConfig(config=Config({"OmniSciConfig": {"omnisci_session_manager": object()}})).omnisci_session_manager
