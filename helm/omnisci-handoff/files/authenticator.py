"""JupyterHub Authenticator for omnisci-handoff's login mode `handoff` (JupyterHub 4.1+ and 5.x).

JupyterHub's documented forced-login pattern ("Logging users in via URL"): omnisci-handoff sends the
browser to /hub/login?login_token=...&next=...; with auto_login the hub calls authenticate() at once,
which trades the one-time token (single use, <= 30 s, bound to one user) for the user name at
POST {exchange_url}, authenticated with omnisci-handoff's hub API token.

Use it as a zero-to-jupyterhub `hub.extraConfig` snippet (this file's content, then
`c.JupyterHub.authenticator_class = OmnisciHandoffAuthenticator`), or import it from a module.
With the service registered as `hub.services.omnisci-handoff` (url + apiToken) nothing else needs
configuring: the exchange URL and the token are read from that registration.
"""

import json
import os

from jupyterhub.auth import Authenticator
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Unicode, default


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
    request_timeout = Float(10.0, config=True, help="Timeout of the exchange request, seconds.")
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

    @default("exchange_url")
    def _default_exchange_url(self):
        url = self._service().get("url")
        if not url:
            return ""
        # The service serves its routes under its hub prefix, {base_url}services/{name}/ (JUPYTERHUB_SERVICE_PREFIX).
        base_url = self.config.JupyterHub.get("base_url", "/") or "/"
        return url_path_join(url, base_url, "services", self.service_name, "login-token/exchange")

    async def authenticate(self, handler, data=None):
        token = handler.get_argument("login_token", "")
        if not token:
            raise web.HTTPError(403, self.login_hint)
        if not self.exchange_url or not self.api_token:
            self.log.error("OmnisciHandoffAuthenticator needs exchange_url and api_token (or a service registration)")
            raise web.HTTPError(500, "Notebook login is not configured.")
        request = HTTPRequest(
            self.exchange_url,
            method="POST",
            headers={"Authorization": f"token {self.api_token}", "Content-Type": "application/json"},
            body=json.dumps({"token": token}),
            request_timeout=self.request_timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            if e.code == 404:
                raise web.HTTPError(403, f"This login link is invalid, expired or already used. {self.login_hint}")
            # Never log the token or the response body: only what failed.
            self.log.error("omnisci-handoff login token exchange failed: HTTP %s", e.code)
            raise web.HTTPError(502, "The notebook login service refused the request.")
        except OSError as e:
            self.log.error("omnisci-handoff login token exchange failed: %s", e.__class__.__name__)
            raise web.HTTPError(502, "The notebook login service cannot be reached.")
        name = json.loads(response.body.decode("utf8")).get("name")
        if not isinstance(name, str) or not name:
            raise web.HTTPError(502, "The notebook login service gave no user name.")
        return {"name": name}
