"""connect(): pyheavydb (the real client) against the HeavyDB stand-in, the session from the file."""

import gc
import json

import heavydb
import pytest
from omnisci_handoff_jupyter import connect
from omnisci_handoff_jupyter.kernel import (
    HandoffConnection,
    NoSessionError,
    SessionExpiredError,
    server_config,
)

A = "sessionAAAAAAAAAAAAAAAAAAAAAAAAAA"
B = "sessionBBBBBBBBBBBBBBBBBBBBBBBBBB"
C = "sessionCCCCCCCCCCCCCCCCCCCCCCCCCC"


def rows(con):
    return con.execute("SELECT carrier FROM flights").fetchall()


def test_checks_the_session_with_get_session_info_before_pyheavydb_sees_it(heavy, handoff, server_config):
    heavy.state.add(A, {"user": "alice"})
    handoff.write(A)
    con = connect(config=server_config)
    assert isinstance(con, heavydb.Connection)
    assert len(rows(con)) == 3
    assert heavy.methods() == ["get_session_info", "get_tables", "get_version", "sql_execute"]
    assert set(heavy.sessions_used("sql_execute")) == {A}


def test_follows_a_new_handoff_after_the_old_session_expired(heavy, handoff, server_config):
    heavy.state.add(A, {"user": "alice"})
    handoff.write(A)
    con = connect(config=server_config)
    rows(con)
    heavy.state.expire(A)
    heavy.state.add(B, {"user": "alice"})
    handoff.write(B)
    heavy.state.calls.clear()
    assert len(rows(con)) == 3  # no reconnect by hand, the same object
    assert heavy.methods() == ["get_session_info", "sql_execute"]
    assert heavy.sessions_used("get_session_info") == [B]
    assert heavy.sessions_used("sql_execute") == [B]
    assert con.sessionid == B


def test_follows_a_new_handoff_while_the_old_session_still_works(heavy, handoff, server_config):
    heavy.state.add(A, {"user": "alice"})
    heavy.state.add(B, {"user": "alice"})
    handoff.write(A)
    con = connect(config=server_config)
    handoff.write(B)
    heavy.state.calls.clear()
    rows(con)
    assert heavy.sessions_used("sql_execute") == [B]
    assert A in heavy.state.sessions  # the old one is left alone (the user's other tab may use it)


def test_retries_once_with_the_newest_session_when_heavydb_rejects_the_call(heavy, server_config):
    """The handoff lands between the check before the call and HeavyDB's answer: a scripted source."""
    heavy.state.add(A, {"user": "alice"})
    heavy.state.add(B, {"user": "alice"})
    answers = iter([A, A, B])  # connect, the check before the call, then (after HeavyDB refused A) B
    current = {"session": A}

    def source():
        current["session"] = next(answers, current["session"])
        return {"session": current["session"], "connection": heavy.connection}

    con = HandoffConnection(source)
    heavy.state.expire(A)
    heavy.state.calls.clear()
    assert len(rows(con)) == 3
    assert [(c["method"], c["args"]["session"]) for c in heavy.state.calls] == [
        ("sql_execute", A),
        ("get_session_info", B),
        ("sql_execute", B),
    ]


@pytest.mark.parametrize("idle", [False, True], ids=["heavydb-6.2+", "omnisci-idle-timeout"])
def test_without_a_newer_session_a_clear_error_says_what_to_do(heavy, handoff, server_config, idle):
    heavy.state.add(A, {"user": "alice"})
    handoff.write(A)
    con = connect(config=server_config)
    heavy.state.expire(A, idle=idle)
    for heavy_says in (["Idle Session Timeout. User should re-authenticate.", "Session not valid."] if idle else ["Session not valid or expired."]):
        with pytest.raises(SessionExpiredError) as e:
            rows(con)
        message = str(e.value)
        assert f"HeavyDB: {heavy_says}" in message
        assert "Open the notebook again from Immerse (https://immerse.example.com/)" in message
        assert A not in message
        assert isinstance(e.value, heavydb.exceptions.Error)  # DB-API: except heavydb.exceptions.Error
    # Then a new handoff: the same connection works again.
    heavy.state.add(B, {"user": "alice"})
    handoff.write(B)
    assert len(rows(con)) == 3


def test_a_newer_session_heavydb_rejects_is_checked_once_and_not_used(heavy, handoff, server_config):
    heavy.state.add(A, {"user": "alice"})
    handoff.write(A)
    con = connect(config=server_config)
    handoff.write(B)  # never valid at HeavyDB
    heavy.state.calls.clear()
    rows(con)
    rows(con)
    assert heavy.sessions_used("get_session_info") == [B]
    assert heavy.sessions_used("sql_execute") == [A, A]


def test_connect_refuses_an_expired_session_before_pyheavydb_sees_it(heavy, handoff, server_config):
    handoff.write(A)  # unknown to HeavyDB
    with pytest.raises(SessionExpiredError, match="Open the notebook again from Immerse"):
        connect(config=server_config)
    gc.collect()
    assert heavy.methods() == ["get_session_info"]


def test_pyheavydb_alone_disconnects_a_session_its_check_rejected(heavy):
    """Why connect() checks first: pyheavydb's connect(sessionid=...) validates with get_tables, and the
    half-built Connection it raises from disconnects that session when it is garbage-collected."""
    conn = heavy.connection
    with pytest.raises(heavydb.exceptions.Error):
        heavydb.connect(sessionid=A, host=conn["host"], port=int(conn["port"]), protocol=conn["protocol"])
    gc.collect()
    assert heavy.methods() == ["get_tables", "disconnect"]
    heavy.state.calls.clear()  # this stand-in fails a test that leaves a disconnect behind


def test_no_session_handed_over(heavy, handoff, server_config):
    with pytest.raises(NoSessionError) as e:
        connect(config=server_config)
    assert "No session has been handed over to this server" in str(e.value)
    assert "https://immerse.example.com/" in str(e.value)
    assert heavy.methods() == []


def test_close_and_disconnect_never_end_the_session(heavy, handoff, server_config):
    heavy.state.add(A, {"user": "alice"})
    handoff.write(A)
    con = connect(config=server_config)
    with pytest.raises(AttributeError, match="logs you out of Immerse"):
        con._client.disconnect(A)
    con.close()
    with connect(config=server_config):
        pass
    del con
    gc.collect()
    assert "disconnect" not in heavy.methods()
    assert A in heavy.state.sessions


def test_a_session_argument_of_the_caller_s_own_is_passed_on(heavy, handoff, server_config):
    heavy.state.add(A, {"user": "alice"})
    heavy.state.add(C, {"user": "carol", "database": "other"})
    handoff.write(A)
    con = connect(config=server_config)
    assert con._client.get_session_info(C).user == "carol"
    handoff.write(B)
    heavy.state.calls.clear()
    assert con._client.get_session_info(C).database == "other"
    assert heavy.sessions_used("get_session_info") == [C]


def test_connect_reads_the_server_config_from_the_jupyter_config_path(heavy, handoff, tmp_path, monkeypatch):
    generated = tmp_path / "omnisci-handoff-config"
    generated.mkdir()
    (generated / "jupyter_server_config.json").write_text(
        json.dumps({"OmniSciSessionManager": {"session_file": str(handoff.path), "protocol": "HP", "host": "HH", "port": "HO"}})
    )
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "jupyter_server_config.py").write_text('c.OmniSciHandoff.relink_url = "https://heavy.example.com/"\n')
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(user_dir))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(generated))
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")
    monkeypatch.setenv("HP", heavy.connection["protocol"])
    monkeypatch.setenv("HH", heavy.connection["host"])
    monkeypatch.setenv("HO", heavy.connection["port"])
    config = server_config()
    assert config.OmniSciSessionManager.session_file == str(handoff.path)
    assert config.OmniSciHandoff.relink_url == "https://heavy.example.com/"
    heavy.state.add(A, {"user": "alice"})
    handoff.write(A)
    assert len(rows(connect())) == 3
    handoff.write(B)
    with pytest.raises(SessionExpiredError, match=r"\(https://heavy\.example\.com/\)"):
        rows(connect())
