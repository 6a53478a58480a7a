"""Uploads (multipart spec, CSRF guard, limits, attacks, concurrency), reviews, the review
queue and signed downloads, through the API."""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from app.models import Document, DocumentType, DocumentVersion, Dossier, Event, StepInstance
from app.models.enums import ActorType, DocumentStatus, DossierStatus
from app.services import documents as documents_service
from app.services import downloads
from app.services.workflow.actions import StatusAction, change_status
from app.settings import get_settings
from tests.documents_support import (
    PREFLIGHT,
    UPLOAD,
    app_client,
    make_exe,
    make_pdf,
    make_png,
    multipart_body,
    review,
    upload,
    upload_raw,
)
from tests.factories import make_agent, make_client, make_dossier, make_product
from tests.helpers import error_codes, gql

QUEUE = """
query Queue($first: Int, $after: String, $mine: Boolean) {
  reviewQueue(first: $first, after: $after, mine: $mine) {
    totalCount
    edges { cursor node {
      id waitingSince waitingSeconds
      version { id versionNumber uploadedAt }
      document { id status }
      dossier { id }
      stepInstance { id assignedTo { id } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
DOWNLOAD_URL = """
query Url($id: ID!) { documentDownloadUrl(versionId: $id) { url expiresAt } }
"""
VERSIONS = """
query Versions($id: ID!) {
  dossier(id: $id) {
    documents { id versions { id versionNumber reviews { status reason notes } } }
  }
}
"""


@pytest.fixture(autouse=True)
def empty_storage():
    """The run's storage directory is shared: start each test here with it empty."""
    root = storage_root()
    if root.exists():
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def storage_root() -> Path:
    return Path(get_settings().storage_url.removeprefix("file://"))


def stored_files() -> set[str]:
    root = storage_root()
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".partial" not in p.parts
    }


async def _one_document(owner, *extensions: str, max_mb: int | None = None) -> tuple[Dossier, str]:
    product = await make_product(steps=((",".join(extensions) or "pdf",), ()))
    dossier = await make_dossier(owner, product)
    document = await Document.filter(dossier_id=dossier.id).get()
    if max_mb is not None:
        await DocumentType.filter(id=document.document_type_id).update(max_file_size_mb=max_mb)
    return dossier, str(document.id)


def codes(payload: dict) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


async def _no_version(document_id: str) -> None:
    assert await DocumentVersion.filter(document_id=document_id).count() == 0
    document = await Document.get(id=document_id)
    assert document.status == DocumentStatus.PENDING
    assert document.current_version_id is None


# --- the happy path and the CSRF guard ------------------------------------------------


async def test_upload_follows_the_multipart_spec_and_stores_under_a_generated_key(client):
    owner = await make_client()
    dossier, document_id = await _one_document(owner, "pdf")
    content = make_pdf("passport")
    payload = await upload(client, owner.token, document_id, content, "My Passport.pdf")
    assert payload["userErrors"] == []
    version = payload["version"]
    assert version["versionNumber"] == 1
    assert version["fileName"] == "My Passport.pdf"
    assert version["fileSizeBytes"] == len(content)
    assert version["mimeType"] == "application/pdf"
    assert version["uploadedByType"] == "USER"
    assert payload["document"]["status"] == "UPLOADED"
    assert payload["dossier"]["status"] == "UNDER_REVIEW"

    row = await DocumentVersion.get(id=version["id"])
    assert "Passport" not in row.file_url
    assert row.file_url.endswith(".pdf")
    assert row.file_url.startswith(f"documents/{dossier.id}/{document_id}/")
    assert (storage_root() / row.file_url).read_bytes() == content
    event = await Event.filter(event_type="DOCUMENT_UPLOADED").get()
    assert event.entity_type == "document"
    assert str(event.entity_id) == document_id
    assert event.payload["dossierId"] == str(dossier.id)
    assert event.payload["versionId"] == version["id"]
    assert event.payload["versionNumber"] == 1


async def test_upload_without_the_csrf_header_is_refused(client):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    operations = {
        "query": UPLOAD,
        "variables": {"input": {"documentId": document_id, "file": None}},
    }
    body, content_type = multipart_body(operations, [("a.pdf", make_pdf(), "application/pdf")])
    response = await client.post(
        "/graphql",
        content=body,
        headers={"content-type": content_type, "authorization": f"Bearer {owner.token}"},
    )
    assert response.status_code == 400
    assert "Cross-Site Request Forgery" in response.text or "cross-site" in response.text
    # an empty header is no guard either
    response = await upload_raw(
        client, owner.token, document_id, make_pdf(), headers={"apollo-require-preflight": ""}
    )
    assert response.status_code == 400
    await _no_version(document_id)
    assert stored_files() == set()
    # Apollo's other preflight header is accepted
    response = await client.post(
        "/graphql",
        content=body,
        headers={
            "content-type": content_type,
            "authorization": f"Bearer {owner.token}",
            "x-apollo-operation-name": "Upload",
        },
    )
    assert response.status_code == 200
    assert response.json()["data"]["uploadDocument"]["version"]["versionNumber"] == 1


async def test_upload_needs_a_file(client):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    data = await gql(
        client,
        UPLOAD,
        {"input": {"documentId": document_id, "file": "not a file"}},
        token=owner.token,
    )
    assert codes(data["uploadDocument"]) == ["FILE_REQUIRED"]
    await _no_version(document_id)


# --- who may upload where -------------------------------------------------------------


async def test_a_client_cannot_upload_to_someone_elses_dossier(client):
    owner, intruder = await make_client(), await make_client()
    _, document_id = await _one_document(owner, "pdf")
    theirs = await upload_raw(client, intruder.token, document_id, make_pdf())
    missing = await upload_raw(client, intruder.token, str(uuid.uuid4()), make_pdf())
    malformed = await upload_raw(client, intruder.token, "../../etc", make_pdf())
    bodies = [r.json() for r in (theirs, missing, malformed)]
    assert [error_codes(b) for b in bodies] == [["NOT_FOUND"]] * 3
    # the same answer, word for word
    assert bodies[0]["errors"][0]["message"] == bodies[1]["errors"][0]["message"]
    assert bodies[0]["data"] == bodies[1]["data"] is None
    await _no_version(document_id)
    assert stored_files() == set()
    anonymous = await upload_raw(client, None, document_id, make_pdf())
    assert anonymous.status_code == 401  # refused from the headers, the body never read
    assert "Log in" in anonymous.text


async def test_an_agent_may_upload_for_the_client(client):
    owner, agent = await make_client(), await make_agent()
    _, document_id = await _one_document(owner, "pdf")
    payload = await upload(client, agent.token, document_id, make_pdf(), "scan.pdf")
    assert payload["version"]["uploadedByType"] == "AGENT"


async def test_only_documents_of_the_current_step_that_await_a_file(client):
    owner, agent = await make_client(), await make_agent()
    product = await make_product(steps=(("pdf", "pdf"), ("pdf",)))
    dossier = await make_dossier(owner, product)
    first, second = await Document.filter(dossier_id=dossier.id).order_by("created_at", "id")
    up = await upload(client, owner.token, str(first.id), make_pdf(), "a.pdf")
    await review(client, agent.token, up["version"]["id"], "APPROVED")
    # an approved document takes no new file
    again = await upload(client, owner.token, str(first.id), make_pdf(), "a.pdf")
    assert codes(again) == ["NOT_UPLOADABLE"]
    up2 = await upload(client, owner.token, str(second.id), make_pdf(), "b.pdf")
    await review(client, agent.token, up2["version"]["id"], "APPROVED")
    # step 1 is done: its documents are closed, step 2's is open
    late = await upload(client, owner.token, str(second.id), make_pdf(), "b.pdf")
    assert codes(late) == ["NOT_CURRENT_STEP"]
    assert await DocumentVersion.filter(document_id=second.id).count() == 1


# --- the attacks ----------------------------------------------------------------------


async def test_per_type_size_limit_is_enforced_while_reading(client):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf", max_mb=1)
    too_big = make_pdf(size=1024 * 1024 + 1)
    payload = await upload(client, owner.token, document_id, too_big, "big.pdf")
    assert codes(payload) == ["FILE_TOO_LARGE"]
    assert "1 MB" in payload["userErrors"][0]["message"]
    await _no_version(document_id)
    assert stored_files() == set()  # the partial file is gone too
    assert not any((storage_root() / ".partial").glob("*"))
    just_fits = make_pdf(size=1024 * 1024 - 200)
    assert len(just_fits) <= 1024 * 1024
    assert codes(await upload(client, owner.token, document_id, just_fits, "ok.pdf")) == []


async def test_a_renamed_executable_is_refused(client):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    payload = await upload(client, owner.token, document_id, make_exe(), "invoice.pdf")
    assert codes(payload) == ["CONTENT_MISMATCH"]
    assert "exe" in payload["userErrors"][0]["message"]
    # a real PNG named .pdf, and plain text named .pdf, are refused as well
    assert codes(await upload(client, owner.token, document_id, make_png(), "x.pdf")) == [
        "CONTENT_MISMATCH"
    ]
    assert codes(await upload(client, owner.token, document_id, b"just some text", "x.pdf")) == [
        "CONTENT_MISMATCH"
    ]
    await _no_version(document_id)
    assert stored_files() == set()


async def test_wrong_extension_and_empty_file(client):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    for name in ("notes.txt", "photo.png", "archive.pdf.exe", "noextension", "pdf"):
        payload = await upload(client, owner.token, document_id, make_pdf(), name)
        assert codes(payload) == ["EXTENSION_NOT_ALLOWED"], name
        assert payload["userErrors"][0]["field"] == ["file"]
    assert codes(await upload(client, owner.token, document_id, b"", "empty.pdf")) == ["EMPTY_FILE"]
    await _no_version(document_id)


@pytest.mark.parametrize(
    ("raw_name", "shown"),
    [
        ("../../../../etc/passwd.pdf", "passwd.pdf"),
        ("..\\..\\windows\\system32\\evil.pdf", "evil.pdf"),
        ("/absolute/path/scan.pdf", "scan.pdf"),
        ("in\x00voi\x1bce\x7f.pdf", "invoice.pdf"),
        ("tab\there\x0bnow.pdf", "tab here now.pdf"),
        ("..pdf.pdf", "pdf.pdf"),
        ("résumé 2024 .pdf", "résumé 2024 .pdf"),
        ("a" * 500 + ".pdf", "a" * 176 + ".pdf"),
    ],
)
async def test_names_are_sanitised_and_never_used_as_keys(client, raw_name, shown):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    payload = await upload(client, owner.token, document_id, make_pdf(), raw_name.encode())
    assert payload["userErrors"] == []
    assert payload["version"]["fileName"] == shown
    row = await DocumentVersion.get(id=payload["version"]["id"])
    assert Path(row.file_url).name != shown
    files = stored_files()
    assert files == {row.file_url}
    # nothing was written outside the storage root
    assert all(not Path(f).is_absolute() and ".." not in Path(f).parts for f in files)


async def test_bidi_override_cannot_hide_the_real_extension(client):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    # "invoice<RLO>fdp.exe" shows as "invoiceexe.pdf" in a bidi-aware viewer
    payload = await upload(client, owner.token, document_id, make_pdf(), "invoice\u202efdp.exe")
    assert codes(payload) == ["EXTENSION_NOT_ALLOWED"]


async def test_a_thousand_parts_are_refused_before_the_resolver(client):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    operations = {
        "query": UPLOAD,
        "variables": {"input": {"documentId": document_id, "file": None}},
    }
    files = [(f"f{i}.pdf", make_pdf(), "application/pdf") for i in range(1000)]
    file_map = {str(i): ["variables.input.file"] for i in range(1000)}
    body, content_type = multipart_body(operations, files, file_map=file_map)
    started = time.perf_counter()
    response = await client.post(
        "/graphql",
        content=body,
        headers={
            "content-type": content_type,
            "authorization": f"Bearer {owner.token}",
            **PREFLIGHT,
        },
    )
    assert response.status_code == 400, response.text
    assert "multipart" in response.text.lower()
    assert time.perf_counter() - started < 5
    # many plain fields instead of files: refused too
    fields = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(1000)
    )
    response = await client.post(
        "/graphql",
        content=fields + b"--B--\r\n",
        headers={
            "content-type": "multipart/form-data; boundary=B",
            "authorization": f"Bearer {owner.token}",
            **PREFLIGHT,
        },
    )
    assert response.status_code == 400
    await _no_version(document_id)


async def test_malformed_multipart_requests_get_400_not_500(client):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    operations = {
        "query": UPLOAD,
        "variables": {"input": {"documentId": document_id, "file": None}},
    }
    cases = [
        multipart_body(
            operations,
            [("a.pdf", make_pdf(), "application/pdf")],
            file_map={"9": ["variables.input.file"]},
        ),
        multipart_body(
            operations,
            [("a.pdf", make_pdf(), "application/pdf")],
            file_map={"0": ["variables.nope.deep"]},
        ),
        multipart_body(operations, [("a.pdf", make_pdf(), "application/pdf")], file_map=["x"]),  # type: ignore[arg-type]
        (b"--B\r\nnot a header\r\n\r\n--B--\r\n", "multipart/form-data; boundary=B"),
    ]
    for body, content_type in cases:
        response = await client.post(
            "/graphql",
            content=body,
            headers={
                "content-type": content_type,
                "authorization": f"Bearer {owner.token}",
                **PREFLIGHT,
            },
        )
        assert response.status_code == 400, response.text
    await _no_version(document_id)


async def test_a_file_part_without_a_filename_is_told_so(client):
    """gql's streamed upload sends its part with no filename: a text field to the multipart
    parser. The answer says what is wrong (not that text may not hold NUL characters)."""
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    operations = {
        "query": UPLOAD,
        "variables": {"input": {"documentId": document_id, "file": None}},
    }
    boundary = f"----test{uuid.uuid4().hex}"

    def body(content: bytes) -> bytes:
        parts = [
            ("operations", json.dumps(operations).encode()),
            ("map", json.dumps({"0": ["variables.input.file"]}).encode()),
            ("0", content),
        ]
        return (
            b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                + value
                + b"\r\n"
                for name, value in parts
            )
            + f"--{boundary}--\r\n".encode()
        )

    for content in (make_pdf(), make_pdf() + b"\0" * 300 * 1024):  # small, and past 256 KB
        response = await client.post(
            "/graphql",
            content=body(content),
            headers={
                "content-type": f"multipart/form-data; boundary={boundary}",
                "authorization": f"Bearer {owner.token}",
                **PREFLIGHT,
            },
        )
        assert response.status_code == 400, response.text
        assert "filename" in response.text, response.text
        assert "NUL" not in response.text
    await _no_version(document_id)


# --- the body cap, while bytes arrive -------------------------------------------------


class CountingBody:
    """A multipart upload body produced lazily (the spec's operations and map, then one
    endless file part): counts what the server actually pulled."""

    def __init__(self, total: int, document_id: str = "x", chunk: int = 1024 * 1024) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0
        operations = {
            "query": UPLOAD,
            "variables": {"input": {"documentId": document_id, "file": None}},
        }
        self.prefix = (
            b'--B\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
            + json.dumps(operations).encode()
            + b'\r\n--B\r\nContent-Disposition: form-data; name="map"\r\n\r\n'
            + b'{"0": ["variables.input.file"]}'
            + b'\r\n--B\r\nContent-Disposition: form-data; name="0"; filename="big.pdf"\r\n'
            + b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\n"
        )
        self._block = os.urandom(chunk)

    async def __aiter__(self):
        self.sent = len(self.prefix)
        yield self.prefix
        while self.sent < self.total:
            size = min(self.chunk, self.total - self.sent)
            self.sent += size
            yield self._block[:size]


async def test_a_declared_oversized_body_is_refused_before_reading():
    async with app_client(max_upload_body_mb=1) as small:
        body = CountingBody(3 * 1024**3)
        response = await small.post(
            "/graphql",
            content=body.__aiter__(),
            headers={
                "content-type": "multipart/form-data; boundary=B",
                "content-length": str(body.total),
                **PREFLIGHT,
            },
        )
        assert response.status_code == 413
        assert body.sent <= body.chunk  # at most what the transport pre-read
        # a JSON request over the general cap
        response = await small.post(
            "/graphql",
            content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413


async def test_a_chunked_2gb_body_is_cut_off_at_the_cap(client):
    """No Content-Length (chunked): the default app stops pulling at its cap (~101 MB)."""
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    cap = get_settings().max_upload_body_mb * 1024 * 1024
    body = CountingBody(2 * 1024**3, document_id)
    started = time.perf_counter()
    response = await client.post(
        "/graphql",
        content=body.__aiter__(),
        headers={
            "content-type": "multipart/form-data; boundary=B",
            "authorization": f"Bearer {owner.token}",
            **PREFLIGHT,
        },
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 413
    assert "too large" in response.text
    assert cap < body.sent <= cap + body.chunk  # stopped right after the cap, not at 2 GB
    assert elapsed < 30
    await _no_version(document_id)


async def test_a_lying_content_length_does_not_help():
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    async with app_client(max_upload_body_mb=1) as small:
        operations = {
            "query": UPLOAD,
            "variables": {"input": {"documentId": document_id, "file": None}},
        }
        body, content_type = multipart_body(
            operations, [("a.pdf", make_pdf(size=3 * 1024 * 1024), "application/pdf")]
        )

        async def stream():
            for i in range(0, len(body), 65536):
                yield body[i : i + 65536]

        response = await small.post(
            "/graphql",
            content=stream(),
            headers={
                "content-type": content_type,
                "content-length": "1000",  # claims 1 kB, sends 3 MB
                "authorization": f"Bearer {owner.token}",
                **PREFLIGHT,
            },
        )
        assert response.status_code == 413
    await _no_version(document_id)


async def test_the_cap_holds_on_a_real_server_with_chunked_encoding(live_server):
    """Raw HTTP/1.1 to uvicorn: a chunked body is answered 413 long before 2 GB is sent."""
    uploader = await make_client()

    def exchange() -> tuple[bytes, int]:
        # A blocking socket in a thread (the server runs in this test's event loop): the
        # kernel hands over a response that arrived before a reset, asyncio streams do not.
        sock = socket.create_connection((live_server.host, live_server.port), timeout=10)
        prefix = CountingBody(0).prefix
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=B\r\n"
            b"Apollo-Require-Preflight: 1\r\nAuthorization: Bearer "
            + uploader.token.encode()
            + b"\r\n\r\n"
            + b"%x\r\n" % len(prefix)
            + prefix
            + b"\r\n"
        )
        chunk = os.urandom(1024 * 1024)
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        sent, response = 0, b""
        try:
            while sent < 2 * 1024**3 and not response:
                sock.sendall(frame)
                sent += len(chunk)
                if select.select([sock], [], [], 0)[0]:
                    response = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            pass
        try:
            while not response.endswith(b"bytes)."):
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except (ConnectionResetError, TimeoutError):
            pass
        finally:
            sock.close()
        return response, sent

    response, sent = await asyncio.to_thread(exchange)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"too large" in response
    cap = get_settings().max_upload_body_mb * 1024 * 1024
    assert sent < cap + 64 * 1024 * 1024  # the cap plus what socket buffers held


# --- concurrency ----------------------------------------------------------------------


async def test_ten_concurrent_uploads_get_versions_1_to_10(client):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    payloads = await asyncio.gather(
        *(
            upload(client, owner.token, document_id, make_pdf(f"v{i}"), f"v{i}.pdf")
            for i in range(10)
        )
    )
    assert all(p["userErrors"] == [] for p in payloads)
    numbers = sorted(p["version"]["versionNumber"] for p in payloads)
    assert numbers == list(range(1, 11))
    rows = await DocumentVersion.filter(document_id=document_id).order_by("version_number")
    assert [r.version_number for r in rows] == list(range(1, 11))
    document = await Document.get(id=document_id)
    assert document.current_version_id == rows[-1].id  # the last committed is current
    # every row points at its own stored file, and nothing else was stored
    assert stored_files() == {r.file_url for r in rows}
    events = await Event.filter(event_type="DOCUMENT_UPLOADED", entity_id=document_id)
    assert sorted(e.payload["versionNumber"] for e in events) == list(range(1, 11))


async def test_no_row_points_to_a_missing_file_when_the_transaction_fails(client):
    """The file is stored first; if the dossier is put on hold while it is being stored,
    the transaction refuses the upload and the stored file is deleted."""
    from app.providers.storage import LocalStorage

    owner, agent = await make_client(), await make_agent()
    dossier, document_id = await _one_document(owner, "pdf")
    agent_viewer = await _viewer(agent)

    class HoldWhileSaving(LocalStorage):
        """A storage whose write is slow enough for an agent to act meanwhile."""

        saved: list[str] = []

        async def save(self, key, chunks, *, content_type):
            size = await super().save(key, chunks, content_type=content_type)
            self.saved.append(key)
            assert await self.exists(key)  # the file is there before any row exists
            assert await DocumentVersion.filter(document_id=document_id).count() == 0
            await change_status(agent_viewer, dossier.id, StatusAction.HOLD, "Paused")
            return size

    async with app_client() as other:
        other.app.state.storage = HoldWhileSaving(storage_root())  # type: ignore[attr-defined]
        payload = await upload(other, owner.token, document_id, make_pdf(), "a.pdf")
    assert codes(payload) == ["DOSSIER_NOT_ACTIVE"]
    assert len(HoldWhileSaving.saved) == 1
    assert not (storage_root() / HoldWhileSaving.saved[0]).exists()
    assert stored_files() == set()
    await _no_version(document_id)
    assert (await Dossier.get(id=dossier.id)).status == DossierStatus.ON_HOLD


async def _viewer(account):
    from app.auth import viewer_from_token

    return await viewer_from_token(account.token)


# --- reviews ----------------------------------------------------------------------------


async def test_clients_cannot_review(client):
    owner = await make_client()
    _, document_id = await _one_document(owner, "pdf")
    up = await upload(client, owner.token, document_id, make_pdf(), "a.pdf")
    body = await gql(
        client,
        """mutation R($input: ReviewDocumentInput!) { reviewDocument(input: $input) {
             userErrors { code } } }""",
        {"input": {"versionId": up["version"]["id"], "decision": "APPROVED"}},
        token=owner.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert (await Document.get(id=document_id)).status == DocumentStatus.UPLOADED
    body = await gql(client, QUEUE, token=owner.token, expect_errors=True)
    assert error_codes(body) == ["FORBIDDEN"]


async def test_review_rules(client):
    owner, agent = await make_client(), await make_agent()
    _, document_id = await _one_document(owner, "pdf")
    up = await upload(client, owner.token, document_id, make_pdf(), "a.pdf")
    vid = up["version"]["id"]
    for decision in ("CHANGES_REQUESTED", "REJECTED"):
        for reason in (None, "", "  "):
            refused = await review(client, agent.token, vid, decision, reason)
            assert codes(refused) == ["REQUIRED"]
            assert refused["userErrors"][0]["field"] == ["reason"]
    refused = await review(client, agent.token, vid, "REJECTED", "x" * 3000)
    assert codes(refused) == ["TOO_LONG"]
    assert (await Document.get(id=document_id)).status == DocumentStatus.UPLOADED
    body = await gql(
        client,
        """mutation R($input: ReviewDocumentInput!) {
             reviewDocument(input: $input) { userErrors { code } } }""",
        {"input": {"versionId": str(uuid.uuid4()), "decision": "APPROVED"}},
        token=agent.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["NOT_FOUND"]

    done = await review(client, agent.token, vid, "CHANGES_REQUESTED", "Sign page 2", "check stamp")
    assert done["userErrors"] == []
    assert done["review"]["notes"] == "check stamp"
    twice = await review(client, agent.token, vid, "APPROVED")
    assert codes(twice) == ["NOT_AWAITING_REVIEW"]
    # the client sees the reason, not the agents' internal notes
    data = await gql(client, VERSIONS, {"id": str(up["dossier"]["id"])}, token=owner.token)
    (doc,) = data["dossier"]["documents"]
    assert doc["versions"][0]["reviews"] == [
        {"status": "CHANGES_REQUESTED", "reason": "Sign page 2", "notes": None}
    ]
    data = await gql(client, VERSIONS, {"id": str(up["dossier"]["id"])}, token=agent.token)
    assert data["dossier"]["documents"][0]["versions"][0]["reviews"][0]["notes"] == "check stamp"


async def test_concurrent_reviews_of_one_version_record_one_decision(client):
    owner, agent, other = await make_client(), await make_agent(), await make_agent()
    _, document_id = await _one_document(owner, "pdf")
    up = await upload(client, owner.token, document_id, make_pdf(), "a.pdf")
    results = await asyncio.gather(
        review(client, agent.token, up["version"]["id"], "APPROVED"),
        review(client, other.token, up["version"]["id"], "REJECTED", "no"),
    )
    assert sorted(len(r["userErrors"]) for r in results) == [0, 1]
    assert sum(1 for r in results if codes(r) == ["NOT_AWAITING_REVIEW"]) == 1
    from app.models import DocumentReview

    assert await DocumentReview.filter(document_version_id=up["version"]["id"]).count() == 1


# --- the review queue -----------------------------------------------------------------


async def act(client, agent, dossier, action: str) -> None:
    """An agent holds, releases or cancels the dossier (changeDossierStatus)."""
    variables = {"input": {"dossierId": str(dossier.id), "action": action, "reason": "Because"}}
    result = (await gql(client, CHANGE_STATUS, variables, token=agent.token))["changeDossierStatus"]
    assert result["userErrors"] == []


CHANGE_STATUS = """
mutation C($input: ChangeDossierStatusInput!) {
  changeDossierStatus(input: $input) { dossier { status } userErrors { code } }
}
"""


async def test_review_queue_oldest_first_mine_and_paginated(client):
    agent, other = await make_agent(), await make_agent()
    uploads = []
    for _ in range(3):
        owner = await make_client()
        dossier, document_id = await _one_document(owner, "pdf")
        up = await upload(client, owner.token, document_id, make_pdf(), "a.pdf")
        uploads.append((dossier, document_id, up["version"]["id"]))
    # not in the queue: a pending document, a dossier on hold
    owner = await make_client()
    await _one_document(owner, "pdf")
    held_owner = await make_client()
    held, held_doc = await _one_document(held_owner, "pdf")
    held_up = await upload(client, held_owner.token, held_doc, make_pdf(), "a.pdf")
    await act(client, agent, held, "HOLD")
    # the first one is re-uploaded: only its newest version waits, and it waits since then
    first_dossier, first_doc, _ = uploads[0]
    newer = await upload(
        client, (await _owner_token(first_dossier)), first_doc, make_pdf("2"), "b.pdf"
    )
    uploads[0] = (first_dossier, first_doc, newer["version"]["id"])

    data = await gql(client, QUEUE, {"first": 10}, token=agent.token)
    queue = data["reviewQueue"]
    assert queue["totalCount"] == 3
    order = [e["node"]["version"]["id"] for e in queue["edges"]]
    assert order == [uploads[1][2], uploads[2][2], uploads[0][2]]  # oldest upload first
    node = queue["edges"][0]["node"]
    assert node["waitingSince"] == node["version"]["uploadedAt"]
    assert node["waitingSeconds"] >= 0
    assert node["document"]["status"] == "UPLOADED"

    page = (await gql(client, QUEUE, {"first": 2}, token=agent.token))["reviewQueue"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await gql(
        client, QUEUE, {"first": 2, "after": page["pageInfo"]["endCursor"]}, token=agent.token
    )
    assert [
        e["node"]["version"]["id"] for e in page["edges"] + rest["reviewQueue"]["edges"]
    ] == order

    # mine: steps assigned to me
    step = await StepInstance.filter(dossier_id=uploads[2][0].id, position=1).get()
    await gql(
        client,
        """mutation A($input: AssignStepInput!) {
             assignStep(input: $input) { userErrors { code } } }""",
        {"input": {"stepInstanceId": str(step.id), "agentId": agent.id}},
        token=other.token,
    )
    mine = (await gql(client, QUEUE, {"mine": True}, token=agent.token))["reviewQueue"]
    assert [e["node"]["version"]["id"] for e in mine["edges"]] == [uploads[2][2]]
    assert mine["edges"][0]["node"]["stepInstance"]["assignedTo"] == {"id": agent.id}
    assert (await gql(client, QUEUE, {"mine": True}, token=other.token))["reviewQueue"][
        "totalCount"
    ] == 0

    # reviewed -> out of the queue
    await review(client, agent.token, uploads[1][2], "APPROVED")
    after = (await gql(client, QUEUE, token=agent.token))["reviewQueue"]
    assert [e["node"]["version"]["id"] for e in after["edges"]] == [uploads[2][2], uploads[0][2]]
    # what the queue walks (its partial index) is the queue itself: the newest version of
    # each document that waits in a running dossier; not the replaced one, not the reviewed
    # one, not the one on hold
    from app.models import DocumentVersion

    async def walked() -> list[str]:
        waiting = await DocumentVersion.filter(awaiting_review_since__isnull=False)
        assert all(v.awaiting_review_since == v.uploaded_at for v in waiting)
        return sorted(str(v.id) for v in waiting)

    assert await walked() == sorted([uploads[2][2], uploads[0][2]])

    # released from hold: back in the queue, in its place (oldest upload first)
    await act(client, agent, held, "RELEASE")
    back = (await gql(client, QUEUE, token=agent.token))["reviewQueue"]
    assert [e["node"]["version"]["id"] for e in back["edges"]] == [
        uploads[2][2], held_up["version"]["id"], uploads[0][2]
    ]  # fmt: skip
    assert back["totalCount"] == 3
    # cancelled: out for good
    await act(client, agent, held, "CANCEL")
    assert await walked() == sorted([uploads[2][2], uploads[0][2]])


async def _owner_token(dossier: Dossier) -> str:
    from app.models import Credential
    from tests.factories import token_for

    credential = await Credential.get(profile_id=dossier.user_id)
    return await token_for(credential)


# --- signed downloads -----------------------------------------------------------------


async def _uploaded(client, owner, name="Relevé d'identité.pdf"):
    _, document_id = await _one_document(owner, "pdf")
    content = make_pdf("download me")
    up = await upload(client, owner.token, document_id, content, name)
    return up["version"]["id"], content


def _issued(account) -> downloads.IssuedTo:
    """A link issued to a client's account (what documentDownloadUrl would sign)."""
    return downloads.IssuedTo(ActorType.USER, account.obj.id)


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_the_owner_and_agents_download_through_a_signed_link(client):
    owner, agent = await make_client(), await make_agent()
    version_id, content = await _uploaded(client, owner)
    before = datetime.now(UTC)
    for token in (owner.token, agent.token):
        data = await gql(client, DOWNLOAD_URL, {"id": version_id}, token=token)
        link = data["documentDownloadUrl"]
        expires_at = datetime.fromisoformat(link["expiresAt"])
        assert before < expires_at <= before + timedelta(minutes=5, seconds=1)
        assert link["url"].startswith(get_settings().public_api_url)
        response = await client.get(_path_of(link["url"]))  # no Authorization: the link is it
        assert response.status_code == 200
        assert response.content == content
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["x-content-type-options"] == "nosniff"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        assert "filename*=UTF-8''Relev%C3%A9%20d%27identit%C3%A9.pdf" in disposition
        assert "no-store" in response.headers["cache-control"]


async def test_another_client_gets_no_link_and_links_cannot_be_forged(client):
    owner, intruder = await make_client(), await make_client()
    version_id, _ = await _uploaded(client, owner)
    their_version, _ = await _uploaded(client, intruder, "mine.pdf")
    body = await gql(
        client, DOWNLOAD_URL, {"id": version_id}, token=intruder.token, expect_errors=True
    )
    missing = await gql(
        client, DOWNLOAD_URL, {"id": str(uuid.uuid4())}, token=intruder.token, expect_errors=True
    )
    assert error_codes(body) == error_codes(missing) == ["NOT_FOUND"]
    assert body["errors"][0]["message"] == missing["errors"][0]["message"]

    # the intruder's own valid link, pointed at the owner's version: refused
    link = (await gql(client, DOWNLOAD_URL, {"id": their_version}, token=intruder.token))[
        "documentDownloadUrl"
    ]
    query = parse_qs(urlsplit(link["url"]).query)
    forged = f"/files/{version_id}?expires={query['expires'][0]}&signature={query['signature'][0]}"
    assert (await client.get(forged)).status_code == 403
    # a stretched expiry, a missing or bad signature: refused
    later = int(query["expires"][0]) + 3600
    stretched = f"/files/{their_version}?expires={later}&signature={query['signature'][0]}"
    assert (await client.get(stretched)).status_code == 403
    assert (await client.get(f"/files/{their_version}?expires={later}")).status_code == 403
    assert (await client.get(f"/files/{their_version}?expires=x&signature=y")).status_code == 403
    assert (await client.get("/files/not-a-uuid?expires=1&signature=y")).status_code == 403
    # the genuine link still works
    assert (await client.get(_path_of(link["url"]))).status_code == 200


async def test_expired_links_are_refused(client):
    owner = await make_client()
    version_id, content = await _uploaded(client, owner)
    # a link made six minutes ago with the longest lifetime: expired a minute ago
    path, expires_at = downloads.signed_download_path(
        uuid.UUID(version_id),
        issued_to=_issued(owner),
        now=datetime.now(UTC) - timedelta(minutes=6),
    )
    assert expires_at < datetime.now(UTC)
    response = await client.get(path)
    assert response.status_code == 403
    assert "expired" in response.text
    # one made a minute ago still works; a longer lifetime is capped at five minutes
    path, _ = downloads.signed_download_path(
        uuid.UUID(version_id),
        issued_to=_issued(owner),
        now=datetime.now(UTC) - timedelta(minutes=1),
    )
    assert (await client.get(path)).content == content
    _, capped = downloads.signed_download_path(
        uuid.UUID(version_id),
        issued_to=_issued(owner),
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
    )
    assert capped <= datetime.now(UTC) + timedelta(minutes=5, seconds=1)


async def test_a_link_to_a_file_gone_from_storage_is_a_404_not_a_500(client):
    owner = await make_client()
    version_id, _ = await _uploaded(client, owner)
    row = await DocumentVersion.get(id=version_id)
    (storage_root() / row.file_url).unlink()
    path, _ = downloads.signed_download_path(uuid.UUID(version_id), issued_to=_issued(owner))
    response = await client.get(path)
    assert response.status_code == 404


def test_operations_json_is_what_the_spec_says():
    """Guard for the helper itself: a body a spec-following client would send."""
    body, content_type = multipart_body(
        {"query": "q", "variables": {"input": {"file": None}}},
        [("a.pdf", b"%PDF", "application/pdf")],
    )
    boundary = content_type.split("boundary=")[1]
    parts = body.split(f"--{boundary}".encode())
    assert b'name="operations"' in parts[1]
    assert json.loads(parts[1].split(b"\r\n\r\n", 1)[1])
    assert b'name="map"' in parts[2]
    assert b'{"0": ["variables.input.file"]}' in parts[2]
    assert b'name="0"; filename="a.pdf"' in parts[3]


def test_every_extension_the_catalogue_accepts_has_a_content_check():
    """An extension the catalogue allows but the sniffer cannot check would refuse every
    upload (or, worse, accept anything): the two lists must not drift apart."""
    from app.services.catalog import SUPPORTED_EXTENSIONS

    assert set(documents_service.CONTENT_OF) == set(SUPPORTED_EXTENSIONS)


def _raw_upload_start(host: str, port: int, token: str | None) -> bytes:
    """Headers and the first bytes of a 50 MB upload, then wait: what the server answers
    before the rest of the body is sent (nothing within 3 s: b"")."""
    sock = socket.create_connection((host, port), timeout=3)
    auth = b"Authorization: Bearer " + token.encode() + b"\r\n" if token else b""
    prefix = CountingBody(0).prefix
    try:
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n"
            b"Content-Type: multipart/form-data; boundary=B\r\n"
            b"Apollo-Require-Preflight: 1\r\n" + auth + b"\r\n" + prefix
        )
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b""
    finally:
        sock.close()


async def test_an_anonymous_or_invalid_upload_is_refused_before_its_body(live_server):
    for token in (None, "not-a-token"):
        answer = await asyncio.to_thread(
            _raw_upload_start, live_server.host, live_server.port, token
        )
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert stored_files() == set()


async def test_an_account_sends_a_few_upload_bodies_at_once(live_server):
    uploader = await make_client()
    cap = get_settings().max_concurrent_uploads
    socks = []
    try:
        for _ in range(cap):  # bodies that arrive slowly, each holding a slot
            sock = socket.create_connection((live_server.host, live_server.port), timeout=3)
            sock.sendall(
                b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n"
                b"Content-Type: multipart/form-data; boundary=B\r\nApollo-Require-Preflight: 1"
                b"\r\nAuthorization: Bearer "
                + uploader.token.encode()
                + b"\r\n\r\n"
                + CountingBody(0).prefix
            )
            socks.append(sock)
        await asyncio.sleep(0.3)  # the server has read their headers and waits for the rest
        answer = await asyncio.to_thread(
            _raw_upload_start, live_server.host, live_server.port, uploader.token
        )
        assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
        other = await make_client()  # another account is not held up
        answer = await asyncio.to_thread(
            _raw_upload_start, live_server.host, live_server.port, other.token
        )
        assert answer == b""  # accepted: the server waits for its body
    finally:
        for sock in socks:
            sock.close()
