"""Where the handed-over OmniSci session comes from.

The traits and the answer are jupyterlab-omnisci's (3.0.0): the same configurable class names
(``OmniSciSessionManager``, ``BaseOmniSciSessionManager``), the same traits (``session_file``, and
``protocol``/``host``/``port`` naming the env vars of the connection) and the same JSON answer
(``session``, ``connection``, ``environment``, ``query``), so one Jupyter config configures the
legacy extension and this one. Unlike the legacy manager, a missing, empty, unreadable or malformed
session file is an error with a stable code (:class:`SessionError`), never an empty session or a
traceback, and the file may also hold the id alone (plain text).

omnisci-handoff also writes ``"fingerprint"`` into a JSON session file: an opaque base64url keyed
hash of the session (never the id), which the lab URL of that handoff carries, so the lab can tell
the handed-over session has reached this server. The answer then carries it too (after the legacy
keys); jupyterlab-omnisci reads only ``session`` and ``query`` and ignores it.

Nothing here ever logs or puts the session id into an error message.
"""

from __future__ import annotations

import errno
import json
import os
import re
from typing import Any, NamedTuple

from traitlets import Unicode
from traitlets.config import Configurable

#: Larger session files are rejected (a session id plus a query; Immerse's queries are far smaller).
MAX_SESSION_FILE_BYTES = 1 << 20

#: A plain-text session file: one token of printable ASCII (and not starting like JSON).
_PLAIN_ID = re.compile(r"[!-~]+")

#: The service's fingerprint: base64url without padding (a keyed hash; bounded length).
_FINGERPRINT = re.compile(r"[A-Za-z0-9_-]{1,128}")


class HandedOver(NamedTuple):
    """What a session file holds: the id, the query and (JSON format only) the fingerprint."""

    session: str
    query: str
    fingerprint: str | None = None


class SessionError(Exception):
    """No session can be served: ``code`` is stable, ``status`` the HTTP status, ``message`` safe to show."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


class BaseOmniSciSessionManager(Configurable):
    """The session source interface: ``get_session()`` returns the answer of ``GET /omnisci/session``.

    Implementations may raise :class:`SessionError` to answer a JSON error. The base returns ``{}``,
    as jupyterlab-omnisci's does (the lab then reports that no session was handed over).
    """

    def get_session(self) -> dict[str, Any]:
        return {}


class OmniSciSessionManager(BaseOmniSciSessionManager):
    """The session id and query from a file, re-read on every call; the connection from env vars.

    The file is what omnisci-handoff writes: JSON ``{"session": "<id>", "query": "<sql>"}``, or
    the id alone (``sessionFormat: text``).
    """

    session_file = Unicode("", help="The path of the session file.", config=True)
    protocol = Unicode(
        "OMNISCI_PROTOCOL",
        help="The name of the env var holding the protocol of the OmniSci server.",
        config=True,
    )
    host = Unicode(
        "OMNISCI_HOST",
        help="The name of the env var holding the host of the OmniSci server.",
        config=True,
    )
    port = Unicode(
        "OMNISCI_PORT",
        help="The name of the env var holding the port of the OmniSci server.",
        config=True,
    )

    def read_session_file(self) -> HandedOver:
        """What the session file holds, or :class:`SessionError`."""
        if not self.session_file:
            raise SessionError(
                "session_not_configured",
                404,
                "No session file is configured (OmniSciSessionManager.session_file), "
                "so nothing can be handed over to this server.",
            )
        try:
            with open(self.session_file, "rb") as f:
                raw = f.read(MAX_SESSION_FILE_BYTES + 1)
        except FileNotFoundError:
            raise SessionError(
                "no_session",
                404,
                "No session has been handed over to this server (the session file does not exist).",
            ) from None
        except OSError as e:
            reason = errno.errorcode.get(e.errno, type(e).__name__) if e.errno else type(e).__name__
            raise SessionError(
                "session_unreadable", 500, f"The session file cannot be read ({reason})."
            ) from None
        return parse_session_file(raw)

    def get_session(self) -> dict[str, Any]:
        handed_over = self.read_session_file()
        answer = {
            "session": handed_over.session,
            "connection": {
                "protocol": os.environ.get(self.protocol, ""),
                "host": os.environ.get(self.host, ""),
                "port": os.environ.get(self.port, ""),
            },
            "environment": {
                "protocol": self.protocol,
                "host": self.host,
                "port": self.port,
            },
            "query": handed_over.query,
        }
        if handed_over.fingerprint is not None:
            answer["fingerprint"] = handed_over.fingerprint
        return answer


def _malformed(what: str) -> SessionError:
    return SessionError("session_malformed", 500, f"The session file is malformed: {what}.")


def parse_session_file(raw: bytes) -> HandedOver:
    """What the bytes of a session file (JSON object or plain id) hold.

    Error messages describe the problem, never the content.
    """
    if len(raw) > MAX_SESSION_FILE_BYTES:
        raise _malformed(f"larger than {MAX_SESSION_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise _malformed("not UTF-8") from None
    if not text:
        raise SessionError(
            "no_session", 404, "No session has been handed over to this server (the session file is empty)."
        )
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise _malformed("invalid JSON") from None
        if not isinstance(data, dict):
            raise _malformed("not a JSON object")
        session = data.get("session", "")
        query = data.get("query", "")
        fingerprint = data.get("fingerprint")
        if query is None:
            query = ""
        if not isinstance(session, str):
            raise _malformed('"session" is not a string')
        if not isinstance(query, str):
            raise _malformed('"query" is not a string')
        if fingerprint is not None and not (isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint)):
            raise _malformed('"fingerprint" is not a base64url string')
    elif text[0] not in '"[' and _PLAIN_ID.fullmatch(text):
        session, query, fingerprint = text, "", None
    else:
        raise _malformed("neither a JSON object nor a plain session id")
    if not session:
        raise SessionError(
            "no_session", 404, "No session has been handed over to this server (the session is empty)."
        )
    return HandedOver(session, query, fingerprint)
