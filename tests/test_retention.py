"""Retention of uploaded files (issue 19, item 8), on the test clock: the client is told
DOCUMENT_RETENTION_NOTICE_DAYS ahead, once; the files of an ended dossier go
DOCUMENT_RETENTION_DAYS after its end, the rows stay marked, a download answers 410."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from app import clock
from app.auth import viewer_from_token
from app.models import Document, DocumentVersion, Dossier, Event, Notification
from app.models.enums import DossierStatus, EventType
from app.services import retention
from app.services.workflow.actions import StatusAction, change_status
from app.settings import get_settings
from tests.documents_support import make_pdf, upload
from tests.factories import make_agent, make_client, make_dossier, make_product
from tests.helpers import gql


def storage_root() -> Path:
    return Path(get_settings().storage_url.removeprefix("file://")).resolve()


async def _cancel(agent, dossier_id) -> None:
    await change_status(
        await viewer_from_token(agent.token), dossier_id, StatusAction.CANCEL, "Done"
    )


DOWNLOAD_URL = "query($id: ID!) { documentDownloadUrl(versionId: $id) { url } }"
VERSIONS = """
query($id: ID!) {
  dossier(id: $id) { status endedAt filesPurgedAt
    steps { documents { versions { id purgedAt } } } }
}
"""


async def _dossier_with_a_file(client, owner):
    product = await make_product(steps=(("pdf",), ()))
    dossier = await make_dossier(owner, product)
    document = await Document.filter(dossier_id=dossier.id).get()
    payload = await upload(client, owner.token, str(document.id), make_pdf("scan"), "id.pdf")
    assert payload["userErrors"] == []
    return dossier, await DocumentVersion.get(id=payload["version"]["id"])


async def _events(dossier_id, event_type: EventType) -> list[Event]:
    return list(await Event.filter(entity_id=dossier_id, event_type=event_type))


async def test_files_of_an_ended_dossier_go_after_the_notice_and_the_retention(client):
    settings = get_settings()
    assert (settings.document_retention_days, settings.document_retention_notice_days) == (
        365,
        30,
    )
    owner, agent = await make_client(), await make_agent()
    ended, version = await _dossier_with_a_file(client, owner)
    _running, kept = await _dossier_with_a_file(client, owner)
    await change_status(
        await viewer_from_token(agent.token), ended.id, StatusAction.CANCEL, "Client left"
    )
    row = await Dossier.get(id=ended.id)
    assert row.status == DossierStatus.CANCELLED
    assert row.ended_at is not None
    stored = storage_root() / version.file_url
    assert stored.exists()

    # a month before the year is up: nothing yet
    clock.travel(timedelta(days=334))
    report = await retention.run_pass()
    assert (report.noticed, report.purged_files) == (0, 0)
    assert await retention.due_files() == []

    # 30 days before: the client is told, once
    clock.travel(timedelta(days=2))
    assert (await retention.run_pass()).noticed == 1
    assert (await retention.run_pass()).noticed == 0
    [notice] = await _events(ended.id, EventType.DOSSIER_RETENTION_NOTICE)
    assert notice.payload["fileCount"] == 1
    notified_at = (await Dossier.get(id=ended.id)).retention_notified_at
    assert notified_at is not None
    purge_on = (notified_at + timedelta(days=30)).date().isoformat()
    assert notice.payload["purgeOn"] == purge_on
    told = await Notification.filter(
        user_id=owner.obj.id, template_code="document_retention_notice"
    )
    assert len(told) == 1
    assert told[0].payload["context"]["purge_on"] == purge_on
    # the dry run lists what goes within the month, and changes nothing
    [due] = await retention.due_files(within_days=30)
    assert (due.dossier_id, due.version_id, due.file_size_bytes) == (
        ended.id,
        version.id,
        version.file_size_bytes,
    )
    assert due.due_at == notified_at + timedelta(days=30)
    assert await retention.due_files() == []  # none due today

    # the year is up, but the notice was sent 29 days ago: the file waits for its 30 days
    clock.travel(timedelta(days=29))
    assert (await retention.run_pass()).purged_files == 0
    assert stored.exists()

    clock.travel(timedelta(days=2))
    report = await retention.run_pass()
    assert (report.purged_dossiers, report.purged_files) == (1, 1)
    assert report.purged_bytes == version.file_size_bytes
    assert not stored.exists()  # gone from storage
    assert (storage_root() / kept.file_url).exists()  # a running dossier keeps its files
    purged = await DocumentVersion.get(id=version.id)
    assert purged.purged_at is not None  # the row stays
    [event] = await _events(ended.id, EventType.DOSSIER_FILES_PURGED)
    assert event.payload["versionIds"] == [str(version.id)]
    assert (await Dossier.get(id=ended.id)).files_purged_at is not None
    # idempotent: a second pass finds nothing
    again = await retention.run_pass()
    assert (again.noticed, again.purged_files) == (0, 0)
    assert len(await _events(ended.id, EventType.DOSSIER_FILES_PURGED)) == 1

    # the API shows the version purged; its download answers 410 Gone (the clock back for
    # the client's token, issued at the start)
    clock.reset()
    data = await gql(client, VERSIONS, {"id": str(ended.id)}, token=owner.token)
    assert data["dossier"]["endedAt"]
    assert data["dossier"]["filesPurgedAt"]
    versions = [v for s in data["dossier"]["steps"] for d in s["documents"] for v in d["versions"]]
    assert [(v["id"], v["purgedAt"] is not None) for v in versions] == [(str(version.id), True)]
    link = (await gql(client, DOWNLOAD_URL, {"id": str(version.id)}, token=owner.token))[
        "documentDownloadUrl"
    ]
    parts = urlsplit(link["url"])
    response = await client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 410
    assert "deleted" in response.text


async def test_retention_zero_keeps_files_forever(client):
    owner, agent = await make_client(), await make_agent()
    ended, version = await _dossier_with_a_file(client, owner)
    await _cancel(agent, ended.id)
    forever = get_settings().model_copy(update={"document_retention_days": 0})
    clock.travel(timedelta(days=3650))
    report = await retention.run_pass(settings=forever)
    assert (report.noticed, report.purged_files) == (0, 0)
    assert await retention.due_files(settings=forever) == []
    assert (storage_root() / version.file_url).exists()


async def test_without_notice_the_files_go_on_the_day_and_at_most_n_per_pass(client):
    owner, agent = await make_client(), await make_agent()
    no_notice = get_settings().model_copy(
        update={"document_retention_notice_days": 0, "document_retention_days": 10}
    )
    versions = []
    for _ in range(3):
        dossier, version = await _dossier_with_a_file(client, owner)
        await change_status(
            await viewer_from_token(agent.token), dossier.id, StatusAction.CANCEL, "Done"
        )
        versions.append(version)
    clock.travel(timedelta(days=10, minutes=1))
    first = await retention.purge_due(settings=no_notice, limit=2)
    assert first.purged_dossiers == 2
    second = await retention.purge_due(settings=no_notice, limit=2)
    assert second.purged_dossiers == 1
    assert not any((storage_root() / v.file_url).exists() for v in versions)
    assert not await Notification.filter(template_code="document_retention_notice").exists()
