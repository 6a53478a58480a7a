"""GraphiQL, served by this service: the page, its assets and its Content-Security-Policy.

The assets (React, ReactDOM, GraphiQL and its explorer plugin) are vendored under
app/static/graphiql/ at pinned versions (`make graphiql-assets` fetches them from the npm
registry and writes manifest.json with their sha384); the page's own script and styles
are files there too. Each is served at `/graphiql/assets/<hash>/<name>`, the hash of its
content: `immutable` caching is safe, and the page's tags carry `integrity=`. The CSP
lets the page load only those files from this origin (no CDN, nothing inline) and talk
only to this endpoint (HTTP and WebSocket)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.http.payment_pages import security_headers

STATIC = Path(__file__).resolve().parent.parent / "static" / "graphiql"
ASSET_ROUTE = "/graphiql/assets"
IMMUTABLE = "public, max-age=31536000, immutable"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# The page's own files, beside the vendored ones of manifest.json.
OWN = {"page.css": "page.css", "page.js": "page.js"}
STYLES = ("graphiql.css", "explorer.css", "page.css")
SCRIPTS = ("react.js", "react-dom.js", "graphiql.js", "explorer.js", "page.js")


@dataclass(frozen=True)
class Asset:
    name: str
    content: bytes
    integrity: str  # sha384-…, as in an integrity= attribute
    digest: str  # the URL's part: hex of the sha384, shortened

    @property
    def url(self) -> str:
        return f"{ASSET_ROUTE}/{self.digest}/{self.name}"

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[Path(self.name).suffix]


def _asset(name: str, path: Path, expected: str | None = None) -> Asset:
    content = path.read_bytes()
    digest = hashlib.sha384(content).digest()
    integrity = "sha384-" + base64.b64encode(digest).decode()
    if expected is not None and integrity != expected:
        raise RuntimeError(f"{path} does not match manifest.json ({expected}): re-vendor it")
    return Asset(name, content, integrity, digest.hex()[:16])


@lru_cache(maxsize=1)
def assets() -> dict[str, Asset]:
    """Every file the page loads, by name; the vendored ones checked against the manifest."""
    manifest = json.loads((STATIC / "manifest.json").read_text())
    found = {
        name: _asset(name, STATIC / entry["path"], entry["integrity"])
        for name, entry in manifest.items()
    }
    found.update({name: _asset(name, STATIC / file) for name, file in OWN.items()})
    return found


# The tab's icon: strawberry's, inline (img-src data:).
ICON = (
    "data:image/svg+xml,<svg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 100 100%22>"
    "<text y=%22.9em%22 font-size=%2280%22>&#x1f353;</text></svg>"
)


@lru_cache(maxsize=1)
def page() -> str:
    found = assets()
    styles = "".join(
        f'<link rel="stylesheet" href="{found[n].url}" integrity="{found[n].integrity}">'
        for n in STYLES
    )
    scripts = "".join(
        f'<script src="{found[n].url}" integrity="{found[n].integrity}"></script>' for n in SCRIPTS
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>GraphiQL · Partners VRAI dossier API</title>"
        f'<link rel="icon" href="{html.escape(ICON)}">{styles}</head>'
        '<body><div id="graphiql" class="graphiql-container">Loading…</div>'
        f"{scripts}</body></html>"
    )


def graphiql_csp(websocket_origin: str) -> str:
    """Scripts and styles from this origin only (the page's files, nothing inline), the
    data: icon and the data: fonts of GraphiQL's CSS, and this endpoint over HTTP and
    WebSocket. Nothing else runs, loads or connects."""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src data:",
            f"connect-src 'self' {websocket_origin}",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )


def graphiql_page(request: Request) -> HTMLResponse:
    websocket = ("wss" if request.url.scheme == "https" else "ws") + "://" + request.url.netloc
    csp = graphiql_csp(websocket)
    return HTMLResponse(page(), headers=security_headers(csp, no_store=False))


async def graphiql_asset(request: Request) -> Response:
    """`GET /graphiql/assets/<hash>/<name>`: one of the page's files, cached for a year
    (its URL changes with its content); any other path is a 404."""
    asset = assets().get(request.path_params["name"])
    if asset is None or asset.digest != request.path_params["digest"]:
        return Response("Not found.", status_code=404, headers=security_headers())
    return Response(
        asset.content,
        media_type=asset.content_type,
        headers={
            **security_headers("default-src 'none'", no_store=False),
            "cache-control": IMMUTABLE,
            "cross-origin-resource-policy": "same-origin",
        },
    )
