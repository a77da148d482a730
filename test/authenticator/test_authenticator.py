"""Tests of helm/omnisci-handoff/files/authenticator.py: a real tornado request reaches authenticate(),
which talks HTTP to a stand-in of omnisci-handoff's login-token exchange (same protocol: token auth; a
first login token earns the way back to the service (202 + continue) and a final token bound to the
browser's login cookie, which logs in once and only with that cookie; 404 for unknown tokens) and of
its header-mode session login (the session header and `sql` in, `name` and `next` or an error with its
code out). The end-to-end pairing with the real
service and a real hub is covered by test/integration/hub.test.ts and heavyai-header.test.ts."""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tornado.testing import AsyncHTTPTestCase
from tornado.web import Application, HTTPError, RequestHandler
from traitlets.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "helm/omnisci-handoff/files"))
from authenticator import LOGIN_COOKIE, OmnisciHandoffAuthenticator  # noqa: E402

API_TOKEN = "service-api-token"


class Exchange:
    """Serves POST …/login-token/exchange and …/session-login like omnisci-handoff does."""

    def __init__(self):
        #: First login tokens (as the service issues them to the browser): token -> user.
        self.tokens = {}
        #: Final login tokens, made by the way back: token -> (user, the login cookie they are bound to).
        self.finals = {}
        #: Header mode: session -> user; "down" answers like HeavyDB being unreachable.
        self.sessions = {}
        self.calls = []
        self.bodies = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.calls.append((self.path, self.headers.get("Authorization")))
                outer.bodies.append(body)
                if self.headers.get("Authorization") != f"token {API_TOKEN}":
                    return self._reply(403, {"error": "forbidden"})
                if self.path.endswith("/session-login"):
                    return self._session_login(body)
                token, binding = body.get("token"), body.get("binding")
                if token in outer.tokens:
                    final = f"{token}-final"
                    outer.finals[final] = (outer.tokens[token], binding)
                    return self._reply(202, {"continue": f"{outer.url}/services/omnisci-handoff/login/continue?ticket={final}"})
                if token not in outer.finals:
                    return self._reply(404, {"error": "login_token_invalid"})
                name, bound = outer.finals[token]
                if binding != bound:
                    return self._reply(403, {"error": "login_browser_mismatch", "message": "This login link belongs to another browser."})
                del outer.finals[token]
                self._reply(200, {"name": name})

            def _session_login(self, body):
                session = body.get("session")
                if not session:
                    return self._reply(401, {"error": "heavydb_session_missing", "message": "No HEAVY.AI session came with this login."})
                if session == "down":
                    return self._reply(503, {"error": "heavydb_unavailable", "message": "HEAVY.AI could not be reached."})
                name = outer.sessions.get(session)
                if not name:
                    return self._reply(401, {"error": "heavydb_session_invalid", "message": "Your HEAVY.AI session is unknown or has expired."})
                self._reply(200, {"name": name, "next": f"/jupyter/services/omnisci-handoff/progress/{name}-ticket"})

            def _reply(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


class Login(RequestHandler):
    async def get(self):
        try:
            user = await self.settings["authenticator"].authenticate(self, None)
        except HTTPError as e:
            self.set_status(e.status_code)
            for k, v in (getattr(e, "headers", None) or {}).items():
                self.set_header(k, v)
            return self.write({"error": getattr(e, "jupyterhub_message", e.log_message), "html": getattr(e, "jupyterhub_html_message", "")})
        self.write({**user, **({"next": self.omnisci_next} if hasattr(self, "omnisci_next") else {})})


class AuthenticatorTest(AsyncHTTPTestCase):
    def setUp(self):
        self.exchange = Exchange()
        super().setUp()

    def tearDown(self):
        super().tearDown()
        self.exchange.close()

    def config(self):
        c = Config()
        # The z2jh registration of the service is all the authenticator needs.
        c.JupyterHub.services = [{"name": "omnisci-handoff", "url": self.exchange.url, "api_token": API_TOKEN}]
        return c

    def get_app(self):
        self.authenticator = OmnisciHandoffAuthenticator(config=self.config())
        return Application([(r"/hub/login", Login)], authenticator=self.authenticator)

    def login(self, query, headers=None, cookie=None):
        """GET /hub/login (with the login cookie `cookie`); a redirect is answered as {"location"}."""
        headers = {**(headers or {}), **({"Cookie": f"{LOGIN_COOKIE}={cookie}"} if cookie else {})}
        response = self.fetch(f"/hub/login{query}", headers=headers, follow_redirects=False)
        self.last_headers = response.headers
        if response.code in (301, 302, 303):
            return response.code, {"location": response.headers["Location"]}
        return response.code, json.loads(response.body)

    def login_cookie(self):
        """The login cookie the last answer set: its value and attributes."""
        for c in self.last_headers.get_list("Set-Cookie"):
            if c.startswith(f"{LOGIN_COOKIE}="):
                value, *attrs = [p.strip() for p in c.split(";")]
                return value.split("=", 1)[1], {a.split("=")[0].lower(): (a.split("=", 1)[1] if "=" in a else True) for a in attrs}
        return None, {}

    def bound_login(self, token):
        """A first login token through the way back: the final token and the cookie it is bound to."""
        code, body = self.login(f"?login_token={token}")
        assert code == 302
        cookie, _ = self.login_cookie()
        return body["location"].rsplit("ticket=", 1)[1], cookie

    def test_defaults_come_from_the_service_registration(self):
        assert self.authenticator.exchange_url == f"{self.exchange.url}/services/omnisci-handoff/login-token/exchange"
        assert self.authenticator.api_token == API_TOKEN
        assert self.authenticator.auto_login is True

    def test_a_token_logs_its_user_in_once(self):
        self.exchange.tokens["t1"] = "alice"
        # The first token logs nobody in: the browser gets a login cookie and goes back to the service.
        code, body = self.login("?login_token=t1")
        assert (code, body) == (302, {"location": f"{self.exchange.url}/services/omnisci-handoff/login/continue?ticket=t1-final"})
        cookie, attrs = self.login_cookie()
        assert len(cookie) == 43
        # Only the hub's login reads it: HttpOnly, on this path, not sent cross-site by a POST; Secure over https only.
        assert attrs == {"path": "/hub/login", "httponly": True, "samesite": "Lax"}
        assert self.exchange.bodies == [{"token": "t1", "binding": cookie}]
        # Back with the final token and the same cookie: logged in, once.
        assert self.login("?login_token=t1-final", cookie=cookie) == (200, {"name": "alice"})
        assert self.exchange.bodies[-1] == {"token": "t1-final", "binding": cookie}
        assert self.login_cookie() == (None, {})
        assert self.exchange.calls == [("/services/omnisci-handoff/login-token/exchange", f"token {API_TOKEN}")] * 2
        code, body = self.login("?login_token=t1-final", cookie=cookie)
        assert code == 403 and "already used" in body["error"]

    def test_a_login_url_opened_in_another_browser_logs_nobody_in(self):
        self.exchange.tokens["t5"] = "mallory"
        final, cookie = self.bound_login("t5")
        # Another browser (no cookie, or its own): the service's refusal, with its code; the token is not used up.
        for other in (None, "x" * 43):
            code, body = self.login(f"?login_token={final}", cookie=other)
            assert code == 403 and body["error"] == "This login link belongs to another browser. (code login_browser_mismatch)"
        assert self.login(f"?login_token={final}", cookie=cookie) == (200, {"name": "mallory"})

    def test_a_malformed_cookie_is_replaced(self):
        self.exchange.tokens["t6"] = "carol"
        code, _ = self.login("?login_token=t6", cookie="short")
        cookie, _ = self.login_cookie()
        assert code == 302 and len(cookie) == 43
        assert self.exchange.bodies == [{"token": "t6", "binding": cookie}]

    def test_the_session_header_is_ignored_unless_header_login(self):
        code, body = self.login("?newnotebook=true", {"X-OmniSci-SessionID": "s1"})
        assert code == 403 and "Immerse" in body["error"]
        assert self.exchange.calls == []

    def test_no_token_is_refused_with_the_hint(self):
        code, body = self.login("")
        assert code == 403 and "Immerse" in body["error"]
        assert self.exchange.calls == []

    def test_a_wrong_api_token_is_a_service_error_not_a_login(self):
        self.authenticator.api_token = "wrong"
        self.exchange.tokens["t2"] = "bob"
        code, _ = self.login("?login_token=t2")
        assert code == 502
        assert self.exchange.tokens == {"t2": "bob"}

    def test_an_unreachable_service_is_a_502(self):
        self.authenticator.exchange_url = "http://127.0.0.1:1/nowhere"
        code, body = self.login("?login_token=t3")
        assert code == 502 and "cannot be reached" in body["error"]


@pytest.mark.parametrize("with_env", [True, False])
def test_api_token_from_env_wins(monkeypatch, with_env):
    if with_env:
        monkeypatch.setenv("OMNISCI_HANDOFF_API_TOKEN", "from-env")
    else:
        monkeypatch.delenv("OMNISCI_HANDOFF_API_TOKEN", raising=False)
    c = Config()
    c.JupyterHub.services = [{"name": "omnisci-handoff", "url": "http://svc:8470", "api_token": "from-config"}]
    a = OmnisciHandoffAuthenticator(config=c)
    assert a.api_token == ("from-env" if with_env else "from-config")


class CustomNameAndBaseUrlTest(AuthenticatorTest):
    """A non-root hub base_url and a custom service name (z2jh's hub.baseUrl, the chart's jupyterhub.serviceName)."""

    def config(self):
        c = super().config()
        c.JupyterHub.base_url = "/jhub/"
        c.JupyterHub.services = [{"name": "notebooks", "url": self.exchange.url, "api_token": API_TOKEN}]
        c.OmnisciHandoffAuthenticator.service_name = "notebooks"
        return c

    def test_defaults_come_from_the_service_registration(self):
        assert self.authenticator.exchange_url == f"{self.exchange.url}/jhub/services/notebooks/login-token/exchange"
        assert self.authenticator.api_token == API_TOKEN

    def test_a_token_logs_its_user_in_once(self):
        self.exchange.tokens["t1"] = "alice"
        final, cookie = self.bound_login("t1")
        assert self.login(f"?login_token={final}", cookie=cookie) == (200, {"name": "alice"})
        assert self.exchange.calls == [("/jhub/services/notebooks/login-token/exchange", f"token {API_TOKEN}")] * 2


class HeaderLoginTest(AuthenticatorTest):
    """Header mode: the HEAVY.AI web server's X-OmniSci-SessionID on /hub/login, checked by omnisci-handoff."""

    def config(self):
        c = super().config()
        c.OmnisciHandoffAuthenticator.header_login = True
        return c

    def test_defaults_come_from_the_service_registration(self):
        super().test_defaults_come_from_the_service_registration()
        assert self.authenticator.session_login_url == f"{self.exchange.url}/services/omnisci-handoff/session-login"
        from authenticator import HandoffLoginHandler

        assert self.authenticator.get_handlers(None) == [("/login", HandoffLoginHandler)]

    def test_the_session_header_is_ignored_unless_header_login(self):
        pass  # header_login is on here

    def test_no_token_is_refused_with_the_hint(self):
        # In header mode the service says why, with its code.
        code, body = self.login("?newnotebook=true")
        assert code == 401 and body["error"].endswith("(code heavydb_session_missing)")

    def test_the_session_and_sql_log_the_user_in_and_name_the_next_url(self):
        self.exchange.sessions["s1"] = "alice"
        code, body = self.login("?newnotebook=true&sql=SELECT%201", {"X-OmniSci-SessionID": "s1"})
        assert (code, body) == (200, {"name": "alice", "next": "/jupyter/services/omnisci-handoff/progress/alice-ticket"})
        assert self.exchange.calls == [("/services/omnisci-handoff/session-login", f"token {API_TOKEN}")]
        assert self.exchange.bodies == [{"session": "s1", "sql": "SELECT 1"}]

    def test_a_server_query_parameter_is_passed_through_for_the_service_to_judge(self):
        # hub.namedServers: /hub/login?server=<name>; the service allows or refuses it, not the authenticator.
        self.exchange.sessions["s3"] = "alice"
        code, _ = self.login("?newnotebook=true&server=analysis", {"X-OmniSci-SessionID": "s3"})
        assert code == 200
        assert self.exchange.bodies == [{"session": "s3", "sql": "", "server": "analysis"}]

    def test_an_unknown_session_is_the_services_401_with_its_code(self):
        code, body = self.login("?newnotebook=true", {"X-OmniSci-SessionID": "forged"})
        assert code == 401 and body["error"].endswith("(code heavydb_session_invalid)")

    def test_heavydb_down_asks_to_retry(self):
        code, body = self.login("?newnotebook=true", {"X-OmniSci-SessionID": "down"})
        assert code == 503 and body["error"].endswith("(code heavydb_unavailable)")
        assert self.last_headers["Retry-After"] == "5"
        assert 'href="">Try again' in body["html"]

    def test_the_header_wins_over_a_login_token(self):
        self.exchange.sessions["s2"] = "bob"
        self.exchange.tokens["t9"] = "mallory"
        code, body = self.login("?login_token=t9", {"X-OmniSci-SessionID": "s2"})
        assert code == 200 and body["name"] == "bob"
        assert self.exchange.tokens == {"t9": "mallory"}

    # test_a_token_logs_its_user_in_once (inherited): a login token without the header still logs in.
