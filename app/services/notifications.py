"""From events to notifications: who is told, on which channels, with which words.

`consume` is the outbox consumer (registered as "notifications" by
`app.services.consumers.install_consumers`). It runs inside `outbox.dispatch`'s transaction,
so an event's notifications and its `processed_at` commit together. For every event whose
type has a rule in `RULES` it finds the recipients, renders the rule's template in the
recipient's language and writes one `notifications` row per recipient plus one
`notification_deliveries` row per channel (unique per notification and channel). IN_APP is
the row itself (its delivery is recorded SENT at once); the other channels are PENDING until
the delivery worker (`app.services.delivery`) sends them.

- Idempotent per event: a recipient already notified for an event (notification row with
  that `event_id`, or an event folded into a group) is never notified twice.
- Throttled chat: MESSAGE_SENT makes one notification per conversation burst and recipient
  (`group_key`); later messages of the burst fold into it (count, wording) and send nothing
  new. A burst ends when the recipient reads the notification or the chat (MESSAGES_READ),
  or after `message_notification_burst_minutes` of silence.
- Payment reminders go out only on the channel their event names; the e-mail and the phone
  reminder of one slot share one notification (one entry in the app).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, pass_context
from tortoise.expressions import Q

from app.db import fetch_value
from app.models import (
    Agent,
    Credential,
    Document,
    DocumentType,
    Dossier,
    Event,
    Message,
    Notification,
    NotificationDelivery,
    Order,
    Product,
    Profile,
    Step,
    StepInstance,
)
from app.models.enums import (
    ActorType,
    AgentRole,
    EventType,
    Locale,
    NotificationChannel,
    NotificationStatus,
)
from app.settings import Settings, get_settings

logger = logging.getLogger("app.notifications")

APP_NAME = "Partners VRAI"
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "notifications"
MAX_FOLDED_EVENT_IDS = 200
PREVIEW_CHARS = 280


# --- the rules ---------------------------------------------------------------------------


class Audience(StrEnum):
    CLIENT = "CLIENT"  # the client of the dossier or order
    ASSIGNED_AGENTS = "ASSIGNED_AGENTS"  # the step's assignee, or every active agent
    ADMINS = "ADMINS"  # every active administrator
    PROSPECT = "PROSPECT"  # payload["email"]: someone without an account yet
    OTHER_SIDE = "OTHER_SIDE"  # chat: a client's message -> agents, an agent's -> the client


class Via(StrEnum):
    IN_APP = "IN_APP"
    EMAIL = "EMAIL"
    PHONE = "PHONE"  # SMS or WhatsApp (settings.notification_phone_channel), if a phone
    EVENT_CHANNEL = "EVENT_CHANNEL"  # exactly the channel in payload["channel"]


class Grouping(StrEnum):
    CHAT_BURST = "CHAT_BURST"
    REMINDER_SLOT = "REMINDER_SLOT"


@dataclass(frozen=True)
class Rule:
    audience: Audience
    template: str
    channels: tuple[Via, ...]
    grouping: Grouping | None = None


E = EventType
A = Audience
V = Via
RULES: dict[EventType, tuple[Rule, ...]] = {
    E.PAYMENT_LINK_CREATED: (Rule(A.PROSPECT, "payment_link", (V.EMAIL,)),),
    E.PAYMENT_SUCCEEDED: (Rule(A.CLIENT, "payment_succeeded", (V.IN_APP, V.EMAIL)),),
    E.PAYMENT_FAILED: (Rule(A.CLIENT, "payment_failed", (V.IN_APP, V.EMAIL)),),
    E.PAYMENT_REMINDER_SENT: (
        Rule(A.CLIENT, "payment_reminder", (V.EVENT_CHANNEL,), Grouping.REMINDER_SLOT),
    ),
    E.DOSSIER_CREATED: (
        Rule(A.CLIENT, "dossier_created", (V.IN_APP, V.EMAIL)),
        Rule(A.ADMINS, "dossier_opened", (V.IN_APP,)),
    ),
    E.STEP_STARTED: (Rule(A.CLIENT, "step_started", (V.IN_APP, V.EMAIL)),),
    E.DOCUMENT_UPLOADED: (Rule(A.ASSIGNED_AGENTS, "document_uploaded", (V.IN_APP, V.EMAIL)),),
    E.DOCUMENT_CHANGES_REQUESTED: (
        Rule(A.CLIENT, "document_changes_requested", (V.IN_APP, V.EMAIL, V.PHONE)),
    ),
    E.DOCUMENT_APPROVED: (Rule(A.CLIENT, "document_approved", (V.IN_APP, V.EMAIL)),),
    E.DOCUMENT_REJECTED: (Rule(A.CLIENT, "document_rejected", (V.IN_APP, V.EMAIL)),),
    E.MESSAGE_SENT: (
        Rule(A.OTHER_SIDE, "message_received", (V.IN_APP, V.EMAIL), Grouping.CHAT_BURST),
    ),
    E.DOSSIER_COMPLETED: (Rule(A.CLIENT, "dossier_completed", (V.IN_APP, V.EMAIL, V.PHONE)),),
    E.DOSSIER_CANCELLED: (Rule(A.CLIENT, "dossier_cancelled", (V.IN_APP, V.EMAIL)),),
    # Chasing (app/services/chasing.py): one reminder lists every missing document.
    E.DOCUMENT_REMINDER_SENT: (Rule(A.CLIENT, "document_reminder", (V.IN_APP, V.EMAIL, V.PHONE)),),
    E.STEP_DUE_DATE_CHANGED: (Rule(A.CLIENT, "step_due_date_changed", (V.IN_APP, V.EMAIL)),),
    E.STEP_OVERDUE: (Rule(A.ASSIGNED_AGENTS, "step_overdue", (V.IN_APP, V.EMAIL)),),
}
TEMPLATE_CODES = sorted({rule.template for rules in RULES.values() for rule in rules})


# --- templates ---------------------------------------------------------------------------

CURRENCY_SYMBOLS = {"eur": "€", "usd": "$", "gbp": "£", "chf": "CHF", "cad": "CA$"}
MONTHS = {
    "fr": [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
}


@pass_context
def _money(ctx: Any, amount: Any, currency: Any = "eur") -> str:
    """Minor units to a localised amount: 150000 eur -> '1 500,00 €' / '€1,500.00'."""
    try:
        value = f"{int(amount) / 100:,.2f}"
    except (TypeError, ValueError):
        return ""
    symbol = CURRENCY_SYMBOLS.get(str(currency).lower(), str(currency).upper())
    if ctx.get("locale") == "en":
        return f"{symbol}{value}" if len(symbol) == 1 else f"{value} {symbol}"
    return value.replace(",", "\u202f").replace(".", ",") + f"\u00a0{symbol}"


@pass_context
def _date(ctx: Any, value: Any) -> str:
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return ""
    months = MONTHS["en" if ctx.get("locale") == "en" else "fr"]
    if ctx.get("locale") == "en":
        return f"{months[moment.month - 1]} {moment.day}, {moment.year}"
    return f"{moment.day} {months[moment.month - 1]} {moment.year}"


@lru_cache
def _environments() -> tuple[Environment, Environment]:
    """(text, html): the same templates, the html one with autoescaping."""
    envs = []
    for autoescape in (False, True):
        env = Environment(
            loader=FileSystemLoader(TEMPLATE_DIR),
            autoescape=autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters["money"] = _money
        env.filters["date"] = _date
        envs.append(env)
    return envs[0], envs[1]


@dataclass(frozen=True)
class Rendered:
    title: str
    message: str
    sms: str
    text: str
    html: str


FOOTER = {
    "fr": "Message automatique de {app}, merci de ne pas y répondre.",
    "en": "An automatic message from {app}; please do not reply.",
}


def normal_locale(value: Any) -> str:
    return value if value in (Locale.FR.value, Locale.EN.value) else Locale.FR.value


def render_heading(template_code: str, locale: str, context: dict[str, Any]) -> tuple[str, str]:
    """Only the title and the message (what `render` gives them): re-wording a folded
    notification needs no e-mail body, which is rendered when the e-mail is sent."""
    locale = normal_locale(locale)
    template = _environments()[0].get_template(f"{locale}/{template_code}.j2")
    ctx = template.new_context({"app_name": APP_NAME, **context, "locale": locale})

    def block(block_name: str) -> str:
        render_block = template.blocks.get(block_name)
        return "".join(render_block(ctx)).strip() if render_block is not None else ""

    return block("title"), block("message")


def render(template_code: str, locale: str, context: dict[str, Any]) -> Rendered:
    """Title, message, SMS text and the e-mail's text and HTML bodies, in one language."""
    locale = normal_locale(locale)
    text_env, html_env = _environments()
    name = f"{locale}/{template_code}.j2"
    ctx = {"app_name": APP_NAME, **context, "locale": locale}
    template = text_env.get_template(name)

    def block(block_name: str) -> str:
        render_block = template.blocks.get(block_name)
        if render_block is None:
            return ""
        return "".join(render_block(template.new_context(ctx))).strip()

    title, message = block("title"), block("message")
    sms = block("sms") or " ".join(
        p for p in (f"{APP_NAME}: {message}", ctx.get("action_url")) if p
    )
    text = block("text") + "\n\n-- \n" + FOOTER[locale].format(app=APP_NAME) + "\n"
    html = html_env.get_template(name).render(ctx)
    return Rendered(title=title, message=message, sms=sms, text=text, html=html)


# --- recipients --------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    key: str  # "user:<id>", "agent:<id>" or "email:<address>"
    name: str
    locale: str
    email: str | None = None
    phone: str | None = None
    profile_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None


def _profile_recipient(profile: Profile, email: str | None) -> Recipient:
    return Recipient(
        key=f"user:{profile.id}",
        name=profile.full_name,
        locale=normal_locale(profile.locale),
        email=email,
        phone=profile.phone or None,
        profile_id=profile.id,
    )


def _agent_recipient(agent: Agent) -> Recipient:
    return Recipient(
        key=f"agent:{agent.id}",
        name=agent.name,
        locale=normal_locale(agent.locale),
        email=agent.email,
        agent_id=agent.id,
    )


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def dossier_id_of(event: Event) -> uuid.UUID | None:
    """EVENT CONVENTIONS: the entity for "dossier" events, else payload["dossierId"]."""
    if event.entity_type == "dossier":
        return event.entity_id
    return _uuid((event.payload or {}).get("dossierId"))


def _document_id_of(event: Event) -> uuid.UUID | None:
    if event.entity_type == "document":
        return event.entity_id
    return _uuid((event.payload or {}).get("documentId"))


def _message_id_of(event: Event) -> uuid.UUID | None:
    if event.entity_type == "message":
        return event.entity_id
    return _uuid((event.payload or {}).get("messageId"))


@dataclass
class Facts:
    """Everything the batch's rules read, loaded with one query per table."""

    dossiers: dict[uuid.UUID, Dossier] = field(default_factory=dict)
    orders: dict[uuid.UUID, Order] = field(default_factory=dict)
    products: dict[uuid.UUID, Product] = field(default_factory=dict)
    documents: dict[uuid.UUID, Document] = field(default_factory=dict)
    document_types: dict[uuid.UUID, DocumentType] = field(default_factory=dict)
    step_instances: dict[uuid.UUID, StepInstance] = field(default_factory=dict)
    steps: dict[uuid.UUID, Step] = field(default_factory=dict)
    profiles: dict[uuid.UUID, Profile] = field(default_factory=dict)
    emails: dict[uuid.UUID, str] = field(default_factory=dict)  # profile id -> login email
    agents: dict[uuid.UUID, Agent] = field(default_factory=dict)  # active + event actors
    messages: dict[uuid.UUID, Message] = field(default_factory=dict)

    def active_agents(self) -> list[Agent]:
        return sorted((a for a in self.agents.values() if a.active), key=lambda a: a.email)

    def client(self, profile_id: uuid.UUID | None) -> Recipient | None:
        profile = self.profiles.get(profile_id) if profile_id else None
        if profile is None:
            return None
        return _profile_recipient(profile, self.emails.get(profile.id))

    def client_of(self, event: Event) -> Recipient | None:
        dossier = self.dossier_of(event)
        if dossier is not None:
            return self.client(dossier.user_id)  # type: ignore[attr-defined]
        order = self.order_of(event)
        return self.client(order.user_id) if order else None  # type: ignore[attr-defined]

    def dossier_of(self, event: Event) -> Dossier | None:
        dossier_id = dossier_id_of(event)
        if dossier_id is None:
            order = self.order_of(event)
            dossier_id = order.dossier_id if order else None  # type: ignore[attr-defined]
        return self.dossiers.get(dossier_id) if dossier_id else None

    def order_of(self, event: Event) -> Order | None:
        if event.entity_type == "order":
            return self.orders.get(event.entity_id)
        order_id = _uuid((event.payload or {}).get("orderId"))
        return self.orders.get(order_id) if order_id else None

    def step_instance_of(self, event: Event) -> StepInstance | None:
        payload = event.payload or {}
        step_instance_id = _uuid(payload.get("stepInstanceId"))
        if step_instance_id is None and event.entity_type == "step_instance":
            step_instance_id = event.entity_id
        if step_instance_id is None:
            document = self.documents.get(_document_id_of(event))  # type: ignore[arg-type]
            step_instance_id = document.step_instance_id if document else None  # type: ignore[attr-defined]
        if step_instance_id is None:
            dossier = self.dossier_of(event)
            step_instance_id = dossier.current_step_instance_id if dossier else None
        return self.step_instances.get(step_instance_id) if step_instance_id else None

    def assigned_agents(self, event: Event) -> list[Recipient]:
        step = self.step_instance_of(event)
        assignee = self.agents.get(step.assigned_to_id) if step else None  # type: ignore[attr-defined]
        if assignee is not None and assignee.active:
            return [_agent_recipient(assignee)]
        return [_agent_recipient(a) for a in self.active_agents()]

    def actor_name(self, event: Event) -> str:
        if event.actor_type == ActorType.USER and event.actor_id in self.profiles:
            return self.profiles[event.actor_id].full_name
        if event.actor_type == ActorType.AGENT and event.actor_id in self.agents:
            return self.agents[event.actor_id].name
        return APP_NAME

    def recipients(self, rule: Rule, event: Event) -> list[Recipient]:
        if rule.audience == Audience.CLIENT:
            client = self.client_of(event)
            return [client] if client else []
        if rule.audience == Audience.ASSIGNED_AGENTS:
            return self.assigned_agents(event)
        if rule.audience == Audience.ADMINS:
            return [_agent_recipient(a) for a in self.active_agents() if a.role == AgentRole.ADMIN]
        if rule.audience == Audience.PROSPECT:
            email = str((event.payload or {}).get("email") or "").strip().lower()
            if not email:
                return []
            name = str((event.payload or {}).get("name") or "")
            return [Recipient(key=f"email:{email}", name=name, locale="fr", email=email)]
        if rule.audience == Audience.OTHER_SIDE:
            if event.actor_type == ActorType.USER:
                return self.assigned_agents(event)
            client = self.client_of(event)
            return [client] if client else []
        return []


async def load_facts(events: Sequence[Event]) -> Facts:
    facts = Facts()
    dossier_ids = {d for e in events if (d := dossier_id_of(e))}
    order_ids = {e.entity_id for e in events if e.entity_type == "order"}
    order_ids |= {o for e in events if (o := _uuid((e.payload or {}).get("orderId")))}
    document_ids = {d for e in events if (d := _document_id_of(e))}
    message_ids = {m for e in events if e.event_type == E.MESSAGE_SENT and (m := _message_id_of(e))}
    needs_agents = any(
        r.audience in (A.ASSIGNED_AGENTS, A.ADMINS, A.OTHER_SIDE)
        for e in events
        for r in RULES.get(e.event_type, ())
    )

    if order_ids:
        facts.orders = {o.id: o for o in await Order.filter(id__in=order_ids)}
        dossier_ids |= {o.dossier_id for o in facts.orders.values() if o.dossier_id}  # type: ignore[attr-defined]
    if dossier_ids:
        facts.dossiers = {d.id: d for d in await Dossier.filter(id__in=dossier_ids)}
    if document_ids:
        facts.documents = {d.id: d for d in await Document.filter(id__in=document_ids)}
        type_ids = {d.document_type_id for d in facts.documents.values()}  # type: ignore[attr-defined]
        facts.document_types = {t.id: t for t in await DocumentType.filter(id__in=type_ids)}
    if message_ids:
        facts.messages = {m.id: m for m in await Message.filter(id__in=message_ids)}
    step_instance_ids = {s for e in events if (s := _uuid((e.payload or {}).get("stepInstanceId")))}
    step_instance_ids |= {e.entity_id for e in events if e.entity_type == "step_instance"}
    step_instance_ids |= {d.step_instance_id for d in facts.documents.values()}  # type: ignore[attr-defined]
    step_instance_ids |= {
        d.current_step_instance_id for d in facts.dossiers.values() if d.current_step_instance_id
    }
    step_instance_ids.discard(None)  # type: ignore[arg-type]
    if step_instance_ids:
        facts.step_instances = {
            s.id: s for s in await StepInstance.filter(id__in=step_instance_ids)
        }
    step_ids = {s.step_id for s in facts.step_instances.values()}  # type: ignore[attr-defined]
    step_ids |= {s for e in events if (s := _uuid((e.payload or {}).get("stepId")))}
    if step_ids:
        facts.steps = {s.id: s for s in await Step.filter(id__in=step_ids)}
    product_ids = {d.product_id for d in facts.dossiers.values()}  # type: ignore[attr-defined]
    product_ids |= {o.product_id for o in facts.orders.values()}  # type: ignore[attr-defined]
    if product_ids:
        facts.products = {p.id: p for p in await Product.filter(id__in=product_ids)}
    profile_ids = {d.user_id for d in facts.dossiers.values()}  # type: ignore[attr-defined]
    profile_ids |= {o.user_id for o in facts.orders.values()}  # type: ignore[attr-defined]
    profile_ids |= {e.actor_id for e in events if e.actor_type == ActorType.USER and e.actor_id}
    if profile_ids:
        facts.profiles = {p.id: p for p in await Profile.filter(id__in=profile_ids)}
        facts.emails = {
            c.profile_id: c.email  # type: ignore[attr-defined]
            for c in await Credential.filter(profile_id__in=profile_ids)
        }
    actor_agent_ids = {e.actor_id for e in events if e.actor_type == ActorType.AGENT and e.actor_id}
    assignee_ids = {
        s.assigned_to_id  # type: ignore[attr-defined]
        for s in facts.step_instances.values()
        if s.assigned_to_id  # type: ignore[attr-defined]
    }
    wanted = actor_agent_ids | assignee_ids
    if needs_agents:
        query = (
            Agent.filter(Q(active=True) | Q(id__in=wanted)) if wanted else Agent.filter(active=True)
        )
        facts.agents = {a.id: a for a in await query}
    elif wanted:
        facts.agents = {a.id: a for a in await Agent.filter(id__in=wanted)}
    return facts


# --- context and links -------------------------------------------------------------------


def _app_url(settings: Settings, path: str) -> str:
    return settings.public_app_url.rstrip("/") + path


def action_url(event: Event, facts: Facts, settings: Settings) -> str:
    payload = event.payload or {}
    if event.event_type in (E.PAYMENT_LINK_CREATED, E.PAYMENT_REMINDER_SENT) and payload.get("url"):
        return str(payload["url"])
    dossier = facts.dossier_of(event)
    if dossier is not None:
        if event.event_type == E.MESSAGE_SENT:
            return _app_url(settings, f"/dossiers/{dossier.id}/messages")
        document_id = _document_id_of(event)
        if event.event_type.startswith("DOCUMENT_") and document_id:
            return _app_url(settings, f"/dossiers/{dossier.id}/documents/{document_id}")
        return _app_url(settings, f"/dossiers/{dossier.id}")
    order = facts.order_of(event)
    if order is not None:
        return _app_url(settings, f"/orders/{order.id}")
    return _app_url(settings, "/")


def _preview(event: Event, facts: Facts) -> str:
    payload = event.payload or {}
    message = facts.messages.get(_message_id_of(event))  # type: ignore[arg-type]
    content = (
        message.content if message else str(payload.get("preview") or payload.get("content") or "")
    )
    content = " ".join(content.split())
    return content if len(content) <= PREVIEW_CHARS else content[: PREVIEW_CHARS - 1] + "…"


def build_context(event: Event, recipient: Recipient, facts: Facts, settings: Settings) -> dict:
    """Everything a template may use; JSON-safe, so the worker can render again later."""
    payload = event.payload or {}
    dossier = facts.dossier_of(event)
    order = facts.order_of(event)
    product_id = (
        dossier.product_id if dossier else order.product_id if order else None  # type: ignore[attr-defined]
    )
    product = facts.products.get(product_id) if product_id else None
    document = facts.documents.get(_document_id_of(event))  # type: ignore[arg-type]
    document_type = (
        facts.document_types.get(document.document_type_id) if document else None  # type: ignore[attr-defined]
    )
    step_instance = facts.step_instance_of(event)
    step = facts.steps.get(_uuid(payload.get("stepId"))) or (  # type: ignore[arg-type]
        facts.steps.get(step_instance.step_id) if step_instance else None  # type: ignore[attr-defined]
    )
    client = facts.profiles.get(dossier.user_id) if dossier else None  # type: ignore[attr-defined]
    amount = payload.get("amount", order.amount if order else None)
    return {
        "name": recipient.name,
        "action_url": action_url(event, facts, settings),
        "product": str(payload.get("productName") or (product.name if product else "")),
        "dossier_ref": str(dossier.id).split("-")[0].upper() if dossier else "",
        "client": client.full_name if client else "",
        "actor": facts.actor_name(event),
        "step": step.label if step else "",
        "document": document_type.label if document_type else str(payload.get("document") or ""),
        "reason": str(payload.get("reason") or ""),
        "amount": amount,
        "currency": str(payload.get("currency") or (order.currency if order else "eur")),
        "expires_at": str(payload.get("expiresAt") or ""),
        "preview": _preview(event, facts) if event.event_type == E.MESSAGE_SENT else "",
        "count": 1,
        # due dates and chasing
        "due_at": str(payload.get("dueAt") or ""),
        "previous_due_at": str(payload.get("previousDueAt") or ""),
        "overdue": bool(payload.get("overdue")),
        "overdue_hours": int(payload.get("overdueHours") or 0),
        "missing": _missing_documents(payload),
    }


def _missing_documents(payload: dict[str, Any]) -> list[dict[str, str]]:
    """A reminder's list of missing documents, as its templates show them."""
    rows = payload.get("missing")
    if not isinstance(rows, list):
        return []
    return [
        {
            "label": str(row.get("label") or ""),
            "status": str(row.get("status") or ""),
            "reason": str(row.get("reason") or ""),
        }
        for row in rows
        if isinstance(row, dict)
    ]


# --- the consumer ------------------------------------------------------------------------


def _channels(rule: Rule, event: Event, recipient: Recipient, settings: Settings):
    """(channel, address) pairs this rule reaches the recipient on."""
    has_account = recipient.profile_id is not None or recipient.agent_id is not None
    pairs: list[tuple[NotificationChannel, str]] = []
    for via in rule.channels:
        if via == Via.IN_APP and has_account:
            pairs.append((NotificationChannel.IN_APP, recipient.key))
        elif via == Via.EMAIL and recipient.email:
            pairs.append((NotificationChannel.EMAIL, recipient.email))
        elif via == Via.PHONE and recipient.phone:
            pairs.append(
                (NotificationChannel(settings.notification_phone_channel), recipient.phone)
            )
        elif via == Via.EVENT_CHANNEL:
            try:
                channel = NotificationChannel(str((event.payload or {}).get("channel")))
            except ValueError:
                continue
            address = recipient.email if channel == NotificationChannel.EMAIL else recipient.phone
            if channel == NotificationChannel.IN_APP:
                address = recipient.key if has_account else None
            if address:
                pairs.append((channel, address))
    return pairs


def _group_key(rule: Rule, event: Event, recipient: Recipient, facts: Facts) -> str | None:
    if rule.grouping == Grouping.CHAT_BURST:
        dossier = facts.dossier_of(event)
        return f"chat:{dossier.id}:{recipient.key}" if dossier else None
    if rule.grouping == Grouping.REMINDER_SLOT:
        slot = (event.payload or {}).get("slot", 0)
        return f"reminder:{event.entity_id}:{slot}:{recipient.key}"
    return None


def _is_actor(event: Event, recipient: Recipient) -> bool:
    if event.actor_id is None:
        return False
    if event.actor_type == ActorType.USER:
        return recipient.profile_id == event.actor_id
    if event.actor_type == ActorType.AGENT:
        return recipient.agent_id == event.actor_id
    return False


@dataclass
class _Planned:
    event: Event
    rule: Rule
    recipient: Recipient
    channels: list[tuple[NotificationChannel, str]]
    group_key: str | None


def _plan(event: Event, facts: Facts, settings: Settings) -> list[_Planned]:
    planned = []
    for rule in RULES[event.event_type]:
        seen: set[str] = set()
        for recipient in facts.recipients(rule, event):
            if recipient.key in seen or _is_actor(event, recipient):
                continue
            seen.add(recipient.key)
            channels = _channels(rule, event, recipient, settings)
            if not channels:
                continue
            group_key = _group_key(rule, event, recipient, facts)
            planned.append(_Planned(event, rule, recipient, channels, group_key))
    return planned


def _still_open(group: Notification, rule: Rule, event: Event, settings: Settings) -> bool:
    """May `event` fold into the group's notification instead of making a new one?"""
    if rule.grouping == Grouping.REMINDER_SLOT:
        return True
    if group.read_at is not None:
        return False
    last = (group.payload or {}).get("lastEventAt")
    if not last:
        return False
    window = timedelta(minutes=settings.message_notification_burst_minutes)
    return event.created_at - datetime.fromisoformat(last) <= window


async def _lock_groups(keys: Iterable[str]) -> None:
    """Serialise concurrent dispatchers on the same groups (PostgreSQL; SQLite already
    runs one write transaction at a time)."""
    from tortoise.connection import get_connection

    connection = get_connection("default")
    if connection.capabilities.dialect != "postgres":
        return
    ordered = sorted(set(keys))
    if ordered:  # one statement, the locks taken in key order (no deadlock between two)
        await connection.execute_query(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
            "FROM unnest($1::text[]) WITH ORDINALITY AS keys(k, n) ORDER BY n",
            [ordered],
        )


async def _update_folded(rows: list[Notification]) -> None:
    """The folded notifications' new wording, in one statement: on PostgreSQL the rows'
    values as arrays (no per-row CASE for the ORM to build), elsewhere its bulk update."""
    from tortoise.connection import get_connection

    connection = get_connection("default")
    if connection.capabilities.dialect != "postgres":
        await Notification.bulk_update(rows, fields=["title", "message", "payload"])
        return
    payload_field = Notification._meta.fields_map["payload"]
    payloads = [payload_field.to_db_value(row.payload, row) for row in rows]
    await connection.execute_query(
        'UPDATE "notifications" AS n SET "title" = v.title, "message" = v.message, '
        '"payload" = v.payload::jsonb '
        "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) "
        "AS v(id, title, message, payload) WHERE n.id = v.id",
        [
            [row.id for row in rows],
            [row.title for row in rows],
            [row.message for row in rows],
            [p.decode() if isinstance(p, bytes) else p for p in payloads],
        ],
    )


async def consume(events: Sequence[Event], *, settings: Settings | None = None) -> None:
    """The outbox consumer: turn a batch of events into notifications and deliveries."""
    settings = settings or get_settings()
    await _close_read_chats([e for e in events if e.event_type == E.MESSAGES_READ])
    todo = sorted(
        (e for e in events if e.event_type in RULES), key=lambda e: (e.created_at, str(e.id))
    )
    if not todo:
        return
    facts = await load_facts(todo)

    planned: list[_Planned] = []
    for event in todo:
        try:
            planned += _plan(event, facts, settings)
        except Exception:  # one malformed event must not hold back the whole batch
            logger.exception("no notification for event %s (%s)", event.id, event.event_type)
    if not planned:
        return

    # Idempotency: (event, recipient) pairs already turned into a notification.
    done: set[tuple[uuid.UUID, str]] = set()
    for event_id, payload in await Notification.filter(
        event_id__in=list({p.event.id for p in planned})
    ).values_list("event_id", "payload"):
        done.add((uuid.UUID(str(event_id)), (payload or {}).get("recipientKey", "")))

    group_keys = {p.group_key for p in planned if p.group_key}
    groups: dict[str, Notification] = {}
    if group_keys:
        await _lock_groups(group_keys)
        # A chat burst can only continue in an unread notification; a reminder slot in any.
        open_groups = Notification.filter(group_key__in=group_keys).filter(
            Q(read_at=None) | Q(group_key__startswith="reminder:")
        )
        for existing in await open_groups.order_by("created_at", "id"):
            groups[existing.group_key] = existing  # the latest one of each group wins
    group_channels: dict[uuid.UUID, set[NotificationChannel]] = {}
    if groups:
        for notification_id, channel in await NotificationDelivery.filter(
            notification_id__in=[g.id for g in groups.values()]
        ).values_list("notification_id", "channel"):
            group_channels.setdefault(notification_id, set()).add(NotificationChannel(channel))

    now = datetime.now(UTC)
    new_notifications: list[Notification] = []
    new_ids: set[uuid.UUID] = set()
    folded: dict[uuid.UUID, Notification] = {}
    deliveries: list[NotificationDelivery] = []

    def add_deliveries(notification: Notification, pairs: list[tuple[NotificationChannel, str]]):
        have = group_channels.setdefault(notification.id, set())
        for channel, address in pairs:
            if channel in have:
                continue
            have.add(channel)
            in_app = channel == NotificationChannel.IN_APP
            deliveries.append(
                NotificationDelivery(
                    notification_id=notification.id,
                    channel=channel,
                    recipient=address,
                    status=NotificationStatus.SENT if in_app else NotificationStatus.PENDING,
                    provider="in_app" if in_app else None,
                    sent_at=now if in_app else None,
                    next_attempt_at=None if in_app else now,
                )
            )

    for plan in planned:
        event, rule, recipient = plan.event, plan.rule, plan.recipient
        if (event.id, recipient.key) in done:
            continue
        group = groups.get(plan.group_key) if plan.group_key else None
        if group is not None and str(event.id) in (group.payload or {}).get("eventIds", []):
            continue  # already folded into its group
        if group is not None and _still_open(group, rule, event, settings):
            preview = _preview(event, facts) if event.event_type == E.MESSAGE_SENT else None
            _fold(group, event, plan.channels, preview=preview)
            if group.id not in new_ids:
                folded[group.id] = group
            add_deliveries(group, plan.channels)
            continue
        try:
            context = build_context(event, recipient, facts, settings)
            rendered = render(rule.template, recipient.locale, context)
        except Exception:  # a template error must not hold back the whole batch
            logger.exception("cannot render %s for event %s", rule.template, event.id)
            continue
        dossier = facts.dossier_of(event)
        notification = Notification(
            user_id=recipient.profile_id,
            agent_id=recipient.agent_id,
            dossier_id=dossier.id if dossier else None,
            event_id=event.id,
            title=rendered.title,
            message=rendered.message,
            template_code=rule.template,
            action_url=context["action_url"],
            group_key=plan.group_key,
            payload={
                "eventType": event.event_type.value,
                "recipientKey": recipient.key,
                "recipientName": recipient.name,
                "locale": recipient.locale,
                "context": context,
                "eventIds": [str(event.id)],
                "lastEventAt": event.created_at.isoformat(),
                "channelUrls": _channel_urls(event, plan.channels),
            },
        )
        new_notifications.append(notification)
        new_ids.add(notification.id)
        done.add((event.id, recipient.key))
        if plan.group_key:
            groups[plan.group_key] = notification
        add_deliveries(notification, plan.channels)

    if new_notifications:
        await Notification.bulk_create(new_notifications)
    if folded:  # one statement for the whole batch
        await _update_folded(list(folded.values()))
    if deliveries:
        await NotificationDelivery.bulk_create(deliveries)
    if new_notifications or deliveries:
        logger.info(
            "%d notification(s), %d delivery(ies) from %d event(s)",
            len(new_notifications),
            len(deliveries),
            len(todo),
        )


def _channel_urls(event: Event, channels: list[tuple[NotificationChannel, str]]) -> dict:
    """A reminder's link is tracked per channel: remember which link each channel carries."""
    url = (event.payload or {}).get("url")
    if event.event_type != E.PAYMENT_REMINDER_SENT or not url:
        return {}
    return {channel.value: str(url) for channel, _ in channels}


def _fold(
    group: Notification,
    event: Event,
    channels: list[tuple[NotificationChannel, str]],
    *,
    preview: str | None = None,
) -> None:
    """Another event of the same burst/slot: count it, re-word the notification (the
    e-mail not sent yet will quote the latest message)."""
    payload = dict(group.payload or {})
    payload["channelUrls"] = {
        **_channel_urls(event, channels),
        **(payload.get("channelUrls") or {}),
    }
    event_ids = [*payload.get("eventIds", []), str(event.id)][-MAX_FOLDED_EVENT_IDS:]
    payload["eventIds"] = event_ids
    payload["lastEventAt"] = max(payload.get("lastEventAt") or "", event.created_at.isoformat())
    if event.event_type == E.MESSAGE_SENT:
        context = dict(payload.get("context") or {})
        context["count"] = int(context.get("count", 1)) + 1
        if preview:
            context["preview"] = preview
        payload["context"] = context
        group.title, group.message = render_heading(
            group.template_code, payload.get("locale", "fr"), context
        )
    group.payload = payload


async def _close_read_chats(events: Sequence[Event]) -> None:
    """Reading a dossier's chat ends the reader's burst: its chat notifications are read."""
    for event in events:
        dossier_id = dossier_id_of(event)
        if dossier_id is None or event.actor_id is None:
            continue
        side = {ActorType.USER: "user", ActorType.AGENT: "agent"}.get(event.actor_type)
        if side is None:
            continue
        await Notification.filter(
            group_key=f"chat:{dossier_id}:{side}:{event.actor_id}", read_at=None
        ).update(read_at=event.created_at)


# --- reading and marking (the API's services) --------------------------------------------


def _owner_filter(viewer: Any) -> dict[str, Any]:
    if getattr(viewer, "agent", None) is not None:
        return {"agent_id": viewer.agent.id}
    if getattr(viewer, "profile", None) is not None:
        return {"user_id": viewer.profile.id}
    raise ValueError("a viewer is a client or an agent")


def visible_notifications(viewer: Any, *, unread_only: bool = False):
    """The viewer's own notifications, never anyone else's."""
    queryset = Notification.filter(**_owner_filter(viewer))
    if unread_only:
        queryset = queryset.filter(read_at=None)
    return queryset


async def unread_count(viewer: Any) -> int:
    # Read on every dashboard: the statement is written once, not rebuilt per request.
    ((column, owner),) = _owner_filter(viewer).items()
    sql = f'SELECT COUNT(*) FROM "notifications" WHERE "{column}" = $1 AND "read_at" IS NULL'
    return int(await fetch_value(sql, owner))


MAX_MARK_IDS = 100


async def mark_read(
    viewer: Any,
    *,
    ids: Sequence[uuid.UUID] | None = None,
    all_: bool = False,
    now: datetime | None = None,
) -> list[Notification]:
    """Mark the viewer's notifications read (these ids, or all); returns those marked.

    Ids that are not the viewer's (or do not exist) are ignored alike.
    """
    now = now or datetime.now(UTC)
    queryset = visible_notifications(viewer, unread_only=True)
    if not all_:
        queryset = queryset.filter(id__in=list(ids or []))
    marked = list(await queryset.order_by("-created_at", "-id"))
    if marked:
        await Notification.filter(
            id__in=[n.id for n in marked], read_at=None, **_owner_filter(viewer)
        ).update(read_at=now)
        for notification in marked:
            notification.read_at = now
    return marked


def event_log(
    *,
    entity_type: str | None = None,
    entity_id: uuid.UUID | None = None,
    event_types: Sequence[EventType] | None = None,
):
    """The audit log, filtered (the API pages it newest first)."""
    queryset = Event.all()
    if entity_type is not None:
        queryset = queryset.filter(entity_type=entity_type)
    if entity_id is not None:
        queryset = queryset.filter(entity_id=entity_id)
    if event_types:
        queryset = queryset.filter(event_type__in=list(event_types))
    return queryset
