"""Loading the server extension: the route, and precedence over jupyterlab-omnisci's handler."""

import logging
from types import SimpleNamespace

from tornado import httputil, web
from traitlets.config import Config

import omnisci_handoff_jupyter as ext
from omnisci_handoff_jupyter.handlers import OmniSciSessionHandler

BASE = "/user/alice/"


class LegacyHandler(web.RequestHandler):
    """Stands for jupyterlab_omnisci.serverextension's handler, which jupyter_server loads first
    (extensions load in alphabetical order) where that package is importable."""

    def get(self):
        self.finish({})


def load(*earlier):
    app = web.Application([], base_url=BASE)
    for handler in earlier:
        app.add_handlers(".*$", [(f"{BASE}omnisci/session", handler)])
    log = logging.getLogger("test-extension")
    ext._load_jupyter_server_extension(SimpleNamespace(web_app=app, log=log, config=Config()))
    return app


def handler_for(app, path):
    start = httputil.RequestStartLine("GET", path, "HTTP/1.1")
    request = httputil.HTTPServerRequest(start_line=start, headers=httputil.HTTPHeaders({"Host": "127.0.0.1"}))
    delegate = app.find_handler(request)
    return getattr(delegate, "handler_class", None)


def test_points_and_paths():
    assert ext._jupyter_server_extension_points() == [{"module": "omnisci_handoff_jupyter"}]
    assert ext._jupyter_labextension_paths() == [{"src": "labextension", "dest": "omnisci-handoff-jupyter"}]


def test_route_under_base_url():
    app = load()
    assert handler_for(app, f"{BASE}omnisci/session") is OmniSciSessionHandler
    assert handler_for(app, "/omnisci/session") is not OmniSciSessionHandler


def test_answers_before_the_legacy_handler(caplog):
    with caplog.at_level(logging.INFO, logger="test-extension"):
        app = load(LegacyHandler)
    assert handler_for(app, f"{BASE}omnisci/session") is OmniSciSessionHandler
    assert "LegacyHandler is also registered" in caplog.text


def test_leaves_other_routes_alone():
    app = load(LegacyHandler)
    app.add_handlers(".*$", [(f"{BASE}other", LegacyHandler)])
    assert handler_for(app, f"{BASE}other") is LegacyHandler
