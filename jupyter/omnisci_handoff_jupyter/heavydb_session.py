"""Asking HeavyDB about a session without ever ending it: ``get_session_info`` only.

pyheavydb (``heavydb``, the ``[heavydb]`` extra) provides the generated Thrift client; it is imported
here only when a check runs, so the server extension loads without it.

A handed-over session is the user's live Immerse session: nothing here calls ``disconnect``, and
nothing builds a ``heavydb.Connection`` (whose failed ``connect(sessionid=...)`` would disconnect the
session it could not use when garbage-collected).
"""

from __future__ import annotations

from typing import Any, Mapping

#: What HeavyDB answers (TDBException.error_msg) for a session it does not know (any longer):
#: "Session not valid or expired." (HeavyDB >= 6.2, ThriftHandler/DBHandler.cpp get_session_ptr),
#: "Session not valid." (OmniSci and earlier HeavyDB), and, for the call that found it idle or too
#: old before erasing it, "Idle Session Timeout. User should re-authenticate." / "Maximum active
#: Session Timeout. User should re-authenticate.".
_INVALID_SESSION_PREFIX = "Session not valid"
_TIMED_OUT_SUFFIX = "Session Timeout. User should re-authenticate."


def is_invalid_session(error: BaseException) -> bool:
    """Whether ``error`` is HeavyDB saying the session is invalid or expired (a TDBException)."""
    message = getattr(error, "error_msg", None)
    if not isinstance(message, str) or type(error).__name__ != "TDBException":
        return False
    return message.startswith(_INVALID_SESSION_PREFIX) or message.endswith(_TIMED_OUT_SUFFIX)


def describe(error: BaseException) -> str:
    """A message for ``error`` that never holds the session id (HeavyDB's own messages do not)."""
    message = getattr(error, "error_msg", None)
    return message if isinstance(message, str) else f"{type(error).__name__}: {error}"


def thrift_client(connection: Mapping[str, Any], timeout: float):
    """``(client, transport)``: HeavyDB's Thrift client (pyheavydb's generated ``Heavy.Client``) for
    ``{"protocol", "host", "port"}``, as ``heavydb.connect`` builds it, with a timeout in seconds.

    Raises ValueError for an unusable connection (empty host, bad port or protocol) and
    ImportError without pyheavydb."""
    from heavydb.thrift.Heavy import Client
    from thrift.protocol import TBinaryProtocol, TJSONProtocol
    from thrift.transport import THttpClient, TSocket, TTransport

    protocol = str(connection.get("protocol") or "").lower()
    host = str(connection.get("host") or "")
    try:
        port = int(str(connection.get("port") or ""))
    except ValueError:
        raise ValueError(f"the HeavyDB port is not a number: {connection.get('port')!r}") from None
    if not host:
        raise ValueError("no HeavyDB host is configured (the connection env var is empty)")
    if protocol in ("http", "https"):
        transport = THttpClient.THttpClient(f"{protocol}://{host}:{port}")
        transport.setTimeout(int(timeout * 1000))
        proto = TJSONProtocol.TJSONProtocol(transport)
    elif protocol == "binary":
        socket = TSocket.TSocket(host, port)
        socket.setTimeout(int(timeout * 1000))
        transport = TTransport.TBufferedTransport(socket)
        proto = TBinaryProtocol.TBinaryProtocol(transport)
    else:
        raise ValueError(f"the HeavyDB protocol must be http, https or binary, not {protocol!r}")
    return Client(proto), transport


def session_info(connection: Mapping[str, Any], session: str, timeout: float):
    """HeavyDB's ``TSessionInfo`` (user, database, start_time, is_super) for ``session``.

    Raises the TDBException HeavyDB answered (see :func:`is_invalid_session`), a Thrift transport
    error or OSError when HeavyDB cannot be reached, ValueError/ImportError as thrift_client."""
    client, transport = thrift_client(connection, timeout)
    transport.open()
    try:
        return client.get_session_info(session)
    finally:
        transport.close()
