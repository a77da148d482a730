"""Which session manager answers: jupyterlab-omnisci's ``OmniSciConfig``, plus a class trait.

``OmniSciConfig.omnisci_session_manager`` is the legacy extension's pluggable manager (an instance,
so it can only be set from a Python config file: ``c.OmniSciConfig.omnisci_session_manager =
MyManager()``). ``OmniSciConfig.omnisci_session_manager_class`` (new) names a class, so JSON
config can plug one in too: ``{"OmniSciConfig": {"omnisci_session_manager_class": "pkg.Manager"}}``.
A manager is anything with ``get_session()`` (duck-typed, so a manager written for the legacy
extension's base class works here as well).
"""

from __future__ import annotations

from traitlets import Any, TraitError, Type, default, validate
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
