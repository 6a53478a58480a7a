"""GraphiQL served by us: the page, its vendored assets (integrity, immutable caching) and
its CSP; and the page itself in headless Chromium with the network blocked for anything
but our server: log in, a query, a subscription, a screenshot."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from app.http.graphiql import assets
from app.main import create_app
from app.settings import Settings
from tests.browser_support import REQUIRE_ENV, Browser, chromium_binary
from tests.factories import PASSWORD, make_agent, make_client, make_dossier
from tests.helpers import gql
from tests.ws_support import serve, settings_with

SEND = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { message { id } userErrors { code } }
}
"""


def _directives(csp: str) -> dict[str, list[str]]:
    return {
        part.split()[0]: part.split()[1:] for part in (p.strip() for p in csp.split(";")) if part
    }


async def _page(app) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.get("/graphql", headers={"accept": "text/html"})


async def test_the_page_loads_only_our_files_with_their_integrity():
    app = create_app(Settings(env="development", graphiql=True), manage_db=False)
    response = await _page(app)
    assert response.status_code == 200
    page = response.text
    assert "https://" not in page.replace("http://www.w3.org/2000/svg", "")  # no CDN
    tags = re.findall(
        r'<(?:script src|link rel="stylesheet" href)="([^"]+)" integrity="([^"]+)"', page
    )
    assert len(tags) == 8  # react, react-dom, graphiql (js, css), explorer (js, css), ours (2)
    assert "<script>" not in page  # nothing inline
    assert "<style>" not in page
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for url, integrity in tags:
            assert url.startswith("/graphiql/assets/")
            asset = await http.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert asset.headers["x-content-type-options"] == "nosniff"
            assert asset.headers["content-type"].startswith(("text/javascript", "text/css"))
            digest = base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
            assert integrity == f"sha384-{digest}"
            assert url.split("/")[3] == hashlib.sha384(asset.content).hexdigest()[:16]
        # another hash under the same name (an old or a made-up version) is no file of ours
        name = tags[0][0].rsplit("/", 1)[1]
        assert (await http.get(f"/graphiql/assets/{'0' * 16}/{name}")).status_code == 404
        assert (await http.get(f"/graphiql/assets/{'0' * 16}/nope.js")).status_code == 404


async def test_the_vendored_files_are_the_pinned_ones():
    manifest = json.loads(
        (Path(__file__).parent.parent / "app/static/graphiql/manifest.json").read_text()
    )
    versions = {entry["package"]: entry["version"] for entry in manifest.values()}
    assert versions == {
        "react": "18.2.0",
        "react-dom": "18.2.0",
        "graphiql": "3.8.3",
        "@graphiql/plugin-explorer": "1.0.2",
    }
    for name, entry in manifest.items():  # assets() checks each file against its sha384
        assert assets()[name].integrity == entry["integrity"]


async def test_the_csp_allows_only_this_origin():
    app = create_app(Settings(env="development", graphiql=True), manage_db=False)
    response = await _page(app)
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    csp = _directives(headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no CDN, no inline, no eval
    assert csp["style-src"] == ["'self'"]
    assert csp["font-src"] == ["data:"]
    assert csp["connect-src"] == ["'self'", "ws://testserver"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]


async def test_no_assets_route_when_graphiql_is_off():
    app = create_app(Settings(env="development", graphiql=False), manage_db=False)
    transport = httpx.ASGITransport(app=app)
    asset = next(iter(assets().values()))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get(asset.url)).status_code == 404


# --- in a browser, offline --------------------------------------------------------------

LOGIN = """mutation {
  login(input: {email: "%s", password: "%s"}) { token userErrors { code message } }
}"""


def _browser_or_skip() -> str:
    binary = chromium_binary()
    if binary is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set and no chromium was found (apt install chromium)")
        pytest.skip("chromium is not installed (apt install chromium; .ci/run installs it)")
    return binary


async def _type_query(page, value: str) -> None:
    """Put `value` into the query editor (as typing would) and wait until GraphiQL has
    parsed it: it decides query or subscription (HTTP or WebSocket) from that parse."""
    editor = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
    await page.evaluate(f"{editor}.setValue({json.dumps(value)})")
    await page.wait_for(
        f"{editor}.documentAST && {editor}.documentAST.loc.source.body === {json.dumps(value)}",
        what="GraphiQL to parse the query",
    )


# GraphiQL sends a subscription over the WebSocket (anonymous ones too)
SUBSCRIPTION = 'subscription Chat { messageAdded(dossierId: "DOSSIER") { node { content } } }'
RESULT = "document.querySelector('.result-window .CodeMirror').CodeMirror.getValue()"
RUN = "document.querySelector('.graphiql-execute-button').click()"


async def test_graphiql_works_offline_in_chromium(client, tmp_path):
    binary = _browser_or_skip()
    agent = await make_agent()
    owner = await make_client()
    dossier = await make_dossier(owner)
    async with serve(settings_with(graphiql=True)) as server:
        origin = f"http://127.0.0.1:{server.port}"
        browser = await Browser.start(binary)
        try:
            page = await browser.new_page(allowed_origin=origin)
            # 1. log in: the login mutation, run in the editor
            login = LOGIN % (agent.email, PASSWORD)
            await page.navigate(f"{origin}/graphql?q={quote(login)}")
            await page.wait_for(
                "!!document.querySelector('.graphiql-execute-button') && "
                "!!document.querySelector('[aria-label=\"Show GraphiQL Explorer\"]')",
                what="GraphiQL and its explorer to render",
            )
            await page.evaluate(RUN)
            answer = await page.wait_for(
                f"{RESULT}.includes('token') && {RESULT}", what="the login's answer"
            )
            token = json.loads(answer)["data"]["login"]["token"]
            assert token
            # 2. the token in the headers pane
            await page.evaluate(
                "[...document.querySelectorAll('.graphiql-editor-tools button')]"
                ".find(b => b.textContent.trim() === 'Headers').click()"
            )
            await page.wait_for(
                "document.querySelectorAll('.graphiql-editor-tool .CodeMirror').length >= 2"
            )
            await page.evaluate(
                "document.querySelectorAll('.graphiql-editor-tool .CodeMirror')[1].CodeMirror"
                f".setValue({json.dumps(json.dumps({'Authorization': f'Bearer {token}'}))})"
            )
            # 3. a query
            await _type_query(page, "{ me { ... on Agent { email } } }")
            await page.evaluate(RUN)
            await page.wait_for(f"{RESULT}.includes({json.dumps(agent.email)})", what="me")
            # 4. a subscription: the dossier's chat, while the client writes in it
            await _type_query(page, SUBSCRIPTION.replace("DOSSIER", str(dossier.id)))
            await page.evaluate(RUN)
            seen = False
            for attempt in range(30):  # until the socket is up: the first sent may be early
                content = f"Bonjour from GraphiQL {attempt}"
                data = await gql(
                    client,
                    SEND,
                    {"input": {"dossierId": str(dossier.id), "content": content}},
                    token=owner.token,
                )
                assert data["sendMessage"]["userErrors"] == []
                try:
                    await page.wait_for(
                        f"{RESULT}.includes('Bonjour from GraphiQL')", within=1, what="live"
                    )
                    seen = True
                    break
                except AssertionError:
                    continue
            assert seen, f"no live message in GraphiQL; page errors: {page.errors}"
            shot = await page.screenshot(tmp_path / "graphiql.png")
            assert shot.stat().st_size > 10_000
            if target := os.environ.get("GRAPHIQL_SCREENSHOT"):  # docs/graphiql.png
                await page.screenshot(Path(target))
            # nothing but our server was asked for, nothing failed in the page (CSP included)
            assert page.blocked == []
            assert await page.csp_violations() == []
            assert page.errors == []
        finally:
            await browser.close()
