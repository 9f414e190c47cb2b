"""Registry of console pages: the browser shell loads every script listed here.

A page is a JavaScript file that calls ``window.Zhinao.registerPage({...})``. Built-in pages
are registered through the same :func:`register_page` that extensions use, so a later
package adds a screen with one line (and no change to the shell)::

    from zhinao.console.pages import register_page
    register_page("meetings", "/static/pages/meetings.js")

Capabilities declare their screens (``Capability.console_pages``, see :mod:`zhinao.capability`);
they are listed after the core's first page and before its administration pages, and read
from the registry on every call, so this module names no capability.

Scripts must be same-origin paths: the console's Content-Security-Policy allows nothing else.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
ENTRY_POINT_GROUP = "zhinao.console_pages"

log = logging.getLogger(__name__)
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ConsolePage:
    id: str
    script: str


_pages: dict[str, ConsolePage] = {}
_loaded = False


def register_page(id: str, script: str) -> ConsolePage:  # noqa: A002 - "id" is the public name
    """Register (or replace) the page ``id`` whose code lives at the URL path ``script``.

    Raises:
        ValueError: the id is not a short slug, or the script is not a same-origin path.
    """
    page = _page(id, script)
    _pages[id] = page
    return page


def _page(id: str, script: str) -> ConsolePage:  # noqa: A002
    if not _ID.match(id):
        raise ValueError(f"console page id {id!r} must be a lowercase slug (a-z, 0-9, '-', '_')")
    if not script.startswith("/") or script.startswith("//") or ":" in script.split("?")[0]:
        raise ValueError(f"console page script {script!r} must be a same-origin path such as /static/pages/x.js")
    return ConsolePage(id, script)


def unregister_page(id: str) -> None:  # noqa: A002
    _pages.pop(id, None)


# Built-in pages, in the order their files are loaded; each file may register several pages.
# The capabilities' pages come between the first and the rest (see :func:`pages`).
BUILTIN_SCRIPTS = {
    "chat": "pages/chat.js",
    "admin": "pages/admin.js",
    "audit": "pages/audit.js",
}
#: built-in pages listed before the capabilities' pages; the other built-ins come after
LEADING = ("chat",)


def _load_builtins_and_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for pid, rel in BUILTIN_SCRIPTS.items():
        if (STATIC_DIR / rel).is_file() and pid not in _pages:
            register_page(pid, f"/static/{rel}")
    # Third-party packages: an entry point in group "zhinao.console_pages" names a callable
    # that calls register_page (the same hook the built-ins use).
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        ep.load()()


def _shipped(page: ConsolePage) -> bool:
    """False for a /static/ script whose file is missing: listing it would break every page load."""
    path = page.script.split("?")[0]
    if not path.startswith("/static/"):
        return True  # served by another mount; not ours to check
    if (STATIC_DIR / path[len("/static/"):]).is_file():
        return True
    log.warning("console page %r is registered but %s does not exist; not listing it", page.id, page.script)
    return False


def _capability_pages() -> list[ConsolePage]:
    from zhinao import capability as registry

    out = []
    for cap in registry.capabilities().values():
        for entry in cap.console_pages:
            try:
                out.append(_page(entry.id, entry.script))  # not kept: the registry is the source
            except ValueError as e:  # one bad declaration must not take the console down
                log.error("capability %s: %s", cap.name, e)
    return out


def pages() -> list[dict[str, str]]:
    """Every registered page whose script exists, as ``{"id", "script"}``: the leading built-ins,
    the capabilities' pages, then the other built-ins and the extensions' pages."""
    _load_builtins_and_plugins()
    caps = _capability_pages()
    ordered = [_pages[i] for i in LEADING if i in _pages] + caps
    seen = {p.id for p in ordered}
    ordered += [p for p in _pages.values() if p.id not in seen]  # an extension may replace a page
    return [asdict(p) for p in ordered if _shipped(p)]
