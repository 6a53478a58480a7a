"""Both storage backends behind the one interface: a local directory and an S3-compatible
server (moto in server mode, a real HTTP peer started as a subprocess), directly and
through the API (upload, signed download, cleanup after a refused upload)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

from app.models import Document, DocumentType, DocumentVersion
from app.providers.storage import FileMissing, LocalStorage, S3Storage, build_storage
from app.settings import get_settings
from tests.documents_support import MotoServer, app_client, make_pdf, upload
from tests.factories import make_agent, make_client, make_dossier, make_product
from tests.helpers import gql

DOWNLOAD_URL = """
query Url($id: ID!) { documentDownloadUrl(versionId: $id) { url expiresAt } }
"""


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    name = f"docs-{uuid.uuid4().hex[:12]}"
    moto.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def backend_settings(request, tmp_path) -> dict[str, str]:
    if request.param == "local":
        return {"storage_url": f"file://{tmp_path / 'files'}"}
    moto: MotoServer = request.getfixturevalue("moto")
    return moto.settings(request.getfixturevalue("bucket"))


async def chunks(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def failing(data: bytes, after: int) -> AsyncIterator[bytes]:
    """Yields `after` bytes of `data`, then fails, like a file over its size limit."""
    async for chunk in chunks(data[:after]):
        yield chunk
    raise OverflowError("too large")


async def read_all(storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key)])


# --- the interface, on both backends ---------------------------------------------------


async def test_save_open_delete(backend_settings):
    storage = build_storage(get_settings().model_copy(update=backend_settings))
    small = os.urandom(1000)
    large = os.urandom(17 * 1024 * 1024 + 5)  # several S3 parts (multipart upload)
    assert (
        await storage.save("a/b/small.pdf", chunks(small), content_type="application/pdf") == 1000
    )
    assert await storage.save(
        "a/b/large.pdf", chunks(large), content_type="application/pdf"
    ) == len(large)
    assert await storage.exists("a/b/small.pdf")
    assert await storage.exists("a/b/large.pdf")
    assert await read_all(storage, "a/b/small.pdf") == small
    assert await read_all(storage, "a/b/large.pdf") == large
    await storage.delete("a/b/small.pdf")
    assert not await storage.exists("a/b/small.pdf")
    await storage.delete("a/b/small.pdf")  # deleting twice is fine
    with pytest.raises(FileMissing):
        await read_all(storage, "a/b/small.pdf")


async def test_a_failed_save_leaves_nothing(backend_settings, moto_if_s3):
    storage = build_storage(get_settings().model_copy(update=backend_settings))
    data = os.urandom(20 * 1024 * 1024)
    for after in (1000, 9 * 1024 * 1024):  # before and after the first S3 part went out
        with pytest.raises(OverflowError):
            await storage.save("x/fail.pdf", failing(data, after), content_type="application/pdf")
        assert not await storage.exists("x/fail.pdf")
    if isinstance(storage, LocalStorage):
        assert [p for p in storage.root.rglob("*") if p.is_file()] == []
    else:
        pending = moto_if_s3.client().list_multipart_uploads(Bucket=storage.bucket)
        assert pending.get("Uploads", []) == []  # aborted, not left to bill


@pytest.fixture
def moto_if_s3(backend_settings, request):
    if backend_settings["storage_url"].startswith("s3://"):
        return request.getfixturevalue("moto")
    return None


@pytest.mark.parametrize(
    "key", ["../escape.pdf", "/abs.pdf", "a//b.pdf", "a/../../b.pdf", "", ".hidden"]
)
async def test_keys_cannot_climb_out(backend_settings, key):
    storage = build_storage(get_settings().model_copy(update=backend_settings))
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.save(key, chunks(b"x"), content_type="application/pdf")


def test_storage_url_selects_the_backend(tmp_path):
    settings = get_settings()
    local = build_storage(settings.model_copy(update={"storage_url": f"file://{tmp_path}"}))
    assert isinstance(local, LocalStorage)
    assert local.root == tmp_path.resolve()
    s3 = build_storage(
        settings.model_copy(
            update={"storage_url": "s3://my-bucket/some/prefix/", "s3_endpoint_url": "http://h:1"}
        )
    )
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix) == ("my-bucket", "some/prefix")
    for bad in ("s3://", "ftp://x/y"):
        with pytest.raises(ValueError, match="STORAGE_URL"):
            build_storage(settings.model_copy(update={"storage_url": bad}))


async def test_s3_keys_live_under_the_prefix(moto, bucket):
    storage = build_storage(get_settings().model_copy(update=moto.settings(bucket, "tenant/docs")))
    await storage.save("k/file.pdf", chunks(b"%PDF-1.4 x"), content_type="application/pdf")
    head = moto.client().head_object(Bucket=bucket, Key="tenant/docs/k/file.pdf")
    assert head["ContentType"] == "application/pdf"
    assert head["ContentLength"] == 10


async def test_s3_unreachable_is_a_storage_error_in_the_payload(client):
    """A dead endpoint: the upload answers a userError, stores no row."""
    owner = await make_client()
    product = await make_product(steps=(("pdf",),))
    dossier = await make_dossier(owner, product)
    document = await Document.filter(dossier_id=dossier.id).get()
    dead = {
        "storage_url": "s3://nowhere/p",
        "s3_endpoint_url": "http://127.0.0.1:9",
        "s3_access_key_id": "x",
        "s3_secret_access_key": "y",
    }
    async with app_client(**dead) as other:
        payload = await upload(other, owner.token, str(document.id), make_pdf(), "a.pdf")
    assert [e["code"] for e in payload["userErrors"]] == ["STORAGE_UNAVAILABLE"]
    assert await DocumentVersion.filter(document_id=document.id).count() == 0


# --- through the API, on both backends -------------------------------------------------


async def test_upload_and_signed_download_on_each_backend(backend_settings, moto_if_s3):
    owner, agent = await make_client(), await make_agent()
    product = await make_product(steps=(("pdf",),))
    dossier = await make_dossier(owner, product)
    document = await Document.filter(dossier_id=dossier.id).get()
    content = make_pdf("stored remotely", size=300_000)
    async with app_client(**backend_settings) as api:
        payload = await upload(api, owner.token, str(document.id), content, "statement.pdf")
        assert payload["userErrors"] == []
        version = await DocumentVersion.get(id=payload["version"]["id"])
        storage = api.app.state.storage  # type: ignore[attr-defined]
        assert await storage.exists(version.file_url)
        if moto_if_s3 is not None:
            listed = moto_if_s3.client().list_objects_v2(Bucket=storage.bucket)["Contents"]
            assert [o["Key"] for o in listed] == [f"docs/{version.file_url}"]
        for token in (owner.token, agent.token):
            link = (await gql(api, DOWNLOAD_URL, {"id": str(version.id)}, token=token))[
                "documentDownloadUrl"
            ]
            parts = urlsplit(link["url"])
            response = await api.get(f"{parts.path}?{parts.query}")
            assert response.status_code == 200
            assert response.content == content
            assert response.headers["content-type"] == "application/pdf"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["content-disposition"].startswith("attachment;")


async def test_a_refused_upload_leaves_no_object_on_each_backend(backend_settings, moto_if_s3):
    """Over the type's limit after the first S3 part was sent: the multipart upload is
    aborted, nothing is stored, no row exists."""
    owner = await make_client()
    product = await make_product(steps=(("pdf",),))
    dossier = await make_dossier(owner, product)
    document = await Document.filter(dossier_id=dossier.id).get()
    await DocumentType.filter(id=document.document_type_id).update(max_file_size_mb=10)
    async with app_client(**backend_settings) as api:
        payload = await upload(
            api, owner.token, str(document.id), make_pdf(size=10 * 1024 * 1024 + 1), "big.pdf"
        )
        storage = api.app.state.storage  # type: ignore[attr-defined]
    assert [e["code"] for e in payload["userErrors"]] == ["FILE_TOO_LARGE"]
    assert await DocumentVersion.filter(document_id=document.id).count() == 0
    if moto_if_s3 is not None:
        s3 = moto_if_s3.client()
        assert s3.list_objects_v2(Bucket=storage.bucket).get("KeyCount", 0) == 0
        assert s3.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    else:
        assert [p for p in storage.root.rglob("*") if p.is_file()] == []


async def test_retention_deletes_the_object_from_each_backend(backend_settings, moto_if_s3):
    """Issue 19: after the retention pass the file is gone from storage (the bucket on S3),
    its row kept and marked purged."""
    from datetime import timedelta

    from app import clock
    from app.auth import viewer_from_token
    from app.services import retention
    from app.services.workflow.actions import StatusAction, change_status

    owner, agent = await make_client(), await make_agent()
    product = await make_product(steps=(("pdf",),))
    dossier = await make_dossier(owner, product)
    document = await Document.filter(dossier_id=dossier.id).get()
    async with app_client(**backend_settings) as api:
        payload = await upload(api, owner.token, str(document.id), make_pdf("kept a year"))
        assert payload["userErrors"] == []
        version = await DocumentVersion.get(id=payload["version"]["id"])
        storage = api.app.state.storage  # type: ignore[attr-defined]
        assert await storage.exists(version.file_url)
        viewer = await viewer_from_token(agent.token)
        await change_status(viewer, dossier.id, StatusAction.CANCEL, "Client left")
        clock.travel(timedelta(days=400))
        report = await retention.run_pass(storage=storage)
        assert report.noticed == 1
        clock.travel(timedelta(days=31))
        report = await retention.run_pass(storage=storage)
        assert report.purged_files == 1
        assert not await storage.exists(version.file_url)
        if moto_if_s3 is not None:
            listed = moto_if_s3.client().list_objects_v2(Bucket=storage.bucket)
            assert listed.get("Contents", []) == []
        assert (await DocumentVersion.get(id=version.id)).purged_at is not None
