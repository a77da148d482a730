"""``GET {base_url}omnisci/session``: jupyterlab-omnisci's endpoint on jupyter_server 2."""

from __future__ import annotations

import json

from jupyter_server.base.handlers import APIHandler
from tornado import web

from .config import OmniSciConfig
from .session import SessionError


class OmniSciSessionHandler(APIHandler):
    """Answers the session manager's data as JSON; errors as ``{"error": <code>, "message": ...}``.

    The manager is created per request from the server's config, as in jupyterlab-omnisci, and the
    default one re-reads the session file every time, so a new handoff is seen without a restart.
    """

    def _answer(self, status: int, body: dict) -> None:
        self.set_status(status)  # APIHandler.finish sets Content-Type: application/json
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    @web.authenticated
    def get(self) -> None:
        try:
            manager = OmniSciConfig(config=self.config).omnisci_session_manager
            data = manager.get_session()
        except SessionError as e:
            if e.status >= 500:
                self.log.warning("omnisci_handoff_jupyter | no session served: %s", e.message)
            self._answer(e.status, {"error": e.code, "message": e.message})
            return
        except Exception as e:  # a custom manager failed: say which, never what (it may hold the id)
            self.log.error(
                "omnisci_handoff_jupyter | the session manager failed with %s", type(e).__name__
            )
            self._answer(
                500,
                {
                    "error": "session_manager_failed",
                    "message": f"The OmniSci session manager failed ({type(e).__name__}).",
                },
            )
            return
        self._answer(200, data)
