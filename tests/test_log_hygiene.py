"""No credential in any log (issue 16, item 2): a whole journey through a real uvicorn
with its access log on, every `app` and `uvicorn` logger at DEBUG and messages going to
the log channel; then every credential the journey created is looked for in what was
logged: the payment link's token, access and refresh tokens, the signed download URL's
signature, the reset link's token and code."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import uuid

import httpx
import pytest
import uvicorn

from app.main import create_app
from app.models import AccountToken, Document, Dossier
from app.models.enums import AccountTokenPurpose
from app.services import outbox
from app.services.account_links import code_of, link_token
from app.services.delivery import deliver_due
from app.settings import Settings, get_settings
from tests.documents_support import make_pdf, upload
from tests.factories import make_admin, make_product
from tests.notifications_support import peer_settings
from tests.ws_support import settings_with

PASSWORD = "meadow-signal-4418"


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

        self._seen: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if id(record) not in self._seen:  # on the root and on loggers that do not propagate
            self._seen.add(id(record))
            self.lines.append(self.format(record))


@pytest.fixture
def logged():
    handler = Everything()
    root = logging.getLogger()
    names = ("app", "uvicorn", "uvicorn.access", "uvicorn.error")
    levels = {name: logging.getLogger(name).level for name in names}
    root.addHandler(handler)
    for name in names:  # uvicorn's own config may stop them propagating
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).removeHandler(handler)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _served(settings: Settings):
    app = create_app(settings, manage_db=False)
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=True
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started:
            break
        await asyncio.sleep(0.02)
    return server, task, f"http://127.0.0.1:{port}"


async def gql(http: httpx.AsyncClient, query: str, variables=None, token=None) -> dict:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


async def test_a_whole_journey_logs_no_credential(logged):
    settings = settings_with(env="test", public_api_url="http://127.0.0.1:1")
    server, task, url = await _served(settings)
    secrets: dict[str, str] = {}
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            admin = await make_admin()
            product = await make_product((("pdf",), (), ()))
            email = f"journey-{uuid.uuid4().hex[:8]}@example.com"
            created = await gql(
                http,
                "mutation($i: CreatePaymentLinkInput!) { createPaymentLink(input: $i) "
                "{ paymentLink { id token } userErrors { code } } }",
                {"i": {"productId": str(product.id), "prospectEmail": email, "prospectName": "J"}},
                admin.token,
            )
            payment_secret = created["createPaymentLink"]["paymentLink"]["token"]
            secrets["payment link token"] = payment_secret
            secrets["admin access token"] = admin.token
            registered = (
                await gql(
                    http,
                    "mutation($i: RegisterWithPaymentLinkInput!) {"
                    " registerWithPaymentLink(input: $i)"
                    " { token refreshToken checkoutUrl userErrors { code } } }",
                    {"i": {"token": payment_secret, "fullName": "Jo Journey",
                           "phone": "+33612345678", "password": PASSWORD}},
                )
            )["registerWithPaymentLink"]  # fmt: skip
            secrets["client access token"] = registered["token"]
            secrets["client refresh token"] = registered["refreshToken"]
            session_id = registered["checkoutUrl"].rsplit("/", 1)[-1]
            paid = await http.post(f"/dummy-checkout/{session_id}/complete")
            assert paid.status_code in (200, 303), paid.text
            dossier = await Dossier.get(user__credential__email=email)
            document = await Document.filter(dossier_id=dossier.id).first()
            assert document is not None
            uploaded = await upload(
                http, registered["token"], str(document.id), make_pdf("journey"), "id.pdf"
            )
            download = (
                await gql(
                    http,
                    "query($id: ID!) { documentDownloadUrl(versionId: $id) { url } }",
                    {"id": uploaded["version"]["id"]},
                    registered["token"],
                )
            )["documentDownloadUrl"]["url"]
            signature = re.search(r"signature=([^&]+)", download)
            assert signature
            secrets["download signature"] = signature.group(1)
            path = download.split("://", 1)[-1].split("/", 1)[-1]
            fetched = await http.get("/" + path)
            assert fetched.status_code == 200
            renewed = (
                await gql(
                    http,
                    "mutation($r: String!) { refreshSession(input: {refreshToken: $r}) "
                    "{ token refreshToken } }",
                    {"r": registered["refreshToken"]},
                )
            )["refreshSession"]
            secrets["renewed access token"] = renewed["token"]
            secrets["renewed refresh token"] = renewed["refreshToken"]
            await gql(
                http,
                "mutation($e: String!) { requestPasswordReset(input: {email: $e}) { ok } }",
                {"e": email},
            )
            reset = await AccountToken.get(
                credential__email=email, purpose=AccountTokenPurpose.PASSWORD_RESET
            )
            secrets["reset token"] = link_token(reset.id, reset.purpose)
            secrets["reset code"] = code_of(reset.id, reset.purpose)
        await outbox.drain(5)
        await outbox.dispatch()
        report = await deliver_due(settings=peer_settings())  # the log channel
        assert report.sent >= 2  # the link's e-mail and the reset's, logged
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)

    text = "\n".join(logged.lines)
    assert "EMAIL to " + email in text  # the messages were logged…
    assert "POST /graphql" in text  # …and the requests
    assert "GET /files/" in text
    leaked = [name for name, value in secrets.items() if value and value in text]
    assert leaked == [], f"credentials in the logs: {leaked}"


def test_production_refuses_to_log_messages_unless_told():
    base = {"env": "production", "secret_key": "Zq8v-" + uuid.uuid4().hex + "-Lm3x",
            "allow_dummy_payments": True}  # fmt: skip
    with pytest.raises(ValueError, match="SMTP_HOST"):
        Settings(**base, twilio_account_sid="AC1", twilio_auth_token="t")
    with pytest.raises(ValueError, match="ALLOW_LOGGED_TEXTS"):
        Settings(**base, smtp_host="smtp.example.com")
    allowed = Settings(**base, allow_logged_email=True, allow_logged_texts=True)
    assert allowed.smtp_host == ""
    assert get_settings().env != "production"
