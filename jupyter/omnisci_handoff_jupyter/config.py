"""Configuration: which session manager answers (jupyterlab-omnisci's ``OmniSciConfig``, plus a
class trait), and this package's own settings (``OmniSciHandoff``).

``OmniSciConfig.omnisci_session_manager`` is the legacy extension's pluggable manager (an instance,
so it can only be set from a Python config file: ``c.OmniSciConfig.omnisci_session_manager =
MyManager()``). ``OmniSciConfig.omnisci_session_manager_class`` (new) names a class, so JSON
config can plug one in too: ``{"OmniSciConfig": {"omnisci_session_manager_class": "pkg.Manager"}}``.
A manager is anything with ``get_session()`` (duck-typed, so a manager written for the legacy
extension's base class works here as well).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from traitlets import Any, Bool, Float, TraitError, Type, Unicode, default, validate
from traitlets.config import Configurable

from .session import OmniSciSessionManager


class OmniSciConfig(Configurable):
    """Configures access to OmniSci: the session manager."""

    omnisci_session_manager_class = Type(
        default_value=OmniSciSessionManager,
        klass=object,
        config=True,
        help="The session manager class (import string in JSON config), used unless "
        "omnisci_session_manager is set. It is created with the server's config.",
    )

    omnisci_session_manager = Any(
        config=True,
        help="A manager instance that knows how to get data for an active OmniSci session "
        "(jupyterlab-omnisci's trait): anything with get_session().",
    )

    @default("omnisci_session_manager")
    def _default_omnisci_session_manager(self):
        return self.omnisci_session_manager_class(config=self.config)

    @validate("omnisci_session_manager")
    def _valid_manager(self, proposal):
        manager = proposal["value"]
        if not callable(getattr(manager, "get_session", None)):
            raise TraitError(
                f"OmniSciConfig.omnisci_session_manager must have get_session(), got {type(manager).__name__}"
            )
        return manager


class OmniSciHandoff(Configurable):
    """The notebook side's own settings (omnisci-handoff writes them into the Jupyter config it
    generates: ``{"OmniSciHandoff": {"relink_url": ...}}`` in ``jupyter_server_config.json``).

    Read by the server extension (the status endpoint, the lab's page config) and by
    ``omnisci_handoff_jupyter.connect()`` in the kernel (the re-link URL in its errors).
    """

    relink_url = Unicode(
        "",
        config=True,
        help="Where 'Re-link with Immerse' sends the user once the session expired (an http(s) URL, "
        "e.g. Immerse's): opening the notebook from there hands a new session over. Empty: the lab "
        "and connect()'s errors only say to open the notebook again from Immerse.",
    )

    session_wait_timeout = Float(
        120.0,
        config=True,
        help="Seconds the lab waits, when opened for a new handoff (?omnisci-handoff=<fingerprint>), "
        "for that session to reach this server before it says what went wrong. A running server gets "
        "a new session when the kubelet syncs its Secret volume: 60-90 s without fast refresh.",
    )

    status_interval = Float(
        60.0,
        config=True,
        help="Seconds between the lab's checks of the session while the user works in it (none while "
        "the tab is hidden or nobody used it since the last check: each check is a use of the session "
        "for HeavyDB's idle timeout).",
    )

    status_cache_seconds = Float(
        10.0,
        config=True,
        help="Seconds GET omnisci/session/status reuses HeavyDB's last answer for the same session "
        "(one get_session_info for all the user's tabs).",
    )

    run_on_open = Bool(
        False,
        config=True,
        help="Run the notebook the lab opens for a handoff once its kernel is up, so that it shows the "
        "query's rows. Off: the user runs it (a handed-over query may be costly).",
    )

    heavydb_timeout = Float(
        5.0,
        config=True,
        help="Seconds a session check (HeavyDB's get_session_info) may take before HeavyDB counts as unreachable.",
    )

    @validate("relink_url")
    def _valid_relink_url(self, proposal):
        url = proposal["value"].strip()
        parsed = urlsplit(url)
        if url and (parsed.scheme not in ("http", "https") or not parsed.netloc):
            raise TraitError(f"OmniSciHandoff.relink_url must be an http(s) URL, got {url!r}")
        return url

    @validate("session_wait_timeout", "status_interval", "heavydb_timeout")
    def _positive(self, proposal):
        if not proposal["value"] > 0:
            raise TraitError(f"OmniSciHandoff.{proposal['trait'].name} must be > 0, got {proposal['value']}")
        return proposal["value"]

    @validate("status_cache_seconds")
    def _not_negative(self, proposal):
        if not proposal["value"] >= 0:
            raise TraitError(f"OmniSciHandoff.status_cache_seconds must be >= 0, got {proposal['value']}")
        return proposal["value"]

    def page_config(self) -> dict:
        """What the lab extension reads (PageConfig ``omnisciHandoff``)."""
        return {
            "relinkUrl": self.relink_url,
            "sessionWaitTimeout": self.session_wait_timeout,
            "statusInterval": self.status_interval,
            "runOnOpen": self.run_on_open,
        }
