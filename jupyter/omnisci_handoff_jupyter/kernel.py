"""``connect()`` for the kernel: a pyheavydb connection that follows the handed-over session.

The session is read where the server reads it (the session manager of the Jupyter server config,
``jupyter_server_config.json``/``.py`` on the Jupyter config path, which the kernel inherits), at
connect and before every call to HeavyDB, so no notebook cell or saved file ever holds the id:

- when the handed-over session changed since the connection last used one, the next call uses the
  new one (once HeavyDB's ``get_session_info`` accepts it);
- when HeavyDB answers that the session is invalid or timed out, the connection takes the newest
  handed-over session, if there is another one HeavyDB accepts, and retries that call once;
  otherwise it raises :class:`SessionExpiredError`, which says to open the notebook again from
  Immerse (with ``OmniSciHandoff.relink_url`` when configured).

It never ends a session: the handed-over session is the user's live Immerse session. ``close()``
only forgets it, ``disconnect`` is refused, and a session is checked with ``get_session_info``
before pyheavydb's ``Connection`` sees it — pyheavydb disconnects a session its own check
(``get_tables``) rejected when that half-built connection is garbage-collected; this class's
``close()`` (which its ``__del__`` calls) cannot.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from heavydb import Connection
from heavydb.exceptions import OperationalError
from heavydb.thrift import Heavy
from jupyter_core.paths import jupyter_config_path
from traitlets.config import Config
from traitlets.config.loader import ConfigFileNotFound, JSONFileConfigLoader, PyFileConfigLoader

from .config import OmniSciConfig, OmniSciHandoff
from .heavydb_session import describe, is_invalid_session, session_info
from .session import SessionError

#: The server config the kernel reads (the server's own, as jupyter_server loads it).
SERVER_CONFIG = "jupyter_server_config"


class SessionExpiredError(OperationalError):
    """HeavyDB no longer accepts the session and no newer one was handed over (a DB-API
    OperationalError, so ``except heavydb.exceptions.Error`` catches it too)."""


class NoSessionError(OperationalError):
    """No session has been handed over to this server (or it cannot be read)."""


def server_config() -> Config:
    """The Jupyter server's config files on the Jupyter config path, merged as jupyter_server does
    (later directories in the path first, ``.py`` before ``.json`` in each)."""
    config = Config()
    for directory in reversed(jupyter_config_path()):
        for loader in (PyFileConfigLoader, JSONFileConfigLoader):
            ext = ".py" if loader is PyFileConfigLoader else ".json"
            try:
                config.merge(loader(SERVER_CONFIG + ext, path=directory).load_config())
            except ConfigFileNotFound:
                pass
    return config


def _relink_hint(relink_url: str) -> str:
    where = f" ({relink_url})" if relink_url else ""
    return (
        f"Open the notebook again from Immerse{where}: this connection then uses the new session at "
        "its next query, without re-running any cell."
    )


def _session_methods() -> frozenset[str]:
    """The Thrift methods of heavy.thrift whose first argument is the session."""
    names = set()
    for name in dir(Heavy.Client):
        args = getattr(Heavy, f"{name}_args", None)
        spec = getattr(args, "thrift_spec", None)
        if spec and len(spec) > 1 and spec[1] and spec[1][2] == "session":
            names.add(name)
    return frozenset(names)


_SESSION_METHODS = _session_methods()


class _FollowingClient:
    """Wraps pyheavydb's Thrift client: every call with a session argument goes through
    :meth:`HandoffConnection._call`; ``disconnect`` is refused."""

    def __init__(self, client: Any, connection: "HandoffConnection") -> None:
        self._client = client
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        if name == "disconnect":
            raise AttributeError(
                "disconnect is refused: the handed-over session is your Immerse session, and ending it "
                "logs you out of Immerse"
            )
        method = getattr(self._client, name)
        if name not in _SESSION_METHODS:
            return method
        return lambda *args, **kwargs: self._connection._call(method, args, kwargs)


class HandoffConnection(Connection):
    """A ``heavydb.Connection`` on the handed-over session that follows it (module docstring)."""

    def __init__(self, source: Callable[[], dict], relink_url: str = "", timeout: float = 30.0) -> None:
        self._source = source
        self._relink_url = relink_url
        self._timeout = timeout
        self._lock = threading.RLock()
        self._rejected: set[str] = set()
        answer = self._answer()
        self._connection = answer["connection"]
        session = answer["session"]
        try:
            session_info(self._connection, session, timeout)
        except Exception as e:
            if is_invalid_session(e):
                raise SessionExpiredError(self._expired_message(e)) from None
            raise OperationalError(f"HeavyDB could not check the handed-over session: {describe(e)}") from None
        super().__init__(
            sessionid=session,
            host=self._connection.get("host"),
            port=int(self._connection.get("port")),
            protocol=self._connection.get("protocol"),
        )
        self._sessions_used = {session}
        self._client = _FollowingClient(self._client, self)

    def __repr__(self) -> str:
        return super().__repr__().replace("Connection(", "HandoffConnection(", 1)

    def close(self) -> None:
        """Marks the connection closed; never ends the session (it is the user's Immerse session)."""
        self._closed = 1
        self._rbc = None

    def _answer(self) -> dict:
        try:
            answer = self._source()
        except SessionError as e:
            raise NoSessionError(f"{e.message} {_relink_hint(self._relink_url)}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("session"), str) or not answer["session"]:
            raise NoSessionError(f"No session has been handed over to this server. {_relink_hint(self._relink_url)}")
        return answer

    def _expired_message(self, error: BaseException) -> str:
        return (
            f"The OmniSci session handed over from Immerse has expired or was ended (HeavyDB: {describe(error)}), "
            f"and this server has no newer session that HeavyDB accepts. {_relink_hint(self._relink_url)}"
        )

    def _follow(self) -> bool:
        """Switches to the newest handed-over session if it is another one and HeavyDB accepts it
        (get_session_info); whether it switched."""
        with self._lock:
            try:
                newest = self._answer()["session"]
            except NoSessionError:
                return False
            if newest == self._session or newest in self._rejected:
                return False
            try:
                session_info(self._connection, newest, self._timeout)
            except Exception as e:
                if not is_invalid_session(e):
                    raise
                self._rejected.add(newest)
                return False
            self._session = self.sessionid = newest
            self._sessions_used.add(newest)
            return True

    def _call(self, method: Callable, args: tuple, kwargs: dict) -> Any:
        """``method(session, ...)`` on the newest handed-over session; once more after a switch when
        HeavyDB rejected the session. A session argument this connection never had (a caller's own)
        is passed on untouched."""
        if not args or args[0] not in self._sessions_used:
            return method(*args, **kwargs)
        self._follow()
        used = self._session
        try:
            return method(used, *args[1:], **kwargs)
        except Exception as e:
            if not is_invalid_session(e):
                raise
            if self._session == used and not self._follow():
                raise SessionExpiredError(self._expired_message(e)) from None
        try:
            return method(self._session, *args[1:], **kwargs)
        except Exception as e:
            if is_invalid_session(e):
                raise SessionExpiredError(self._expired_message(e)) from None
            raise


def connect(*, config: Config | None = None, timeout: float = 30.0) -> HandoffConnection:
    """A pyheavydb connection on the session handed over to this server, following new handoffs.

    ``config``: the Jupyter server config to read the session manager (``OmniSciSessionManager``:
    the session file, the connection env var names; or ``OmniSciConfig``'s manager) and
    ``OmniSciHandoff.relink_url`` from; default :func:`server_config`. ``timeout``: seconds for a
    session check.
    """
    config = server_config() if config is None else config
    manager = OmniSciConfig(config=config).omnisci_session_manager
    return HandoffConnection(manager.get_session, OmniSciHandoff(config=config).relink_url, timeout)
