"""Every setting of the shipped authenticator (its configurable traits) has a row in docs/jupyterhub.md
("The shipped authenticator") that states its default: a setting added without documentation fails here."""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "helm/omnisci-handoff/files"))
from authenticator import OmnisciHandoffAuthenticator  # noqa: E402

DOC = (ROOT / "docs/jupyterhub.md").read_text()


def section(markdown, heading):
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end >= 0 else None]


def rows(markdown):
    """The settings table: name -> default cell."""
    return {m[1]: m[2].strip() for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \|", markdown, re.M)}


DOCUMENTED = rows(section(DOC, "The shipped authenticator"))
SETTINGS = OmnisciHandoffAuthenticator.class_own_traits(config=True)


def documented_default(trait):
    """What the row must show: a literal default as Python writes it, or (for a computed default) any description."""
    if trait.name in OmnisciHandoffAuthenticator._trait_default_generators:
        return None
    value = trait.default_value
    return f"`{json.dumps(value)}`" if isinstance(value, str) else f"`{value!r}`"


def test_the_authenticator_has_settings():
    assert {"header_login", "request_timeout", "service_name"} <= set(SETTINGS)


def test_every_setting_has_a_row_with_its_default():
    missing = sorted(set(SETTINGS) - set(DOCUMENTED))
    assert missing == [], f"document these settings in docs/jupyterhub.md (The shipped authenticator): {missing}"
    for name, trait in SETTINGS.items():
        expected = documented_default(trait)
        cell = DOCUMENTED[name]
        if expected is None:
            assert cell and cell != "`\"\"`", f"{name}: say what its computed default is"
        else:
            assert cell == expected, f"{name}: the docs say {cell}, the default is {expected}"


def test_no_row_for_a_setting_that_does_not_exist():
    assert sorted(set(DOCUMENTED) - set(SETTINGS)) == []
