"""omnisci-handoff's notebook side for jupyter_server 2 and JupyterLab 4.

- a jupyter_server extension serving ``GET {base_url}omnisci/session`` (jupyterlab-omnisci's
  contract and config: the ``OmniSciSessionManager`` section) and ``GET
  {base_url}omnisci/session/status`` (the session's state at HeavyDB), to the server's owner only;
- a prebuilt JupyterLab 4 extension (``share/jupyter/labextensions/omnisci-handoff-jupyter``) that,
  on ``?omnisci`` in the lab URL, opens a notebook connected to HeavyDB with that session, and
  shows the session's state in the status bar;
- :func:`connect` for the kernel: a pyheavydb connection that follows the handed-over session.

Installing the wheel enables the server extension (``etc/jupyter/jupyter_server_config.d``).
"""

from __future__ import annotations

from .config import OmniSciConfig, OmniSciHandoff
from .session import BaseOmniSciSessionManager, OmniSciSessionManager, SessionError

__version__ = "0.1.0"

__all__ = [
    "BaseOmniSciSessionManager",
    "OmniSciConfig",
    "OmniSciHandoff",
    "OmniSciSessionManager",
    "SessionError",
    "__version__",
    "connect",
]

#: The routes, relative to the server's base_url (the first is jupyterlab-omnisci's).
SESSION_ROUTE = "omnisci/session"
STATUS_ROUTE = "omnisci/session/status"


def connect(**kwargs):
    """A pyheavydb connection on the handed-over session that follows new handoffs (kernel side;
    needs pyheavydb, the ``[heavydb]`` extra): see :func:`omnisci_handoff_jupyter.kernel.connect`."""
    from .kernel import connect as _connect

    return _connect(**kwargs)


def _jupyter_server_extension_points():
    return [{"module": "omnisci_handoff_jupyter"}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "omnisci-handoff-jupyter"}]


def _answer_first(web_app, route, log):
    """Puts our rule before any earlier one for the same route: jupyter_server loads extensions in
    alphabetical order, so where jupyterlab-omnisci's server extension also loads (a classic stack
    with jupyter_server 2 added), its handler would otherwise answer ``/omnisci/session``, with its
    own behaviour (an empty session for a missing file, a traceback for a plain id)."""
    rules = web_app.default_router.rules
    pattern = route if route.endswith("$") else route + "$"

    def handlers_for_route(rule):
        return [
            inner.target
            for inner in getattr(rule.target, "rules", ())
            if getattr(getattr(inner.matcher, "regex", None), "pattern", None) == pattern
        ]

    ours = [r for r in rules if any(getattr(h, "__module__", "").startswith(__name__) for h in handlers_for_route(r))]
    earlier = [r for r in rules if r not in ours and handlers_for_route(r)]
    if not ours or not earlier or rules.index(ours[-1]) < rules.index(earlier[0]):
        return
    rules.remove(ours[-1])
    rules.insert(rules.index(earlier[0]), ours[-1])
    others = sorted({f"{h.__module__}.{h.__name__}" for r in earlier for h in handlers_for_route(r)})
    log.info(
        "omnisci_handoff_jupyter | %s is also registered for GET %s (an older extension); "
        "this extension answers it",
        ", ".join(others),
        route,
    )


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.utils import url_path_join

    from .handlers import OmniSciSessionHandler, OmniSciSessionStatusHandler

    web_app = serverapp.web_app
    base_url = web_app.settings["base_url"]
    route = url_path_join(base_url, SESSION_ROUTE)
    web_app.add_handlers(
        ".*$", [(route, OmniSciSessionHandler), (url_path_join(base_url, STATUS_ROUTE), OmniSciSessionStatusHandler)]
    )
    try:
        _answer_first(web_app, route, serverapp.log)
    except Exception as e:  # tornado internals changed: keep the registration as it is
        serverapp.log.warning("omnisci_handoff_jupyter | could not check for other /omnisci/session handlers: %r", e)
    # The lab extension's settings (PageConfig "omnisciHandoff"); the same dict jupyterlab fills.
    settings = OmniSciHandoff(config=serverapp.config)
    web_app.settings.setdefault("page_config_data", {})["omnisciHandoff"] = settings.page_config()
    manager = OmniSciSessionManager(config=serverapp.config)
    serverapp.log.info(
        "omnisci_handoff_jupyter | GET %s serves the session from %s (connection from $%s, $%s, $%s)",
        route,
        manager.session_file or "<no OmniSciSessionManager.session_file configured>",
        manager.protocol,
        manager.host,
        manager.port,
    )
