"""The access audit (issue 19, item 5): downloads and staff views of a dossier are recorded
(who, what, when, from where), buffered in process and written after the answer."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

from app.models import AccessEvent, Document
from app.models.enums import AccessKind
from app.services import access_audit
from app.services.access_audit import AccessAudit
from app.services.sessions import Origin
from tests.documents_support import make_pdf, upload
from tests.factories import make_admin, make_agent, make_client, make_dossier, make_product
from tests.helpers import error_codes, gql

DOWNLOAD_URL = "query($id: ID!) { documentDownloadUrl(versionId: $id) { url expiresAt } }"
DOSSIER = "query($id: ID!) { dossier(id: $id) { id status } }"
ACCESS_LOG = """
query($client: ID, $document: ID, $dossier: ID, $first: Int, $after: String) {
  accessLog(clientId: $client, documentId: $document, dossierId: $dossier, first: $first,
            after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { kind actorType actorId clientId dossierId documentId versionId ipAddress
            userAgent occurredAt }
  }
}
"""


async def _uploaded(client, owner):
    product = await make_product(steps=(("pdf",), ()))
    dossier = await make_dossier(owner, product)
    document = await Document.filter(dossier_id=dossier.id).get()
    payload = await upload(client, owner.token, str(document.id), make_pdf("audited"), "id.pdf")
    assert payload["userErrors"] == []
    return dossier, document, payload["version"]["id"]


async def _download(client, token: str, version_id: str, user_agent: str):
    link = (await gql(client, DOWNLOAD_URL, {"id": version_id}, token=token))["documentDownloadUrl"]
    parts = urlsplit(link["url"])
    return await client.get(f"{parts.path}?{parts.query}", headers={"user-agent": user_agent})


async def test_downloads_and_staff_views_are_audited_after_the_answer(client):
    owner, agent, admin = await make_client(), await make_agent(), await make_admin()
    dossier, document, version_id = await _uploaded(client, owner)

    response = await _download(client, agent.token, version_id, "AgentBrowser/1.0")
    assert response.status_code == 200
    viewed = await client.post(
        "/graphql",
        json={"query": DOSSIER, "variables": {"id": str(dossier.id)}},
        headers={"authorization": f"Bearer {agent.token}", "user-agent": "AgentBrowser/2.0"},
    )
    assert viewed.json()["data"]["dossier"]["id"] == str(dossier.id)
    # the client's own view is not recorded; their download is
    await gql(client, DOSSIER, {"id": str(dossier.id)}, token=owner.token)
    assert (await _download(client, owner.token, version_id, "ClientPhone/9")).status_code == 200

    # nothing was written while answering: the rows wait in the buffer
    assert await AccessEvent.all().count() == 0
    assert access_audit.audit.pending == 3
    assert await access_audit.flush() == 3
    assert access_audit.audit.pending == 0

    log = await gql(client, ACCESS_LOG, {"dossier": str(dossier.id)}, token=admin.token)
    nodes = log["accessLog"]["nodes"]
    assert [(n["kind"], n["actorType"], n["actorId"], n["userAgent"]) for n in nodes] == [
        ("DOCUMENT_DOWNLOADED", "USER", owner.id, "ClientPhone/9"),
        ("DOSSIER_VIEWED", "AGENT", agent.id, "AgentBrowser/2.0"),
        ("DOCUMENT_DOWNLOADED", "AGENT", agent.id, "AgentBrowser/1.0"),
    ]  # newest first
    assert {n["ipAddress"] for n in nodes} == {"127.0.0.1"}  # the ASGI test client's address
    assert {n["clientId"] for n in nodes} == {owner.id}
    downloads = [n for n in nodes if n["kind"] == "DOCUMENT_DOWNLOADED"]
    assert {(n["documentId"], n["versionId"]) for n in downloads} == {
        (str(document.id), version_id)
    }

    by_reference = await gql(client, ACCESS_LOG, {"dossier": dossier.reference}, token=admin.token)
    assert by_reference["accessLog"]["nodes"] == nodes  # the case number names the dossier too
    by_document = await gql(client, ACCESS_LOG, {"document": str(document.id)}, token=admin.token)
    assert by_document["accessLog"]["nodes"] == downloads
    by_client = await gql(client, ACCESS_LOG, {"client": owner.id}, token=admin.token)
    assert by_client["accessLog"]["nodes"] == nodes
    # keyset pages, newest first
    first = await gql(client, ACCESS_LOG, {"client": owner.id, "first": 2}, token=admin.token)
    assert first["accessLog"]["pageInfo"]["hasNextPage"] is True
    cursor = first["accessLog"]["pageInfo"]["endCursor"]
    rest = await gql(
        client, ACCESS_LOG, {"client": owner.id, "first": 2, "after": cursor}, token=admin.token
    )
    assert first["accessLog"]["nodes"] + rest["accessLog"]["nodes"] == nodes
    # another dossier, a malformed id: nothing
    other = await gql(client, ACCESS_LOG, {"dossier": str(uuid.uuid4())}, token=admin.token)
    assert other["accessLog"]["nodes"] == []
    junk = await gql(client, ACCESS_LOG, {"dossier": "junk"}, token=admin.token)
    assert junk["accessLog"]["nodes"] == []


async def test_only_admins_read_the_access_log_with_exactly_one_filter(client):
    owner, agent, admin = await make_client(), await make_agent(), await make_admin()
    for who in (owner, agent):
        body = await gql(
            client, ACCESS_LOG, {"client": owner.id}, token=who.token, expect_errors=True
        )
        assert error_codes(body) == ["FORBIDDEN"]
    for variables in ({}, {"client": owner.id, "dossier": str(uuid.uuid4())}):
        body = await gql(client, ACCESS_LOG, variables, token=admin.token, expect_errors=True)
        assert error_codes(body) == ["BAD_USER_INPUT"]
        assert "exactly one" in body["errors"][0]["message"]


async def test_a_link_cannot_be_credited_to_another_account(client):
    owner, agent = await make_client(), await make_agent()
    _, _, version_id = await _uploaded(client, owner)
    link = (await gql(client, DOWNLOAD_URL, {"id": version_id}, token=agent.token))[
        "documentDownloadUrl"
    ]
    parts = urlsplit(link["url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["for"] == f"AGENT:{agent.id}"
    for forged in (f"USER:{owner.id}", f"AGENT:{uuid.uuid4()}", "nobody", ""):
        response = await client.get(f"{parts.path}?{urlencode({**query, 'for': forged})}")
        assert response.status_code == 403
    without = {k: v for k, v in query.items() if k != "for"}
    assert (await client.get(f"{parts.path}?{urlencode(without)}")).status_code == 403
    assert (await client.get(f"{parts.path}?{parts.query}")).status_code == 200
    await access_audit.flush()
    assert await AccessEvent.all().count() == 1  # refused links record nothing


async def test_the_buffer_writes_when_full_and_when_its_block_ends():
    where = Origin("10.0.0.7", "cli")
    audit = AccessAudit(capacity=3)
    dossier_id = uuid.uuid4()

    def one() -> None:
        audit.record(
            AccessKind.DOSSIER_VIEWED,
            actor_type="AGENT",  # type: ignore[arg-type]
            actor_id=uuid.uuid4(),
            where=where,
            dossier_id=dossier_id,
        )

    async with audit.running():
        for _ in range(3):
            one()  # the third fills the buffer: a flush of its own starts
        assert audit._flushing is not None
        await audit._flushing
        assert await AccessEvent.filter(dossier_id=dossier_id).count() == 3
        one()
    # the block's end (the app's shutdown) writes what was left
    assert await AccessEvent.filter(dossier_id=dossier_id).count() == 4
    assert audit.pending == 0
    row = await AccessEvent.filter(dossier_id=dossier_id).first()
    assert row is not None
    assert (row.ip_address, row.user_agent) == ("10.0.0.7", "cli")
