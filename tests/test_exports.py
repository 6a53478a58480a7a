"""CSV exports for admins (issue 19, item 4): asked for through GraphQL, fetched by the
signed link over HTTP, parsed with the csv module and compared with the rows."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from app.models import Agent, Dossier, Event, Order, Profile
from app.models.enums import ActorType, AgentRole, EventType, OrderStatus
from app.services.csv_exports import COLUMNS, ExportKind, export_link
from tests.factories import make_admin, make_agent, make_client, make_dossier, make_product
from tests.helpers import count_statements, gql

EXPORT = """
mutation($input: CreateCsvExportInput!) {
  createCsvExport(input: $input) { url expiresAt userErrors { code field message } }
}
"""


def _range(days_back: int = 1, days_ahead: int = 1) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(days=days_back), now + timedelta(days=days_ahead)


async def _export(
    client: httpx.AsyncClient, token: str, kind: str, start: datetime, end: datetime
) -> str:
    data = await gql(
        client,
        EXPORT,
        {"input": {"kind": kind, "from": start.isoformat(), "to": end.isoformat()}},
        token=token,
    )
    payload = data["createCsvExport"]
    assert payload["userErrors"] == [], payload
    return payload["url"]


def _path(url: str) -> str:
    return httpx.URL(url).raw_path.decode()


async def _csv(client: httpx.AsyncClient, url: str) -> list[list[str]]:
    response = await client.get(_path(url))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "private, no-store"
    return list(csv.reader(io.StringIO(response.content.decode("utf-8"), newline="")))


def _headers(kind: ExportKind) -> list[str]:
    return [c.header for c in COLUMNS[kind]]


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


async def test_an_admin_exports_orders_as_csv(client):
    admin = await make_admin()
    buyer, other = await make_client(), await make_client()
    product = await make_product()
    await make_dossier(buyer, product)
    await make_dossier(other, product)
    pending = await Order.create(
        user_id=other.obj.id,
        product_id=product.id,
        amount=4_500,
        currency="eur",
        status=OrderStatus.PENDING,
    )
    start, end = _range()
    rows = await _csv(client, await _export(client, admin.token, "ORDERS", start, end))
    assert rows[0] == _headers(ExportKind.ORDERS)
    orders = await Order.all().order_by("created_at", "id")
    assert [r[0] for r in rows[1:]] == [str(o.id) for o in orders]
    by_id = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    line = by_id[str(pending.id)]
    assert line["status"] == "PENDING"
    assert line["amount"] == "4500"
    assert line["refunded_amount"] == "0"
    assert line["currency"] == "EUR"
    assert line["product_code"] == product.code
    assert line["client_id"] == other.id
    assert line["client_email"] == other.email
    assert line["client_name"] == (await Profile.get(id=other.obj.id)).full_name
    assert line["dossier_id"] == ""
    assert line["paid_at"] == ""
    assert line["created_at"] == _iso(pending.created_at)
    paid = next(o for o in orders if o.status == OrderStatus.PAID and o.user_id == buyer.obj.id)
    assert by_id[str(paid.id)]["paid_at"] == _iso(paid.paid_at)
    assert by_id[str(paid.id)]["dossier_id"] == str(paid.dossier_id)


async def test_dossiers_and_events_exports_hold_the_range_only(client):
    admin = await make_admin()
    owner = await make_client()
    dossier = await make_dossier(owner)
    old = await make_dossier(owner)
    await Dossier.filter(id=old.id).update(created_at=datetime.now(UTC) - timedelta(days=40))
    start, end = _range()
    rows = await _csv(client, await _export(client, admin.token, "DOSSIERS", start, end))
    assert rows[0] == _headers(ExportKind.DOSSIERS)
    assert [r[0] for r in rows[1:]] == [str(dossier.id)]
    line = dict(zip(rows[0], rows[1], strict=True))
    assert line["status"] == dossier.status
    assert line["reference"] == dossier.reference
    assert line["reference"].startswith("PV-")
    assert line["client_id"] == owner.id
    assert line["created_at"] == _iso(dossier.created_at)

    events = await Event.filter(created_at__gte=start).order_by("created_at", "id")
    assert events  # opening the dossiers recorded some
    rows = await _csv(client, await _export(client, admin.token, "EVENTS", start, end))
    assert rows[0] == _headers(ExportKind.EVENTS)
    assert [r[0] for r in rows[1:]] == [str(e.id) for e in events]
    for line, event in zip(rows[1:], events, strict=True):
        row = dict(zip(rows[0], line, strict=True))
        assert row["event_type"] == event.event_type
        assert row["entity_id"] == str(event.entity_id)
        assert orjson.loads(row["payload"]) == event.payload


async def test_a_large_export_streams_in_keyset_batches(client):
    admin = await make_admin()
    start, end = _range()
    base = datetime.now(UTC) - timedelta(hours=1)
    total = 2_500
    await Event.bulk_create(
        [
            Event(
                entity_type="export-test",
                entity_id=uuid.uuid4(),
                event_type=EventType.PROFILE_UPDATED,
                actor_type=ActorType.SYSTEM,
                payload={"n": n, "name": "Hélène"},
                # pairs of rows share a time: the keyset must go on by id
                created_at=base + timedelta(milliseconds=n // 2),
            )
            for n in range(total)
        ],
        batch_size=500,
    )
    url = await _export(client, admin.token, "EVENTS", start, end)
    with count_statements() as statements:
        rows = await _csv(client, url)
    batches = [s for s in statements if "ORDER BY t.created_at, t.id" in s]
    assert len(batches) == 3  # 1,000 + 1,000 + 500 rows
    lines = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    ours = [orjson.loads(line["payload"]) for line in lines if line["entity_type"] == "export-test"]
    assert len(ours) == total
    assert [p["n"] // 2 for p in ours] == sorted(p["n"] // 2 for p in ours)  # oldest first
    assert len({line["id"] for line in lines}) == len(lines)  # no row twice
    assert {p["n"] for p in ours} == set(range(total))
    assert ours[0]["name"] == "Hélène"  # UTF-8 through
    expected = await Event.filter(created_at__gte=start).order_by("created_at", "id")
    assert [line["id"] for line in lines] == [str(e.id) for e in expected]


async def test_formula_cells_are_defused(client):
    admin = await make_admin()
    product = await make_product()
    names = ['=HYPERLINK("http://x")', "+33 1", "-2+3", "@SUM(A1)", "\tTab", "\rCR", "Zoé"]
    clients = []
    for name in names:
        account = await make_client()
        await Profile.filter(id=account.obj.id).update(full_name=name)
        await make_dossier(account, product)
        clients.append(account)
    start, end = _range()
    rows = await _csv(client, await _export(client, admin.token, "DOSSIERS", start, end))
    column = rows[0].index("client_name")
    by_client = {r[rows[0].index("client_id")]: r[column] for r in rows[1:]}
    got = [by_client[c.id] for c in clients]
    assert got == ["'" + n for n in names[:-1]] + ["Zoé"]


async def test_forged_altered_and_expired_links_answer_403_without_data(client):
    admin, other_admin = await make_admin(), await make_admin()
    await make_dossier(await make_client())
    start, end = _range()
    url = httpx.URL(await _export(client, admin.token, "DOSSIERS", start, end))
    params = dict(url.params)

    async def get(path: str, **changes: str) -> httpx.Response:
        query = {**params, **changes}
        return await client.get(path, params=query)

    assert (await get("/exports/csv/dossiers")).status_code == 200
    refused = [
        await get("/exports/csv/dossiers", signature="0" * 64),  # forged
        await get("/exports/csv/dossiers", signature=""),
        await get("/exports/csv/orders"),  # another kind
        await get("/exports/csv/events"),
        await get("/exports/csv/nothing"),
        await get("/exports/csv/dossiers", to=(end + timedelta(days=365)).isoformat()),
        await get("/exports/csv/dossiers", **{"from": "2000-01-01T00:00:00Z"}),
        await get("/exports/csv/dossiers", by=other_admin.id),  # another admin's
        await get("/exports/csv/dossiers", expires=str(int(params["expires"]) + 3600)),
        await client.get("/exports/csv/dossiers"),
    ]
    for response in refused:
        assert response.status_code == 403, response.text
        assert response.text == "Invalid link."
        assert "text/csv" not in response.headers["content-type"]

    # an expired link
    stale = export_link(
        ExportKind.DOSSIERS,
        start,
        end,
        admin.obj.id,
        now=datetime.now(UTC) - timedelta(days=1),
    )
    response = await client.get(_path(stale.url))
    assert response.status_code == 403
    assert "expired" in response.text


async def test_the_link_stops_working_when_the_admin_is_disabled_or_demoted(client):
    admin = await make_admin()
    await make_dossier(await make_client())
    start, end = _range()
    url = await _export(client, admin.token, "DOSSIERS", start, end)
    assert (await client.get(_path(url))).status_code == 200
    await Agent.filter(id=admin.obj.id).update(active=False)
    response = await client.get(_path(url))
    assert response.status_code == 403
    assert "no longer valid" in response.text
    await Agent.filter(id=admin.obj.id).update(active=True, role=AgentRole.AGENT)
    assert (await client.get(_path(url))).status_code == 403
    await Agent.filter(id=admin.obj.id).update(role=AgentRole.ADMIN)
    assert (await client.get(_path(url))).status_code == 200


async def test_only_admins_create_exports_and_a_backwards_range_is_refused(client):
    agent, customer, admin = await make_agent(), await make_client(), await make_admin()
    start, end = _range()
    variables: dict[str, Any] = {
        "input": {"kind": "ORDERS", "from": start.isoformat(), "to": end.isoformat()}
    }
    for token, code in ((None, "UNAUTHENTICATED"), (customer.token, "FORBIDDEN")):
        body = await gql(client, EXPORT, variables, token=token, expect_errors=True)
        assert [e["extensions"]["code"] for e in body["errors"]] == [code]
        assert body["data"] is None
    body = await gql(client, EXPORT, variables, token=agent.token, expect_errors=True)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]

    backwards = {"input": {"kind": "ORDERS", "from": end.isoformat(), "to": start.isoformat()}}
    data = await gql(client, EXPORT, backwards, token=admin.token)
    payload = data["createCsvExport"]
    assert payload["url"] is None
    assert [e["code"] for e in payload["userErrors"]] == ["INVALID_RANGE"]


@pytest.mark.parametrize("kind", list(ExportKind))
async def test_an_empty_range_is_a_header_row(client, kind):
    admin = await make_admin()
    start = datetime(2001, 1, 1, tzinfo=UTC)
    rows = await _csv(
        client, await _export(client, admin.token, kind.value, start, start + timedelta(days=1))
    )
    assert rows == [_headers(kind)]


def test_the_readme_lists_each_kind_s_columns_in_order():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for kind, columns in COLUMNS.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{kind.value}` |"))
        listed = [c.strip().removesuffix(" (JSON)") for c in row.split("|")[2].split(",")]
        assert listed == [c.header for c in columns], kind
