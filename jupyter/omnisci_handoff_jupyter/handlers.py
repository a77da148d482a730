"""``GET {base_url}omnisci/session`` (jupyterlab-omnisci's endpoint on jupyter_server 2) and
``GET {base_url}omnisci/session/status``; both answer only the server's owner."""

from __future__ import annotations

import json
import os

from jupyter_server.base.handlers import APIHandler
from tornado import web

from .config import OmniSciConfig, OmniSciHandoff
from .session import SessionError
from .status import StatusCache

#: The env var JupyterHub sets for a single-user server: the name of the user who owns it.
OWNER_ENV = "JUPYTERHUB_USER"


class _OwnerOnlyHandler(APIHandler):
    """JSON answers with ``Cache-Control: no-store``, for the server's owner only.

    Under JupyterHub the server's owner is ``$JUPYTERHUB_USER``; anyone else the hub lets in (a
    user the owner shared the server with, an admin, a service) gets 403 ``not_owner``. Without
    JupyterHub, whoever passes the server's authentication is its owner.
    """

    def _answer(self, status: int, body: dict) -> None:
        self.set_status(status)  # APIHandler.finish sets Content-Type: application/json
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def _refuse_non_owner(self) -> bool:
        owner = os.environ.get(OWNER_ENV, "")
        if not owner or self.current_user.username == owner:
            return False
        self.log.warning(
            "omnisci_handoff_jupyter | refused GET %s to %s: only the server's owner gets its session",
            self.request.path,
            self.current_user.username,
        )
        self._answer(
            403,
            {
                "error": "not_owner",
                "message": "Only the owner of this server can use its OmniSci session "
                "(this server was shared with you).",
            },
        )
        return True

    def _manager(self):
        return OmniSciConfig(config=self.config).omnisci_session_manager

    def _manager_failed(self, error: Exception) -> dict:
        """A custom manager raised: log and say which exception, never its text (it may hold the id)."""
        self.log.error("omnisci_handoff_jupyter | the session manager failed with %s", type(error).__name__)
        return {
            "error": "session_manager_failed",
            "message": f"The OmniSci session manager failed ({type(error).__name__}).",
        }


class OmniSciSessionHandler(_OwnerOnlyHandler):
    """Answers the session manager's data as JSON; errors as ``{"error": <code>, "message": ...}``.

    The manager is created per request from the server's config, as in jupyterlab-omnisci, and the
    default one re-reads the session file every time, so a new handoff is seen without a restart.
    """

    @web.authenticated
    def get(self) -> None:
        if self._refuse_non_owner():
            return
        try:
            data = self._manager().get_session()
        except SessionError as e:
            if e.status >= 500:
                self.log.warning("omnisci_handoff_jupyter | no session served: %s", e.message)
            self._answer(e.status, {"error": e.code, "message": e.message})
            return
        except Exception as e:
            self._answer(500, self._manager_failed(e))
            return
        self._answer(200, data)


class OmniSciSessionStatusHandler(_OwnerOnlyHandler):
    """The session's state (``status.py``): always 200 with a ``state`` for the owner."""

    #: One cache per server process.
    cache = StatusCache()

    @web.authenticated
    async def get(self) -> None:
        if self._refuse_non_owner():
            return
        settings = OmniSciHandoff(config=self.config)
        try:
            status = await self.cache.status(self._manager(), settings.status_cache_seconds, settings.heavydb_timeout)
        except Exception as e:
            failed = self._manager_failed(e)
            status = {"state": "error", "reason": failed["error"], "message": failed["message"]}
        self._answer(200, status)
