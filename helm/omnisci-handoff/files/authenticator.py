"""JupyterHub Authenticator for omnisci-handoff (JupyterHub 4.1+ and 5.x): login mode `handoff`, and
header mode for stock HEAVY.AI.

Login mode `handoff`, JupyterHub's documented forced-login pattern ("Logging users in via URL"):
omnisci-handoff sends the browser to /hub/login?login_token=...&next=...; with auto_login the hub
calls authenticate() at once, which trades the token at POST {exchange_url}, authenticated with
omnisci-handoff's hub API token. A login URL is no bearer credential: the token is bound to the
browser it was issued to. The browser gets a random HttpOnly cookie on this login path, sent with
every exchange; the first token only earns the way back to omnisci-handoff (202 + `continue`), where
the browser proves it is the one the handoff was made for, and comes back with a token bound to
that cookie (single use, <= 30 s), which the exchange trades for the user name. The same URL opened
in another browser logs nobody in (docs/jupyterhub.md, "The hub login").

Header mode (`header_login`, docs/heavyai.md): the HEAVY.AI web server proxies Immerse's Jupyter
button to /hub/login?newnotebook=true[&sql=...] with the user's HeavyDB session in X-OmniSci-SessionID.
This authenticator's /hub/login hands that header (and `sql`) over the same channel to POST
{session_login_url}; omnisci-handoff logs the user in only once HeavyDB confirms the session, stores
it, and names where the browser goes next (the lab, or its progress page while the server starts).
The header is taken even from a browser that is logged in already: a new Immerse session replaces
the stored one, and a browser logged in as someone else becomes the session's user.

Use it as a zero-to-jupyterhub `hub.extraConfig` snippet (this file's content, then
`c.JupyterHub.authenticator_class = OmnisciHandoffAuthenticator`), or import it from a module.
With the service registered as `hub.services.omnisci-handoff` (url + apiToken) nothing else needs
configuring: the exchange URL and the token are read from that registration.
"""

import json
import os
import re
import secrets

from html import escape

from jupyterhub.auth import Authenticator
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Float, Unicode, default

#: Set by the HEAVY.AI web server on /hub/login only, to the user's HeavyDB session.
SESSION_HEADER = "X-OmniSci-SessionID"
#: Seconds a browser is asked to wait when HeavyDB or the service is briefly unavailable.
RETRY_AFTER = "5"
#: The browser's binding at the hub's login (login mode handoff): random, HttpOnly, on the login path only.
LOGIN_COOKIE = "omnisci-handoff-login"
_LOGIN_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")


class HandoffLoginHandler(LoginHandler):
    """/hub/login: with the session header (header mode) always a fresh login, ending where omnisci-handoff says."""

    async def get(self):
        if not (self.authenticator.header_login and self.request.headers.get(SESSION_HEADER)):
            return await super().get()
        user = await self.login_user()
        if user is None:
            raise web.HTTPError(403)
        # The hub's own get_next_url() would drop the lab URL's valueless ?omnisci&reset.
        self.redirect(getattr(self, "omnisci_next", None) or self.get_next_url(user))


class OmnisciHandoffAuthenticator(Authenticator):
    """Logs a browser in with a one-time login token issued by omnisci-handoff."""

    # /hub/login calls authenticate() directly: the token is in the URL, there is no form.
    auto_login = True

    service_name = Unicode(
        "omnisci-handoff",
        config=True,
        help="Name of the omnisci-handoff JupyterHub service (its registration gives the defaults below; "
        "`omnisci-handoff z2jh-values` sets it).",
    )
    exchange_url = Unicode(
        config=True,
        help="URL of omnisci-handoff's POST login-token/exchange. Default: the service's url + its prefix.",
    )
    api_token = Unicode(
        config=True,
        help="omnisci-handoff's hub API token, which the exchange requires. "
        "Default: $OMNISCI_HANDOFF_API_TOKEN, else the service registration's api_token.",
    )
    header_login = Bool(
        False,
        config=True,
        help=f"Header mode (stock HEAVY.AI): log in with the {SESSION_HEADER} header the HEAVY.AI web server sets on "
        "/hub/login, once omnisci-handoff has confirmed the session with HeavyDB (its config: heavydb.enabled).",
    )
    session_login_url = Unicode(
        config=True,
        help="URL of omnisci-handoff's POST session-login (header mode). Default: the service's url + its prefix.",
    )
    request_timeout = Float(10.0, config=True, help="Timeout of a request to omnisci-handoff, seconds.")
    login_hint = Unicode(
        "Open the notebook from Immerse to log in.",
        config=True,
        help="Shown when a browser arrives without a valid login token.",
    )

    if "allow_all" in Authenticator.class_traits():  # JupyterHub 5+

        @default("allow_all")
        def _default_allow_all(self):
            # omnisci-handoff only issues tokens for users whose Immerse identity it verified.
            return True

    def _service(self):
        for service in self.config.JupyterHub.get("services", None) or []:
            if service.get("name") == self.service_name:
                return service
        return {}

    @default("api_token")
    def _default_api_token(self):
        return os.environ.get("OMNISCI_HANDOFF_API_TOKEN") or self._service().get("api_token", "")

    def _route(self, path):
        url = self._service().get("url")
        if not url:
            return ""
        # The service serves its routes under its hub prefix, {base_url}services/{name}/ (JUPYTERHUB_SERVICE_PREFIX).
        base_url = self.config.JupyterHub.get("base_url", "/") or "/"
        return url_path_join(url, base_url, "services", self.service_name, path)

    @default("exchange_url")
    def _default_exchange_url(self):
        return self._route("login-token/exchange")

    @default("session_login_url")
    def _default_session_login_url(self):
        return self._route("session-login")

    def get_handlers(self, app):
        return [("/login", HandoffLoginHandler)]

    async def _post(self, url, payload):
        """POSTs JSON to omnisci-handoff with its API token; the status and parsed JSON answer, or HTTPClientError/OSError."""
        request = HTTPRequest(
            url,
            method="POST",
            headers={"Authorization": f"token {self.api_token}", "Content-Type": "application/json", "Accept": "application/json"},
            body=json.dumps(payload),
            request_timeout=self.request_timeout,
        )
        response = await AsyncHTTPClient().fetch(request)
        return response.code, json.loads(response.body.decode("utf8"))

    async def _session_login(self, handler, session):
        """Header mode: omnisci-handoff checks the session with HeavyDB, stores it and names the user and the next URL."""
        if not self.session_login_url or not self.api_token:
            self.log.error("OmnisciHandoffAuthenticator needs session_login_url and api_token (or a service registration)")
            raise web.HTTPError(500, "Notebook login is not configured.")
        try:
            payload = {"session": session, "sql": handler.get_argument("sql", "")}
            # A named server (hub.namedServers): /hub/login?server=<name>, passed through for the service to allow or refuse.
            server = handler.get_argument("server", None)
            if server is not None:
                payload["server"] = server
            _, answer = await self._post(self.session_login_url, payload)
        except HTTPClientError as e:
            raise _service_error(e, self.log) from None
        except OSError as e:
            self.log.error("omnisci-handoff session login failed: %s", e.__class__.__name__)
            raise _retryable(502, "The notebook login service cannot be reached; try again shortly.") from None
        name, next_url = answer.get("name"), answer.get("next")
        if not isinstance(name, str) or not name or not isinstance(next_url, str) or not next_url:
            raise web.HTTPError(502, "The notebook login service gave no user name.")
        handler.omnisci_next = next_url
        return {"name": name}

    async def authenticate(self, handler, data=None):
        if self.header_login and (handler.request.headers.get(SESSION_HEADER) or not handler.get_argument("login_token", "")):
            # Without the header too: the service answers why (heavydb_session_missing), with its code.
            return await self._session_login(handler, handler.request.headers.get(SESSION_HEADER, ""))
        token = handler.get_argument("login_token", "")
        if not token:
            raise web.HTTPError(403, self.login_hint)
        if not self.exchange_url or not self.api_token:
            self.log.error("OmnisciHandoffAuthenticator needs exchange_url and api_token (or a service registration)")
            raise web.HTTPError(500, "Notebook login is not configured.")
        binding = handler.get_cookie(LOGIN_COOKIE, "")
        if not _LOGIN_COOKIE_VALUE.fullmatch(binding):
            binding = secrets.token_urlsafe(32)
            # On this login path only and HttpOnly: no page of the hub's origin reads it, no other hub request carries it.
            handler.set_cookie(
                LOGIN_COOKIE, binding, path=handler.request.path, httponly=True, samesite="Lax", secure=handler.request.protocol == "https"
            )
        try:
            code, answer = await self._post(self.exchange_url, {"token": token, "binding": binding})
        except HTTPClientError as e:
            if e.code == 404:
                raise web.HTTPError(403, f"This login link is invalid, expired or already used. {self.login_hint}")
            if e.code == 403:
                # login_browser_mismatch: the link was made for another browser; the service says so.
                raise _service_error(e, self.log) from None
            # Never log the token or the response body: only what failed.
            self.log.error("omnisci-handoff login token exchange failed: HTTP %s", e.code)
            raise web.HTTPError(502, "The notebook login service refused the request.")
        except OSError as e:
            self.log.error("omnisci-handoff login token exchange failed: %s", e.__class__.__name__)
            raise web.HTTPError(502, "The notebook login service cannot be reached.")
        if code == 202:
            # Not a login yet: back to omnisci-handoff, where the browser proves it is the one the token was issued to.
            url = answer.get("continue")
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise web.HTTPError(502, "The notebook login service gave no way to continue.")
            handler.redirect(url)
            raise web.Finish()
        name = answer.get("name")
        if not isinstance(name, str) or not name:
            raise web.HTTPError(502, "The notebook login service gave no user name.")
        return {"name": name}


def _retryable(status, message):
    """An error page that asks the browser to retry: Retry-After, and a link that reloads /hub/login (through
    the HEAVY.AI web server, which sets the session header again)."""
    e = web.HTTPError(status)
    e.jupyterhub_message = message
    e.jupyterhub_html_message = f'<p>{escape(message)}</p><p><a href="">Try again</a></p>'
    e.headers = {"Retry-After": RETRY_AFTER}
    return e


def _service_error(e, log):
    """omnisci-handoff's refusal of a session login as the hub's error page: its status, message and stable code."""
    try:
        body = json.loads(e.response.body.decode("utf8")) if e.response is not None else {}
    except ValueError:
        body = {}
    code, message = body.get("error"), body.get("message")
    if not isinstance(code, str) or not isinstance(message, str) or e.code == 403 and code == "forbidden":
        # Never log the session or the response body: only what failed.
        log.error("omnisci-handoff session login failed: HTTP %s", e.code)
        return web.HTTPError(502, "The notebook login service refused the request.")
    text = f"{message} (code {code})"
    if e.code == 503:
        return _retryable(503, text)
    err = web.HTTPError(e.code)
    err.jupyterhub_message = text
    return err
