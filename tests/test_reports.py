"""Admins' reports (issue 19, item 4): worlds whose answers are known, written with explicit
timestamps, read through the GraphQL API on both backends."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.models import (
    Document,
    DocumentReview,
    DocumentType,
    DocumentVersion,
    Dossier,
    Order,
    PaymentLink,
    Product,
    Refund,
    Step,
    StepInstance,
)
from app.models.enums import (
    ActorType,
    DossierKind,
    DossierStatus,
    OrderStatus,
    ReviewStatus,
)
from app.services import reports
from app.services.references import next_reference
from tests.conftest import BACKEND
from tests.factories import make_admin, make_agent, make_client
from tests.helpers import error_codes, gql

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = 3600.0
DAY = 24 * HOUR

REPORTS = """
query($filter: ReportFilter!, $first: Int, $after: String) {
  reports(filter: $filter) {
    funnel(first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      nodes { month productCode productName sent registered paid registrationRate paymentRate }
    }
    revenue(first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      nodes { month productCode currency paidOrders gross refunded net }
    }
    stepDurations(first: $first) {
      totalCount
      nodes { stepCode stepLabel count averageSeconds medianSeconds p90Seconds }
    }
    dossierDurations(first: $first) {
      totalCount nodes { productCode count averageSeconds medianSeconds p90Seconds }
    }
    reviewTurnaround(first: $first) {
      totalCount
      nodes { documentTypeId documentTypeCode count averageSeconds medianSeconds p90Seconds }
    }
  }
}
"""

REVENUE_PAGE = """
query($filter: ReportFilter!, $first: Int, $after: String) {
  reports(filter: $filter) {
    revenue(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor } nodes { month productCode currency net }
    }
  }
}
"""


def _filter(start: datetime = JAN, end: datetime = MAR, products: Any = None) -> dict:
    value: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat()}
    if products is not None:
        value["productIds"] = [str(p.id) for p in products]
    return value


async def _product(letter: str) -> Product:
    return await Product.create(
        code=f"RPT_{letter}_{uuid.uuid4().hex[:6].upper()}",
        name=f"Product {letter}",
        dossier_type=DossierKind.OTHER,
        price_amount=10_000,
        currency="eur",
    )


async def _link(product: Product, at: datetime, *, used: bool = False) -> PaymentLink:
    return await PaymentLink.create(
        token=uuid.uuid4().hex,
        product_id=product.id,
        prospect_email=f"p-{uuid.uuid4().hex[:8]}@example.com",
        prospect_name="Prospect",
        expires_at=at + timedelta(days=7),
        created_at=at,
        used_at=at + timedelta(hours=1) if used else None,
    )


async def _order(
    client: Any,
    product: Product,
    amount: int,
    *,
    paid_at: datetime | None,
    currency: str = "eur",
    link: PaymentLink | None = None,
    status: OrderStatus = OrderStatus.PAID,
) -> Order:
    return await Order.create(
        user_id=client.obj.id,
        product_id=product.id,
        payment_link_id=link.id if link else None,
        amount=amount,
        currency=currency,
        status=status,
        paid_at=paid_at,
    )


async def _refund(order: Order, amount: int, at: datetime) -> None:
    await Refund.create(order_id=order.id, amount=amount, currency=order.currency, created_at=at)


async def _dossier(client: Any, product: Product, created: datetime, completed: Any) -> Dossier:
    return await Dossier.create(
        reference=await next_reference(),
        user_id=client.obj.id,
        product_id=product.id,
        type=DossierKind.OTHER,
        status=DossierStatus.COMPLETED if completed else DossierStatus.IN_PROGRESS,
        created_at=created,
        completed_at=completed,
    )


@pytest.fixture
async def admin():
    return await make_admin()


async def test_funnel_counts_links_sent_used_and_paid_by_utc_month_and_product(client, admin):
    buyer = await make_client()
    a, b = await _product("A"), await _product("B")
    # January, product A: three links, two used, one of those paid
    await _link(a, JAN + timedelta(days=2))
    await _link(a, JAN + timedelta(days=3), used=True)
    paid = await _link(a, JAN + timedelta(days=4), used=True)
    await _order(buyer, a, 10_000, paid_at=JAN + timedelta(days=5), link=paid)
    # ... and one made the last half hour of January (UTC)
    await _link(a, FEB - timedelta(minutes=30))
    # February (its first half hour, UTC), product A: one used link whose order is unpaid
    unpaid = await _link(a, FEB + timedelta(minutes=30), used=True)
    await _order(buyer, a, 10_000, paid_at=None, link=unpaid, status=OrderStatus.PENDING)
    # January, product B: one link, unused
    await _link(b, JAN + timedelta(days=9))
    # outside the range
    await _link(a, JAN - timedelta(seconds=1))
    await _link(a, MAR)

    # the range given in another time zone: the same instants, months still in UTC
    paris = datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))  # = JAN
    data = await gql(
        client, REPORTS, {"filter": _filter(start=paris, products=[a, b])}, token=admin.token
    )
    funnel = data["reports"]["funnel"]
    assert funnel["totalCount"] == 3
    assert [
        (r["month"], r["productName"], r["sent"], r["registered"], r["paid"])
        for r in funnel["nodes"]
    ] == [
        ("2026-01", "Product A", 4, 2, 1),
        ("2026-01", "Product B", 1, 0, 0),
        ("2026-02", "Product A", 1, 1, 0),
    ]
    assert funnel["nodes"][0]["registrationRate"] == pytest.approx(0.5)
    assert funnel["nodes"][0]["paymentRate"] == pytest.approx(0.25)
    assert funnel["nodes"][2]["registrationRate"] == pytest.approx(1.0)

    only_b = await gql(client, REPORTS, {"filter": _filter(products=[b])}, token=admin.token)
    assert [r["productName"] for r in only_b["reports"]["funnel"]["nodes"]] == ["Product B"]


async def test_revenue_is_net_of_refunds_by_month_product_and_currency(client, admin):
    buyer = await make_client()
    a, b = await _product("A"), await _product("B")
    first = await _order(buyer, a, 10_000, paid_at=JAN + timedelta(days=3))
    second = await _order(buyer, a, 5_000, paid_at=JAN + timedelta(days=20))
    await _refund(first, 3_000, JAN + timedelta(days=10))
    await _refund(second, 2_000, FEB + timedelta(days=1))  # refunded the next month
    await _order(buyer, a, 7_000, paid_at=FEB + timedelta(days=2), currency="usd")
    await _order(buyer, b, 9_000, paid_at=None, status=OrderStatus.PENDING)  # never paid
    # paid before the range, refunded within it: the refund counts in its month
    old = await _order(buyer, b, 4_000, paid_at=JAN - timedelta(days=3))
    await _refund(old, 1_000, JAN + timedelta(days=1))
    # paid and refunded after the range
    late = await _order(buyer, a, 8_000, paid_at=MAR + timedelta(hours=1))
    await _refund(late, 8_000, MAR + timedelta(hours=2))

    data = await gql(client, REPORTS, {"filter": _filter()}, token=admin.token)
    revenue = data["reports"]["revenue"]
    rows = [
        (r["month"], r["productCode"][:5], r["currency"], r["paidOrders"], r["gross"],
         r["refunded"], r["net"])
        for r in revenue["nodes"]
    ]  # fmt: skip
    assert rows == [
        ("2026-01", "RPT_A", "EUR", 2, 15_000, 3_000, 12_000),
        ("2026-01", "RPT_B", "EUR", 0, 0, 1_000, -1_000),
        ("2026-02", "RPT_A", "EUR", 0, 0, 2_000, -2_000),
        ("2026-02", "RPT_A", "USD", 1, 7_000, 0, 7_000),
    ]
    assert revenue["totalCount"] == 4
    assert sum(r["net"] for r in revenue["nodes"]) == 15_000 + 7_000 - 3_000 - 2_000 - 1_000

    # a page at a time, in the same order
    seen, after = [], None
    while True:
        page = await gql(
            client,
            REVENUE_PAGE,
            {"filter": _filter(), "first": 3, "after": after},
            token=admin.token,
        )
        connection = page["reports"]["revenue"]
        seen += [(r["month"], r["productCode"][:5], r["currency"]) for r in connection["nodes"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == [row[:3] for row in rows]


async def test_median_and_p90_time_per_step_and_per_dossier(client, admin):
    owner = await make_client()
    a, b = await _product("A"), await _product("B")
    identity = await Step.create(code=f"RPT_S1_{uuid.uuid4().hex[:6]}", label="Identity")
    filing = await Step.create(code=f"RPT_S2_{uuid.uuid4().hex[:6]}", label="Filing")
    dossier = await _dossier(owner, a, JAN, None)
    other = await _dossier(owner, b, JAN, None)

    async def step(step: Step, started: datetime, hours: float, **extra: Any) -> None:
        await StepInstance.create(
            dossier_id=extra.pop("dossier", dossier).id,
            step_id=step.id,
            started_at=started,
            completed_at=started + timedelta(hours=hours),
            **extra,
        )

    for n, hours in enumerate((1, 2, 3, 10)):
        await step(identity, JAN + timedelta(days=n + 1), hours)
    await step(filing, JAN + timedelta(days=10), 5)
    await step(filing, JAN + timedelta(days=11), 50, dossier=other)  # product B
    skipped = JAN + timedelta(days=12)
    await step(filing, skipped, 0, skipped_at=skipped)  # skipped: not a duration
    await step(filing, JAN - timedelta(days=5), 1)  # completed before the range
    await StepInstance.create(dossier_id=dossier.id, step_id=filing.id, started_at=JAN)  # open

    await _dossier(owner, a, JAN - timedelta(days=5), JAN + timedelta(days=5))  # 10 days
    await _dossier(owner, a, JAN + timedelta(days=1), JAN + timedelta(days=21))  # 20 days
    await _dossier(owner, a, JAN, None)  # running
    await _dossier(owner, b, JAN - timedelta(days=60), JAN - timedelta(days=1))  # before

    data = await gql(client, REPORTS, {"filter": _filter(products=[a])}, token=admin.token)
    steps = {r["stepLabel"]: r for r in data["reports"]["stepDurations"]["nodes"]}
    assert steps["Identity"]["count"] == 4
    assert steps["Identity"]["medianSeconds"] == pytest.approx(2.5 * HOUR, abs=0.01)
    assert steps["Identity"]["p90Seconds"] == pytest.approx(7.9 * HOUR, abs=0.01)
    assert steps["Identity"]["averageSeconds"] == pytest.approx(4 * HOUR, abs=0.01)
    assert steps["Filing"]["count"] == 1
    assert steps["Filing"]["medianSeconds"] == pytest.approx(5 * HOUR, abs=0.01)
    assert steps["Filing"]["p90Seconds"] == pytest.approx(5 * HOUR, abs=0.01)
    assert [r["stepLabel"] for r in data["reports"]["stepDurations"]["nodes"]] == [
        "Identity",
        "Filing",
    ]  # by step code

    dossiers = data["reports"]["dossierDurations"]["nodes"]
    assert len(dossiers) == 1
    assert dossiers[0]["count"] == 2
    assert dossiers[0]["medianSeconds"] == pytest.approx(15 * DAY, abs=0.01)
    assert dossiers[0]["p90Seconds"] == pytest.approx(19 * DAY, abs=0.01)

    both = await gql(client, REPORTS, {"filter": _filter()}, token=admin.token)
    filing_row = next(
        r for r in both["reports"]["stepDurations"]["nodes"] if r["stepLabel"] == "Filing"
    )
    assert filing_row["count"] == 2  # product B's too
    assert filing_row["medianSeconds"] == pytest.approx(27.5 * HOUR, abs=0.01)


async def test_review_turnaround_by_document_type(client, admin):
    owner = await make_client()
    reviewer = await make_agent()
    product = await _product("A")
    dossier = await _dossier(owner, product, JAN, None)
    passport = await DocumentType.create(
        code=f"RPT_PASSPORT_{uuid.uuid4().hex[:6]}", label="Passport", max_file_size_mb=5
    )
    typed = await Document.create(dossier_id=dossier.id, document_type_id=passport.id)
    ad_hoc = await Document.create(dossier_id=dossier.id, label="A letter")

    async def reviewed(document: Document, uploaded: datetime, minutes: float) -> None:
        number = await DocumentVersion.filter(document_id=document.id).count() + 1
        version = await DocumentVersion.create(
            document_id=document.id,
            file_url=f"k/{uuid.uuid4()}",
            file_name="scan.pdf",
            file_size_bytes=10,
            mime_type="application/pdf",
            uploaded_by_type=ActorType.USER,
            version_number=number,
            uploaded_at=uploaded,
        )
        await DocumentReview.create(
            document_version_id=version.id,
            reviewer_id=reviewer.obj.id,
            status=ReviewStatus.APPROVED,
            reviewed_at=uploaded + timedelta(minutes=minutes),
        )

    for n, minutes in enumerate((30, 90, 60)):
        await reviewed(typed, JAN + timedelta(days=n + 1), minutes)
    await reviewed(ad_hoc, JAN + timedelta(days=5), 120)
    await reviewed(typed, MAR + timedelta(days=1), 5)  # after the range

    data = await gql(client, REPORTS, {"filter": _filter()}, token=admin.token)
    rows = data["reports"]["reviewTurnaround"]["nodes"]
    assert [(r["documentTypeCode"], r["count"]) for r in rows] == [
        (None, 1),  # requested without a type: one row of its own, first
        (passport.code, 3),
    ]
    assert rows[0]["documentTypeId"] is None
    assert rows[0]["medianSeconds"] == pytest.approx(2 * HOUR, abs=0.01)
    assert rows[1]["documentTypeId"] == str(passport.id)
    assert rows[1]["medianSeconds"] == pytest.approx(60 * 60, abs=0.01)
    assert rows[1]["p90Seconds"] == pytest.approx(84 * 60, abs=0.01)


async def test_an_empty_range_answers_empty_reports(client, admin):
    buyer = await make_client()
    product = await _product("A")
    await _order(buyer, product, 10_000, paid_at=JAN + timedelta(days=3))
    await _link(product, JAN + timedelta(days=3))
    data = await gql(
        client,
        REPORTS,
        {"filter": _filter(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC))},
        token=admin.token,
    )
    for name, report in data["reports"].items():
        assert report["totalCount"] == 0, name
        assert report["nodes"] == [], name
    none_of = await gql(
        client, REPORTS, {"filter": {**_filter(), "productIds": []}}, token=admin.token
    )
    assert all(r["nodes"] == [] for r in none_of["reports"].values())


async def test_reports_refuse_a_backwards_range_and_a_bad_cursor(client, admin):
    body = await gql(
        client, REPORTS, {"filter": _filter(MAR, JAN)}, token=admin.token, expect_errors=True
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "before" in body["errors"][0]["message"]
    body = await gql(
        client,
        REVENUE_PAGE,
        {"filter": _filter(), "after": "bm90LWEtY3Vyc29y"},
        token=admin.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_reports_are_for_admins_only(client):
    agent, customer = await make_agent(), await make_client()
    variables = {"filter": _filter()}
    for token, code in ((None, "UNAUTHENTICATED"), (customer.token, "FORBIDDEN")):
        body = await gql(client, REPORTS, variables, token=token, expect_errors=True)
        assert error_codes(body) == [code]
        assert body["data"] is None
    body = await gql(client, REPORTS, variables, token=agent.token, expect_errors=True)
    assert error_codes(body) == ["FORBIDDEN"]


@pytest.mark.skipif(not BACKEND.is_postgres, reason="percentile_cont is PostgreSQL's")
async def test_the_portable_percentiles_are_postgresql_percentile_cont(admin):
    """The same SQL runs on SQLite, which has no percentile function: on PostgreSQL it must
    agree with percentile_cont, for groups of every small size and random durations."""
    from tortoise import connections

    owner = await make_client()
    product = await _product("A")
    rnd = random.Random(19)
    for n in range(1, 12):
        for _ in range(n):
            start = JAN + timedelta(days=rnd.randint(0, 20))
            await _dossier(owner, product, start, start + timedelta(seconds=rnd.randint(1, 10**6)))
        scope = reports.report_range(JAN, MAR, [product.id])
        page = await reports.dossier_durations(scope, size=10)
        [row] = page.rows
        [expected] = await connections.get("default").execute_query_dict(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS p50, "
            "percentile_cont(0.9) WITHIN GROUP (ORDER BY s) AS p90 FROM ("
            "SELECT EXTRACT(EPOCH FROM (completed_at - created_at)) AS s FROM dossiers "
            "WHERE product_id = $1) d",
            [product.id],
        )
        assert float(row["p50"]) == pytest.approx(float(expected["p50"]), abs=1e-6), n
        assert float(row["p90"]) == pytest.approx(float(expected["p90"]), abs=1e-6), n
        await Dossier.filter(product_id=product.id).delete()
