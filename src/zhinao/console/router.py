"""HTTP surface of the console: the HTML shell at ``/``, the page registry, the static files.

The shell is static; everything it shows comes from the JSON API with the user's token,
so these routes need no authentication (they reveal no data).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from zhinao.console.pages import STATIC_DIR, pages
from zhinao.gateway.middleware import HTML_CSP, SECURITY_HEADERS

router = APIRouter(tags=["console"])

# Model output is rendered in this page, so it is locked down (same-origin scripts only, no inline
# script, no framing): the policy is the gateway's HTML policy, which the request middleware also
# puts on every other response, HTML or not (with nosniff, no-referrer, X-Frame-Options).
_SECURITY_HEADERS = {"Content-Security-Policy": HTML_CSP, **SECURITY_HEADERS, "Cache-Control": "no-cache"}


@router.get("/", include_in_schema=False)
def console_shell() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_SECURITY_HEADERS)


@router.get("/api/console/pages")
def console_pages() -> list[dict[str, str]]:
    """Scripts the shell loads; each registers one or more pages with ``Zhinao.registerPage``."""
    return pages()


def mount(app: FastAPI) -> None:
    """Serve the console from ``app``: static files at /static plus the routes above."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
