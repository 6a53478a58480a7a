"""Real protocol peers for Stripe.

- `localstripe` (PyPI), run as a real process, serves Customers (and the rest of what it has).
- `StripeStandIn`, a small server in the tests, serves `/v1/checkout/sessions` and
  `/v1/refunds` in Stripe's wire format (form-encoded in, the documented JSON object out,
  idempotency keys honoured) and forwards every other `/v1/...` call to localstripe, which
  cannot refund the stand-in's payments (its charges are its own). The app's real
  stripe-python client talks to it through `STRIPE_API_BASE`. `StandInState.pay` makes a
  paid payment intent (with its charge) that `/v1/refunds` refunds and `charge()` shows as
  Stripe's `charge.refunded` carries it.
- `sign()` signs webhook bodies exactly as Stripe does (`t=…,v1=HMAC-SHA256`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WEBHOOK_SECRET = "whsec_test_" + "s" * 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={signature}"


def event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """An event object shaped like Stripe's."""
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) back into nested dicts/lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt_is_index = not last and parts[i + 1].isdigit()
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append({} if not last else None)
                if last:
                    node[index] = value
                else:
                    if not isinstance(node[index], (dict, list)):
                        node[index] = [] if nxt_is_index else {}
                    node = node[index]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if nxt_is_index else {})
    return root


@dataclass
class StandInState:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_idempotency_key: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None  # answer every call with this status (an outage)
    url: str = ""
    # paid payment intents: id -> {"amount", "currency", "customer", "charge", "refunds"}
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refund_keys: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    # refunds made whose answer is lost on the way back (a 500 after the refund is made)
    lose_refund_answers: int = 0
    # awaited once a refund is made, before it is answered (Stripe's webhook racing it)
    before_refund_answer: Callable[[], Awaitable[None]] | None = None

    def clear(self) -> None:
        self.fail_with = None
        self.requests.clear()
        self.sessions.clear()
        self.by_idempotency_key.clear()
        self.intents.clear()
        self.refund_keys.clear()
        self.lose_refund_answers = 0
        self.before_refund_answer = None

    def pay(self, amount: int, currency: str = "eur", customer: str | None = None) -> str:
        """A succeeded payment intent and its charge; returns the intent's id."""
        intent_id = f"pi_{secrets.token_hex(12)}"
        self.intents[intent_id] = {
            "amount": amount,
            "currency": currency,
            "customer": customer,
            "charge": f"ch_{secrets.token_hex(12)}",
            "refunds": [],
        }
        return intent_id

    def charge(self, intent_id: str) -> dict[str, Any]:
        """The intent's charge as a `charge.refunded` event carries it (refunds newest
        first, as Stripe lists them)."""
        intent = self.intents[intent_id]
        refunded = sum(r["amount"] for r in intent["refunds"])
        return charge_object(
            intent_id,
            amount=intent["amount"],
            currency=intent["currency"],
            customer=intent["customer"],
            charge_id=intent["charge"],
            refunds=list(reversed(intent["refunds"])),
            amount_refunded=refunded,
        )


def refund_object(
    intent_id: str,
    amount: int,
    *,
    currency: str = "eur",
    charge_id: str | None = None,
    refund_id: str | None = None,
    reason: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Refund as Stripe's API returns it (and lists it in a charge's `refunds`)."""
    return {
        "id": refund_id or f"re_{secrets.token_hex(12)}",
        "object": "refund",
        "amount": amount,
        "balance_transaction": f"txn_{secrets.token_hex(12)}",
        "charge": charge_id or f"ch_{secrets.token_hex(12)}",
        "created": int(time.time()),
        "currency": currency,
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": metadata or {},
        "payment_intent": intent_id,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def charge_object(
    intent_id: str,
    *,
    amount: int,
    amount_refunded: int,
    refunds: list[dict[str, Any]],
    currency: str = "eur",
    customer: str | None = None,
    charge_id: str | None = None,
) -> dict[str, Any]:
    """A Charge as a `charge.refunded` event carries it."""
    charge_id = charge_id or f"ch_{secrets.token_hex(12)}"
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "captured": True,
        "created": int(time.time()),
        "currency": currency,
        "customer": customer,
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": intent_id,
        "refunded": amount_refunded >= amount,
        "refunds": {
            "object": "list",
            "data": refunds,
            "has_more": False,
            "total_count": len(refunds),
            "url": f"/v1/charges/{charge_id}/refunds",
        },
        "status": "succeeded",
    }


def _stripe_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": "api_error", "message": message}}, status_code=status)


def _invalid(message: str, type_: str = "invalid_request_error", status: int = 400) -> Response:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status)


def build_stand_in(state: StandInState, localstripe_url: str) -> Starlette:
    forward = httpx.AsyncClient(base_url=localstripe_url, timeout=10)

    async def sessions(request: Request) -> Response:
        if state.fail_with:
            return _stripe_error(state.fail_with, "stand-in outage")
        form = unflatten(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        key = request.headers.get("idempotency-key")
        state.requests.append(
            {
                "path": "/v1/checkout/sessions",
                "form": form,
                "idempotency_key": key,
                "authorization": request.headers.get("authorization"),
            }
        )
        if key and key in state.by_idempotency_key:
            return JSONResponse(state.sessions[state.by_idempotency_key[key]])
        line = form["line_items"][0]
        amount = int(line["price_data"]["unit_amount"]) * int(line.get("quantity", 1))
        session_id = f"cs_test_{secrets.token_hex(16)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form["mode"],
            "amount_total": amount,
            "amount_subtotal": amount,
            "currency": line["price_data"]["currency"],
            "customer": form.get("customer"),
            "client_reference_id": form.get("client_reference_id"),
            "metadata": form.get("metadata", {}),
            "allow_promotion_codes": form.get("allow_promotion_codes") == "true",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "livemode": False,
            "created": int(time.time()),
            "expires_at": int(time.time()) + 86400,
        }
        state.sessions[session_id] = session
        if key:
            state.by_idempotency_key[key] = session_id
        return JSONResponse(session)

    async def refunds(request: Request) -> Response:
        if state.fail_with:
            return _stripe_error(state.fail_with, "stand-in outage")
        form = unflatten(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        key = request.headers.get("idempotency-key")
        state.requests.append({"path": "/v1/refunds", "form": form, "idempotency_key": key})
        if key and key in state.refund_keys:
            first_form, refund = state.refund_keys[key]
            if first_form != form:
                return _invalid(
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                    "idempotency_error",
                )
            return _answer(refund)
        intent_id = form.get("payment_intent")
        if not intent_id:
            return _invalid("Must provide one of `charge` or `payment_intent`.")
        intent = state.intents.get(intent_id)
        if intent is None:
            return _invalid(f"No such payment_intent: '{intent_id}'", status=404)
        left = intent["amount"] - sum(r["amount"] for r in intent["refunds"])
        amount = int(form.get("amount", left))
        if amount > left:
            return _invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
            )
        refund = refund_object(
            intent_id,
            amount,
            currency=intent["currency"],
            charge_id=intent["charge"],
            reason=form.get("reason"),
            metadata=form.get("metadata", {}),
        )
        intent["refunds"].append(refund)
        if key:
            state.refund_keys[key] = (form, refund)
        if state.before_refund_answer is not None:
            await state.before_refund_answer()
        return _answer(refund)

    def _answer(refund: dict[str, Any]) -> Response:
        if state.lose_refund_answers > 0:
            state.lose_refund_answers -= 1
            return _stripe_error(500, "the answer was lost")
        return JSONResponse(refund)

    async def proxy(request: Request) -> Response:
        if state.fail_with:
            return _stripe_error(state.fail_with, "stand-in outage")
        body = await request.body()
        state.requests.append(
            {
                "path": request.url.path,
                "form": unflatten(parse_qsl(body.decode())),
                "idempotency_key": request.headers.get("idempotency-key"),
            }
        )
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type", "idempotency-key", "stripe-version")
        }
        upstream = await forward.request(
            request.method,
            request.url.path,
            params=request.query_params,
            content=body,
            headers=headers,
        )
        return Response(
            upstream.content, upstream.status_code, media_type=upstream.headers.get("content-type")
        )

    return Starlette(
        routes=[
            Route("/v1/checkout/sessions", sessions, methods=["POST"]),
            Route("/v1/refunds", refunds, methods=["POST"]),
            Route("/v1/{rest:path}", proxy, methods=["GET", "POST", "DELETE"]),
        ]
    )


class LocalStripe:
    """localstripe as a real process on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        exe = shutil.which("localstripe") or str(Path(sys.executable).parent / "localstripe")
        self.process = subprocess.Popen(
            [exe, "--port", str(self.port), "--from-scratch"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                httpx.get(f"{self.url}/v1/customers", auth=("sk_test_x", ""), timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("localstripe did not start")

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)


async def serve(app, port: int) -> tuple[uvicorn.Server, asyncio.Task]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started:
            break
        await asyncio.sleep(0.02)
    return server, task


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)
