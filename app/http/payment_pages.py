"""HTTP pages beside GraphQL: the tracked reminder link and the dummy checkout page."""

from __future__ import annotations

import html
import logging
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from tortoise.transactions import in_transaction

from app.errors import DomainError
from app.http.stripe_webhook import handle_event
from app.models import Order, PaymentReminder, Product
from app.models.enums import EventType, OrderStatus
from app.services import events, outbox
from app.services.payments.checkout import start_checkout

logger = logging.getLogger("app.http.payment_pages")


# What every HTML page of this service sends (here and GraphiQL's, app/http/graphql.py):
# nothing loads but the page's own inline style, no other site may frame it, the browser
# never guesses a type, no address (reminder ids, session ids, order ids) leaks in a
# Referer, and pages about an account or an order are never cached.
def page_csp(*form_targets: str) -> str:
    form_action = " ".join(("'self'", *form_targets))
    return (
        f"default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


PAGE_CSP = page_csp()


def security_headers(csp: str = PAGE_CSP, *, no_store: bool = True) -> dict[str, str]:
    headers = {
        "content-security-policy": csp,
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
    if no_store:
        headers["cache-control"] = "no-store"
    return headers


def _page(title: str, body: str, status_code: int = 200, *, csp: str = PAGE_CSP) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}"
        "button{font-size:1rem;padding:.6rem 1.2rem;margin:.3rem;border-radius:.4rem;border:0}"
        ".pay{background:#635bff;color:#fff}.fail{background:#eee}"
        "pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f4f4f4;padding:.6rem}"
        f"</style></head><body>{body}</body></html>",
        status_code=status_code,
        headers=security_headers(csp),
    )


def _redirect(url: str) -> RedirectResponse:
    """A 303 carrying the same headers: its Referrer-Policy also covers the next request."""
    return RedirectResponse(url, status_code=303, headers=security_headers())


def _app_url(request: Request, path: str) -> str:
    return request.app.state.settings.public_app_url.rstrip("/") + path


async def pay_reminder(request: Request) -> Response:
    """`GET /pay/{reminder_id}`: record the click, then 303 to a fresh Checkout Session."""
    try:
        reminder_id = uuid.UUID(request.path_params["reminder_id"])
    except ValueError:
        reminder_id = None
    reminder = await PaymentReminder.filter(id=reminder_id).first() if reminder_id else None
    if reminder is None:
        return _page("Link not found", "<h1>This link is not valid.</h1>", 404)
    async with outbox.collecting(), in_transaction():
        first_click = await PaymentReminder.filter(id=reminder.id, clicked_at=None).update(
            clicked_at=datetime.now(UTC)
        )
        if first_click:
            await events.record(
                "order",
                reminder.order_id,
                EventType.PAYMENT_REMINDER_CLICKED,
                payload={"reminderId": str(reminder.id), "channel": reminder.sent_via.value},
            )
    order = await Order.get(id=reminder.order_id)
    if order.status != OrderStatus.PENDING:
        return _redirect(_app_url(request, "/dossiers"))
    try:
        url = await start_checkout(request.app.state.payments, order)
    except DomainError as error:
        return _page("Payment unavailable", f"<h1>{html.escape(error.message)}</h1>", 503)
    return _redirect(url)


async def _order_for_session(session_id: str) -> Order | None:
    return await Order.filter(stripe_checkout_session_id=session_id).first()


async def dummy_checkout_page(request: Request) -> Response:
    session_id = request.path_params["session_id"]
    order = await _order_for_session(session_id)
    if order is None:
        return _page("Unknown checkout", "<h1>This checkout session does not exist.</h1>", 404)
    product = await Product.get(id=order.product_id)
    amount = f"{order.amount / 100:.2f} {order.currency.upper()}"
    if order.status != OrderStatus.PENDING:
        return _page("Already paid", f"<h1>This order is {order.status.value.lower()}.</h1>")
    sid = html.escape(session_id)
    # The buttons post here, then redirect to PUBLIC_APP_URL: form-action covers both hops.
    app_url = urlsplit(request.app.state.settings.public_app_url)
    host = app_url.netloc.rpartition("@")[2]
    app_origin = (f"{app_url.scheme}://{host}",) if app_url.scheme in ("http", "https") else ()
    return _page(
        "Dummy checkout",
        f"<h1>{html.escape(product.name)}</h1><p>Amount: <strong>{amount}</strong></p>"
        "<p>This is the local <em>dummy</em> payment provider: no money moves. "
        "Both buttons take the same path as Stripe's webhook.</p>"
        f"<form method='post' action='/dummy-checkout/{sid}/complete'>"
        "<button class='pay' type='submit'>Pay</button></form>"
        f"<form method='post' action='/dummy-checkout/{sid}/fail'>"
        "<button class='fail' type='submit'>Fail the payment</button></form>",
        csp=page_csp(*app_origin),
    )


def _session_object(order: Order, session_id: str, *, paid: bool) -> dict:
    """A Checkout Session shaped like Stripe's, for this order."""
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "amount_total": order.amount,
        "currency": order.currency,
        "client_reference_id": str(order.id),
        "customer": order.stripe_customer_id,
        "metadata": {"order_id": str(order.id)},
        "payment_intent": f"pi_dummy_{uuid.uuid4().hex}" if paid else None,
        "payment_status": "paid" if paid else "unpaid",
        "status": "complete" if paid else "expired",
    }


async def dummy_checkout_action(request: Request) -> Response:
    session_id, action = request.path_params["session_id"], request.path_params["action"]
    order = await _order_for_session(session_id)
    if order is None or action not in ("complete", "fail"):
        return _page("Unknown checkout", "<h1>This checkout session does not exist.</h1>", 404)
    paid = action == "complete"
    event = {
        "id": f"evt_dummy_{uuid.uuid4().hex}",
        "object": "event",
        "type": "checkout.session.completed" if paid else "checkout.session.expired",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": _session_object(order, session_id, paid=paid)},
    }
    outcome = await handle_event(event)
    logger.info("dummy checkout %s for order %s: %s", action, order.id, outcome.value)
    target = (
        f"/payment/success?order={order.id}" if paid else f"/payment/cancelled?order={order.id}"
    )
    return _redirect(_app_url(request, target))


async def payment_result_page(request: Request) -> Response:
    """Where Checkout sends the client back when no front-end app is configured at
    PUBLIC_APP_URL (the embedded default): a plain confirmation page."""
    result = request.path_params["result"]
    if result not in ("success", "cancelled"):
        return _page("Not found", "<h1>Not found.</h1>", 404)
    if result == "success":
        return _page(
            "Payment received",
            "<h1>Payment received</h1><p>Thank you. Your dossier is open: log in to the app "
            "to follow it and upload your documents.</p>",
        )
    return _page(
        "Payment not completed",
        "<h1>Payment not completed</h1><p>No money was taken. You can pay later from the "
        "link in your reminder email or from the app.</p>",
    )
