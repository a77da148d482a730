"""The state of the handed-over session, as ``GET {base_url}omnisci/session/status`` reports it.

The session comes from the session manager (as ``GET omnisci/session``); HeavyDB is asked about it
with ``get_session_info`` only (never ``disconnect``), at most once per ``status_cache_seconds`` for
the same session and connection, however many tabs ask. The answer never holds the session id.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from datetime import datetime, timezone
from typing import Any, Callable

from .heavydb_session import describe, is_invalid_session, session_info
from .session import SessionError

#: ``state``: stable values the lab's status item shows.
NO_SESSION = "no_session"
CONNECTED = "connected"
EXPIRED = "expired"
UNREACHABLE = "unreachable"
ERROR = "error"


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _handed_over_at(manager: Any) -> float | None:
    """The session file's mtime: when it reached this server (for a Kubernetes Secret volume, when
    the kubelet wrote it). None for a manager without a file."""
    path = getattr(manager, "session_file", "")
    try:
        return os.stat(path).st_mtime if isinstance(path, str) and path else None
    except OSError:
        return None


def check(answer: dict, timeout: float) -> dict:
    """Asks HeavyDB about the session of a ``GET omnisci/session`` answer (blocking: run it in a
    thread). The result's ``state`` is connected, expired, unreachable or error."""
    connection = answer.get("connection") or {}
    where = f"{connection.get('protocol', '')}://{connection.get('host', '')}:{connection.get('port', '')}"
    try:
        info = session_info(connection, answer["session"], timeout)
    except ImportError:
        return {
            "state": ERROR,
            "reason": "client_missing",
            "message": "The session cannot be checked: pyheavydb (heavydb) is not installed next to the notebook server.",
        }
    except ValueError as e:
        return {"state": UNREACHABLE, "message": f"HeavyDB's address is not usable ({e})."}
    except Exception as e:  # noqa: BLE001 — HeavyDB's own answer, or a transport failure
        if is_invalid_session(e):
            return {
                "state": EXPIRED,
                "message": f"HeavyDB no longer accepts the handed-over session ({describe(e)}). "
                "Open the notebook again from Immerse to hand a new one over.",
            }
        if type(e).__name__ == "TDBException":
            return {"state": ERROR, "reason": "heavydb_error", "message": f"HeavyDB answered: {describe(e)}"}
        return {"state": UNREACHABLE, "message": f"HeavyDB could not be reached at {where} ({describe(e)})."}
    return {
        "state": CONNECTED,
        "user": info.user,
        "database": info.database,
        "session_started_at": _iso(info.start_time) if info.start_time else None,
        "message": f"Connected to HeavyDB as {info.user}@{info.database}.",
    }


class StatusCache:
    """One HeavyDB check per session and connection every ``ttl`` seconds; concurrent requests for
    the same key share the check in flight. Keys are hashes: the id is not kept here."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[float, asyncio.Future]] = {}

    async def status(self, manager: Any, ttl: float, timeout: float) -> dict:
        try:
            answer = manager.get_session()
        except SessionError as e:
            if e.code in ("no_session", "session_not_configured"):
                return {"state": NO_SESSION, "reason": e.code, "message": e.message}
            return {"state": ERROR, "reason": e.code, "message": e.message}
        if not isinstance(answer, dict) or not isinstance(answer.get("session"), str) or not answer["session"]:
            return {"state": NO_SESSION, "reason": "no_session", "message": "No session has been handed over to this server."}
        key = hashlib.sha256(json.dumps([answer["session"], answer.get("connection")], sort_keys=True).encode()).hexdigest()
        now = self._clock()
        self._entries = {k: v for k, v in self._entries.items() if now - v[0] < ttl or not v[1].done()}
        entry = self._entries.get(key)
        if entry is None:
            future = asyncio.get_running_loop().run_in_executor(None, check, answer, timeout)
            entry = self._entries[key] = (now, asyncio.ensure_future(future))
        result = dict(await asyncio.shield(entry[1]))
        result["checked_at"] = _iso(time.time() - (self._clock() - entry[0]))
        result["handed_over_at"] = _iso(_handed_over_at(manager))
        if isinstance(answer.get("fingerprint"), str):
            result["fingerprint"] = answer["fingerprint"]
        return result
