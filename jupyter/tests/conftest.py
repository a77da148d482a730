"""A HeavyDB stand-in in this process (scripts/demo/heavydb/standin.py: pyheavydb's generated Thrift
code behind HTTP on a loopback port), and a session file written as omnisci-handoff writes it."""

import json
import os
import sys
import threading
from pathlib import Path

import pytest
from traitlets.config import Config

STANDIN_DIR = Path(__file__).resolve().parents[2] / "scripts" / "demo" / "heavydb"


class HeavyDbStandIn:
    def __init__(self, server):
        self.server = server
        self.state = server.state
        self.connection = {"protocol": "http", "host": "127.0.0.1", "port": str(server.server_address[1])}

    def methods(self):
        return [c["method"] for c in self.state.calls]

    def sessions_used(self, method):
        return [c["args"].get("session") for c in self.state.calls if c["method"] == method]


@pytest.fixture
def heavy():
    sys.path.insert(0, str(STANDIN_DIR))
    try:
        import standin
    finally:
        sys.path.remove(str(STANDIN_DIR))
    server = standin.make_server(0)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    heavy = HeavyDbStandIn(server)
    yield heavy
    server.shutdown()
    server.server_close()
    assert "disconnect" not in heavy.methods(), "a handed-over session must never be ended"


class Handoff:
    """The session file, replaced atomically as the service's store does."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, session, query="SELECT 1", fingerprint=None):
        data = {"session": session, "query": query}
        if fingerprint is not None:
            data["fingerprint"] = fingerprint
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n")
        os.replace(tmp, self.path)


@pytest.fixture
def handoff(tmp_path):
    return Handoff(tmp_path / "session")


@pytest.fixture
def server_config(heavy, handoff, monkeypatch):
    """The Jupyter config omnisci-handoff generates, and the connection env vars of the pod."""
    monkeypatch.setenv("OMNISCI_PROTOCOL", heavy.connection["protocol"])
    monkeypatch.setenv("OMNISCI_HOST", heavy.connection["host"])
    monkeypatch.setenv("OMNISCI_PORT", heavy.connection["port"])
    return Config(
        {
            "OmniSciSessionManager": {"session_file": str(handoff.path)},
            "OmniSciHandoff": {"relink_url": "https://immerse.example.com/"},
        }
    )
