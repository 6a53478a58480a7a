"""Links follow the server's address, and on the embedded default (no front end at
PUBLIC_APP_URL) the links that e-mails and notifications carry answer with plain pages of
ours: what to do, and a token's state, never a 404."""

from __future__ import annotations

import asyncio
import html
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from graphql import parse, validate

from app import clock
from app.api import schema
from app.main import create_app
from app.models import PaymentLink
from app.settings import Settings, get_settings
from tests.conftest import _free_port
from tests.factories import PASSWORD, make_admin, make_agent, make_client, make_dossier
from tests.helpers import gql
from tests.test_accounts import INVITE_CLIENT, REQUEST_RESET, RESET, mails
from tests.test_cli import ROOT
from tests.test_payments import new_link

pytestmark = pytest.mark.usefixtures("clean_database")

URL = re.compile(r"https?://[^\s\"'<>]+")


def _links(text: str) -> list[str]:
    return URL.findall(text)


def _mail_links(message) -> list[str]:
    from tests.notifications_support import parts

    text, _ = parts(message)
    return _links(text)


def _mailed(sent, fragment: str) -> str:
    """The one link containing `fragment` among the e-mails sent."""
    (link,) = {u for message in sent for u in _mail_links(message) if fragment in u}
    return link


def _state(response: httpx.Response) -> str:
    found = re.search(r"data-state='([A-Z]+)'", response.text)
    assert found, response.text
    return found.group(1)


def _operations(response: httpx.Response) -> list[str]:
    return [
        html.unescape(c) for c in re.findall(r"<pre><code>(.*?)</code></pre>", response.text, re.S)
    ]


async def _open(client, url: str) -> httpx.Response:
    """A link as a browser follows it: on this server's address, answered 200 with our
    page headers, and each GraphQL operation the page shows valid against the schema."""
    parts = urlsplit(url)
    own = urlsplit(get_settings().public_api_url)
    assert (parts.scheme, parts.netloc) == (own.scheme, own.netloc), url
    response = await client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
    assert response.status_code == 200, (url, response.text)
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "<script" not in response.text
    for operation in _operations(response):
        errors = validate(schema._schema, parse(operation.replace("…", "x")))
        assert errors == [], (url, operation, errors)
    return response


# --- the address ------------------------------------------------------------------------


def test_links_follow_host_and_port_unless_public_urls_are_set():
    assert Settings(port=9123).public_api_url == "http://127.0.0.1:9123"
    assert Settings(port=9123).public_app_url == "http://127.0.0.1:9123"
    assert Settings(host="0.0.0.0", port=9000).public_api_url == "http://127.0.0.1:9000"
    assert Settings(host="::", port=9000).public_api_url == "http://[::1]:9000"
    assert Settings(host="dossiers.lan", port=80).public_api_url == "http://dossiers.lan:80"
    explicit = Settings(
        port=9000, public_api_url="https://api.example.test", public_app_url="https://app.test"
    )
    assert (explicit.public_api_url, explicit.public_app_url) == (
        "https://api.example.test",
        "https://app.test",
    )
    assert Settings(port=9000, public_api_url="https://api.example.test").public_app_url == (
        "https://api.example.test"
    )
    assert Settings(port=9000).serves_app_pages
    assert not explicit.serves_app_pages


async def test_serve_on_another_port_mails_links_on_that_port(tmp_path: Path):
    """`python -m app serve --port P` (what `make run PORT=P` runs): the reset link of the
    e-mail it writes to its log is on port P, and answers there with its page."""
    database_url = f"sqlite://{tmp_path / 'links.sqlite3'}"
    env = {
        **os.environ,
        "ENV": "development",  # the log is the mailbox: the link is written whole
        "DATABASE_URL": database_url,
        "STORAGE_URL": f"file://{tmp_path / 'files'}",
        "REDIS_URL": "",
        "LOG_LEVEL": "INFO",  # the e-mail, written to the log (no SMTP_HOST)
    }
    for name in ("HOST", "PORT", "PUBLIC_API_URL", "PUBLIC_APP_URL"):
        env.pop(name, None)
    for command in (
        ("migrate",),
        ("create-admin", "--email", "boss@example.com", "--password", PASSWORD),
    ):
        done = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", *command, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(done.communicate(), 180)  # a loaded machine is slow
        assert done.returncode == 0, err.decode()
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            "serve",
            "--port",
            str(port),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                for _ in range(200):
                    try:
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                answer = await http.post(
                    "/graphql",
                    json={"query": REQUEST_RESET, "variables": {"email": "boss@example.com"}},
                )
                assert answer.json()["data"]["requestPasswordReset"]["ok"] is True
                link = None
                for _ in range(300):  # the in-process worker writes the e-mail to the log
                    found = re.search(r"http://\S+/reset-password\?token=\S+", log.read_text())
                    if found:
                        link = found.group(0)
                        break
                    await asyncio.sleep(0.1)
                assert link, log.read_text()
                assert link.startswith(f"{base}/reset-password?token="), link
                page = await http.get(link)  # answered there, by its page
                assert page.status_code == 200
                assert "data-state='VALID'" in page.text
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 15)


# --- the mailed links -------------------------------------------------------------------


async def test_a_reset_link_shows_valid_then_used_then_expired(client, smtp):
    owner = await make_client()
    await gql(client, REQUEST_RESET, {"email": owner.email})
    link = _mailed(await mails(smtp), "/reset-password?token=")
    assert _state(await _open(client, link)) == "VALID"
    assert _state(await _open(client, link)) == "VALID"  # looking does not use it
    token = link.split("token=")[1]
    data = await gql(
        client, RESET, {"input": {"token": token, "newPassword": "a-new-long-passphrase"}}
    )
    assert data["resetPassword"]["ok"] is True
    assert _state(await _open(client, link)) == "USED"

    smtp.reset()
    await gql(client, REQUEST_RESET, {"email": owner.email})
    link = _mailed(await mails(smtp), "/reset-password?token=")
    clock.travel(timedelta(minutes=get_settings().password_reset_minutes + 1))
    assert _state(await _open(client, link)) == "EXPIRED"
    assert _state(await _open(client, link.split("?")[0] + "?token=nope")) == "UNKNOWN"
    assert _state(await _open(client, link.split("?")[0])) == "UNKNOWN"


async def test_an_invitation_link_shows_its_state(client, smtp):
    agent = await make_agent()
    data = await gql(
        client, INVITE_CLIENT, {"email": "helene@example.com", "name": "Hélène"}, token=agent.token
    )
    assert data["inviteClient"]["userErrors"] == []
    link = _mailed(await mails(smtp), "/accept-invitation?token=")
    page = await _open(client, link)
    assert _state(page) == "VALID"
    assert "acceptInvitation" in page.text


async def test_payment_links_show_their_state(client, smtp):
    await new_link(client, email="pat@example.com")
    returning = await make_client()
    await new_link(client, email=returning.email)
    sent = await mails(smtp)
    register, pay = _mailed(sent, "/register?token="), _mailed(sent, "/pay?token=")
    page = await _open(client, register)
    assert _state(page) == "VALID"
    assert "registerWithPaymentLink" in page.text
    page = await _open(client, pay)
    assert _state(page) == "VALID"
    assert "redeemPaymentLink" in page.text
    admin = await make_admin()
    revoke = (
        "mutation($id: ID!) { revokePaymentLink(input: {paymentLinkId: $id}) "
        "{ userErrors { code } } }"
    )
    link = await PaymentLink.get(prospect_email="pat@example.com")
    await gql(client, revoke, {"id": str(link.id)}, token=admin.token)
    assert _state(await _open(client, register)) == "REVOKED"


async def test_the_links_of_notifications_answer_with_a_page(client):
    owner = await make_client()
    dossier = await make_dossier(owner)
    base = get_settings().public_app_url
    for path in (
        "/",
        "/login",
        "/account",
        "/dossiers",
        f"/dossiers/{dossier.id}",
        f"/dossiers/{dossier.id}/messages",
        f"/dossiers/{dossier.id}/documents/{dossier.id}",
        f"/orders/{dossier.id}",
        "/payment/success",
    ):
        page = await _open(client, base + path)
        assert "GraphiQL" in page.text or "Payment" in page.text


async def test_a_real_front_end_answers_its_own_links():
    app = create_app(Settings(public_app_url="https://app.example.test"), manage_db=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/register?token=x")).status_code == 404
        assert (await http.get("/dossiers/x")).status_code == 404
