"""The session status (GET omnisci/session/status's answer) against the HeavyDB stand-in."""

import asyncio
import json
import os
import socket

import pytest
from traitlets import TraitError
from traitlets.config import Config

from omnisci_handoff_jupyter import OmniSciConfig, OmniSciHandoff
from omnisci_handoff_jupyter.status import StatusCache

A = "sessionAAAAAAAAAAAAAAAAAAAAAAAAAA"
B = "sessionBBBBBBBBBBBBBBBBBBBBBBBBBB"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def status(config, cache, ttl=10.0):
    manager = OmniSciConfig(config=config).omnisci_session_manager
    return asyncio.run(cache.status(manager, ttl, 5.0))


@pytest.fixture
def cache():
    return StatusCache(Clock())


def test_no_session(server_config, cache, heavy):
    assert status(server_config, cache) == {
        "state": "no_session",
        "reason": "no_session",
        "message": "No session has been handed over to this server (the session file does not exist).",
    }
    assert status(Config(), cache)["reason"] == "session_not_configured"
    assert heavy.methods() == []


def test_connected_says_who_where_and_when_never_the_id(server_config, cache, heavy, handoff):
    heavy.state.add(A, {"user": "alice", "database": "flights", "start_time": 1_700_000_000})
    handoff.write(A, fingerprint="fp-A")
    os.utime(handoff.path, (1_700_000_600, 1_700_000_600))
    answer = status(server_config, cache)
    assert answer.pop("checked_at").endswith("Z")
    assert answer == {
        "state": "connected",
        "user": "alice",
        "database": "flights",
        "session_started_at": "2023-11-14T22:13:20Z",
        "handed_over_at": "2023-11-14T22:23:20Z",
        "fingerprint": "fp-A",
        "message": "Connected to HeavyDB as alice@flights.",
    }
    assert A not in json.dumps(answer)
    assert heavy.methods() == ["get_session_info"]


def test_expired(server_config, cache, heavy, handoff):
    handoff.write(A)
    answer = status(server_config, cache)
    assert answer["state"] == "expired"
    assert "Session not valid or expired." in answer["message"]
    assert "Open the notebook again from Immerse" in answer["message"]


def test_heavydb_unreachable(server_config, cache, handoff, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OMNISCI_PORT", str(port))
    handoff.write(A)
    answer = status(server_config, cache)
    assert answer["state"] == "unreachable"
    assert f"http://127.0.0.1:{port}" in answer["message"]
    monkeypatch.setenv("OMNISCI_HOST", "")
    assert status(server_config, cache)["state"] == "unreachable"


def test_an_unreadable_session_file_is_an_error_with_its_code(server_config, cache, handoff):
    handoff.path.write_text("{broken")
    answer = status(server_config, cache)
    assert (answer["state"], answer["reason"]) == ("error", "session_malformed")


def test_one_check_per_session_within_the_cache_time(server_config, heavy, handoff):
    clock = Clock()
    cache = StatusCache(clock)
    heavy.state.add(A, {"user": "alice"})
    heavy.state.add(B, {"user": "alice"})
    handoff.write(A)
    assert status(server_config, cache)["state"] == "connected"
    heavy.state.expire(A)
    clock.now += 9
    assert status(server_config, cache)["state"] == "connected"  # cached
    handoff.write(B)  # another session: checked at once
    assert status(server_config, cache)["state"] == "connected"
    handoff.write(A)
    clock.now += 2
    assert status(server_config, cache)["state"] == "expired"  # A's entry is older than 10 s
    assert heavy.sessions_used("get_session_info") == [A, B, A]
    assert status(server_config, cache, ttl=0)["state"] == "expired"
    assert len(heavy.sessions_used("get_session_info")) == 4


def test_concurrent_requests_share_one_check(server_config, heavy, handoff):
    heavy.state.add(A, {"user": "alice"})
    handoff.write(A)
    cache = StatusCache(Clock())
    manager = OmniSciConfig(config=server_config).omnisci_session_manager

    async def three():
        return await asyncio.gather(*(cache.status(manager, 10.0, 5.0) for _ in range(3)))

    assert [s["state"] for s in asyncio.run(three())] == ["connected"] * 3
    assert heavy.methods() == ["get_session_info"]


def test_settings_and_the_lab_s_page_config():
    settings = OmniSciHandoff(config=Config({"OmniSciHandoff": {"relink_url": " https://immerse.example.com/x "}}))
    assert settings.page_config() == {
        "relinkUrl": "https://immerse.example.com/x",
        "sessionWaitTimeout": 120.0,
        "statusInterval": 60.0,
        "runOnOpen": False,
    }
    assert OmniSciHandoff(config=Config({"OmniSciHandoff": {"run_on_open": True}})).page_config()["runOnOpen"] is True
    for bad in ({"relink_url": "javascript:alert(1)"}, {"relink_url": "immerse.example.com"}, {"session_wait_timeout": 0}, {"status_cache_seconds": -1}):
        with pytest.raises(TraitError):
            OmniSciHandoff(config=Config({"OmniSciHandoff": bad}))
