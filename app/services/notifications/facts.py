"""The facts of a batch of events: what the rules and the templates read about them.

`load_facts` loads, with one query per table, the dossiers, orders, products, documents,
steps, people and messages a batch of events refers to (EVENT CONVENTIONS: an event's
entity, else ids in its payload). `Facts.recipients` resolves a rule's audience against
them; `build_context` turns them into the JSON-safe context a template renders.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tortoise.expressions import Q

from app.models import (
    Agent,
    Credential,
    Document,
    DocumentType,
    Dossier,
    DossierMember,
    Event,
    Message,
    Order,
    Product,
    Profile,
    Step,
    StepInstance,
)
from app.models.enums import ActorType, AgentRole, EventType
from app.services.notifications.rendering import APP_NAME, normal_locale
from app.services.notifications.rules import RULES, Audience, Recipient, Rule, usable_email
from app.settings import Settings

PREVIEW_CHARS = 280


def _profile_recipient(profile: Profile, email: str | None) -> Recipient:
    return Recipient(
        key=f"user:{profile.id}",
        name=profile.full_name,
        locale=normal_locale(profile.locale),
        email=usable_email(profile, email),  # not an address that hard-bounced (issue 20)
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
    # each dossier's active members' profiles (issue 18): they get its notifications too
    members: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)

    def active_agents(self) -> list[Agent]:
        return sorted((a for a in self.agents.values() if a.active), key=lambda a: a.email)

    def client(self, profile_id: uuid.UUID | None) -> Recipient | None:
        profile = self.profiles.get(profile_id) if profile_id else None
        if profile is None:
            return None
        return _profile_recipient(profile, self.emails.get(profile.id))

    def clients_of(self, event: Event) -> list[Recipient]:
        """The client, and for an event of a dossier its members as well (an order's
        payment events go to the client who pays only)."""
        client = self.client_of(event)
        out = [client] if client else []
        dossier_id = dossier_id_of(event)
        for profile_id in self.members.get(dossier_id, []) if dossier_id else []:
            member = self.client(profile_id)
            if member is not None:
                out.append(member)
        return out

    def client_of(self, event: Event) -> Recipient | None:
        dossier = self.dossier_of(event)
        if dossier is not None:
            return self.client(dossier.user_id)
        order = self.order_of(event)
        return self.client(order.user_id) if order else None

    def dossier_of(self, event: Event) -> Dossier | None:
        dossier_id = dossier_id_of(event)
        if dossier_id is None:
            order = self.order_of(event)
            dossier_id = order.dossier_id if order else None
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
            document_id = _document_id_of(event)
            document = self.documents.get(document_id) if document_id else None
            step_instance_id = document.step_instance_id if document else None
        if step_instance_id is None:
            dossier = self.dossier_of(event)
            step_instance_id = dossier.current_step_instance_id if dossier else None
        return self.step_instances.get(step_instance_id) if step_instance_id else None

    def assigned_agents(self, event: Event) -> list[Recipient]:
        step = self.step_instance_of(event)
        assignee = self.agents.get(step.assigned_to_id) if step and step.assigned_to_id else None
        if assignee is not None and assignee.active:
            return [_agent_recipient(assignee)]
        return [_agent_recipient(a) for a in self.active_agents()]

    def step_assignee(self, event: Event) -> list[Recipient]:
        step = self.step_instance_of(event)
        assignee = self.agents.get(step.assigned_to_id) if step and step.assigned_to_id else None
        return [_agent_recipient(assignee)] if assignee is not None and assignee.active else []

    def dossier_owner(self, event: Event) -> list[Recipient]:
        dossier = self.dossier_of(event)
        owner = self.agents.get(dossier.owner_id) if dossier and dossier.owner_id else None
        return [_agent_recipient(owner)] if owner is not None and owner.active else []

    def new_owner(self, event: Event) -> list[Recipient]:
        agent_id = _uuid((event.payload or {}).get("agentId"))
        owner = self.agents.get(agent_id) if agent_id else None
        return [_agent_recipient(owner)] if owner is not None and owner.active else []

    def actor_name(self, event: Event) -> str:
        if event.actor_type == ActorType.USER and event.actor_id in self.profiles:
            return self.profiles[event.actor_id].full_name
        if event.actor_type == ActorType.AGENT and event.actor_id in self.agents:
            return self.agents[event.actor_id].name
        return APP_NAME

    def recipients(self, rule: Rule, event: Event) -> list[Recipient]:
        if rule.audience == Audience.CLIENT:
            return self.clients_of(event)
        if rule.audience == Audience.ADDED_MEMBER:
            added = self.client(_uuid((event.payload or {}).get("profileId")))
            return [added] if added else []
        if rule.audience == Audience.ASSIGNED_AGENTS:
            return self.assigned_agents(event)
        if rule.audience == Audience.STEP_ASSIGNEE:
            return self.step_assignee(event)
        if rule.audience == Audience.DOSSIER_OWNER:
            return self.dossier_owner(event)
        if rule.audience == Audience.NEW_OWNER:
            return self.new_owner(event)
        if rule.audience == Audience.ADMINS:
            return [_agent_recipient(a) for a in self.active_agents() if a.role == AgentRole.ADMIN]
        if rule.audience in (Audience.PROSPECT, Audience.ACCOUNT_EMAIL):
            email = str((event.payload or {}).get("email") or "").strip().lower()
            if not email:
                return []
            name = str((event.payload or {}).get("name") or "")
            locale = "en" if (event.payload or {}).get("locale") == "en" else "fr"
            return [Recipient(key=f"email:{email}", name=name, locale=locale, email=email)]
        if rule.audience == Audience.OTHER_SIDE:
            if event.actor_type == ActorType.USER:
                return self.assigned_agents(event)
            return self.clients_of(event)
        return []


def _tells_clients(events: Sequence[Event]) -> bool:
    """Whether a rule of these events tells a dossier's client (and so its members): a
    client's own chat message tells agents only, and reads no member."""
    return any(
        r.audience == Audience.CLIENT
        or (r.audience == Audience.OTHER_SIDE and e.actor_type != ActorType.USER)
        for e in events
        for r in RULES.get(e.event_type, ())
    )


async def load_facts(events: Sequence[Event]) -> Facts:
    facts = Facts()
    dossier_ids = {d for e in events if (d := dossier_id_of(e))}
    order_ids = {e.entity_id for e in events if e.entity_type == "order"}
    order_ids |= {o for e in events if (o := _uuid((e.payload or {}).get("orderId")))}
    document_ids = {d for e in events if (d := _document_id_of(e))}
    message_ids = {
        m for e in events if e.event_type == EventType.MESSAGE_SENT and (m := _message_id_of(e))
    }
    needs_agents = any(
        r.audience in (Audience.ASSIGNED_AGENTS, Audience.ADMINS, Audience.OTHER_SIDE)
        for e in events
        for r in RULES.get(e.event_type, ())
    )

    if order_ids:
        facts.orders = {o.id: o for o in await Order.filter(id__in=order_ids)}
        dossier_ids |= {o.dossier_id for o in facts.orders.values() if o.dossier_id}
    if dossier_ids:
        facts.dossiers = {d.id: d for d in await Dossier.filter(id__in=dossier_ids)}
        if _tells_clients(events):
            for member in await DossierMember.filter(dossier_id__in=dossier_ids, removed_at=None):
                facts.members.setdefault(member.dossier_id, []).append(member.profile_id)
    if document_ids:
        facts.documents = {d.id: d for d in await Document.filter(id__in=document_ids)}
        type_ids = {d.document_type_id for d in facts.documents.values() if d.document_type_id}
        facts.document_types = {t.id: t for t in await DocumentType.filter(id__in=type_ids)}
    if message_ids:
        facts.messages = {m.id: m for m in await Message.filter(id__in=message_ids)}
    step_instance_ids = {s for e in events if (s := _uuid((e.payload or {}).get("stepInstanceId")))}
    step_instance_ids |= {e.entity_id for e in events if e.entity_type == "step_instance"}
    step_instance_ids |= {
        d.step_instance_id for d in facts.documents.values() if d.step_instance_id
    }
    step_instance_ids |= {
        d.current_step_instance_id for d in facts.dossiers.values() if d.current_step_instance_id
    }
    if step_instance_ids:
        facts.step_instances = {
            s.id: s for s in await StepInstance.filter(id__in=step_instance_ids)
        }
    step_ids = {s.step_id for s in facts.step_instances.values()}
    step_ids |= {s for e in events if (s := _uuid((e.payload or {}).get("stepId")))}
    if step_ids:
        facts.steps = {s.id: s for s in await Step.filter(id__in=step_ids)}
    product_ids = {d.product_id for d in facts.dossiers.values()}
    product_ids |= {o.product_id for o in facts.orders.values()}
    if product_ids:
        facts.products = {p.id: p for p in await Product.filter(id__in=product_ids)}
    profile_ids = {d.user_id for d in facts.dossiers.values()}
    profile_ids |= {p for members in facts.members.values() for p in members}
    profile_ids |= {
        p
        for e in events
        if e.event_type == EventType.DOSSIER_MEMBER_ADDED
        and (p := _uuid((e.payload or {}).get("profileId")))
    }
    profile_ids |= {o.user_id for o in facts.orders.values()}
    profile_ids |= {e.actor_id for e in events if e.actor_type == ActorType.USER and e.actor_id}
    if profile_ids:
        facts.profiles = {p.id: p for p in await Profile.filter(id__in=profile_ids)}
        facts.emails = {
            c.profile_id: c.email
            for c in await Credential.filter(profile_id__in=profile_ids)
            if c.profile_id
        }
    actor_agent_ids = {e.actor_id for e in events if e.actor_type == ActorType.AGENT and e.actor_id}
    assignee_ids = {s.assigned_to_id for s in facts.step_instances.values() if s.assigned_to_id}
    # the agents' desk (issue 19): a dossier's owner, the owner an event names
    owner_ids = {d.owner_id for d in facts.dossiers.values() if d.owner_id}
    owner_ids |= {
        a
        for e in events
        if e.event_type == EventType.DOSSIER_OWNER_ASSIGNED
        and (a := _uuid((e.payload or {}).get("agentId")))
    }
    wanted = actor_agent_ids | assignee_ids | owner_ids
    if needs_agents:
        query = (
            Agent.filter(Q(active=True) | Q(id__in=wanted)) if wanted else Agent.filter(active=True)
        )
        facts.agents = {a.id: a for a in await query}
    elif wanted:
        facts.agents = {a.id: a for a in await Agent.filter(id__in=wanted)}
    return facts


# --- context and links -------------------------------------------------------------------


PAYMENT_LINK_EVENTS = (EventType.PAYMENT_LINK_CREATED, EventType.PAYMENT_LINK_RESENT)
ACCOUNT_PATHS = {
    EventType.PASSWORD_RESET_REQUESTED: "/reset-password",
    EventType.PASSWORD_RESET: "/login",
    EventType.INVITATION_SENT: "/accept-invitation",
    EventType.DATA_EXPORT_READY: "/account",
}


def _app_url(settings: Settings, path: str) -> str:
    return settings.public_app_url.rstrip("/") + path


def action_url(event: Event, facts: Facts, settings: Settings) -> str:
    payload = event.payload or {}
    if event.event_type == EventType.PAYMENT_REMINDER_SENT and payload.get("url"):
        return str(payload["url"])
    if event.event_type in PAYMENT_LINK_EVENTS:  # never the secret link: delivery derives it
        return _app_url(settings, "/pay" if payload.get("existingClient") else "/register")
    if event.event_type in ACCOUNT_PATHS:
        return _app_url(settings, ACCOUNT_PATHS[event.event_type])  # never the secret link
    dossier = facts.dossier_of(event)
    if dossier is not None:
        if event.event_type == EventType.MESSAGE_SENT:
            return _app_url(settings, f"/dossiers/{dossier.id}/messages")
        document_id = _document_id_of(event)
        if event.event_type.startswith("DOCUMENT_") and document_id:
            return _app_url(settings, f"/dossiers/{dossier.id}/documents/{document_id}")
        return _app_url(settings, f"/dossiers/{dossier.id}")
    order = facts.order_of(event)
    if order is not None:
        return _app_url(settings, f"/orders/{order.id}")
    return _app_url(settings, "/")


def message_preview(event: Event, facts: Facts) -> str:
    payload = event.payload or {}
    message_id = _message_id_of(event)
    message = facts.messages.get(message_id) if message_id else None
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
    product_id = dossier.product_id if dossier else order.product_id if order else None
    product = facts.products.get(product_id) if product_id else None
    document_id = _document_id_of(event)
    document = facts.documents.get(document_id) if document_id else None
    document_type = (
        facts.document_types.get(document.document_type_id)
        if document and document.document_type_id
        else None
    )
    step_instance = facts.step_instance_of(event)
    step_id = _uuid(payload.get("stepId"))
    step = (facts.steps.get(step_id) if step_id else None) or (
        facts.steps.get(step_instance.step_id) if step_instance else None
    )
    client = facts.profiles.get(dossier.user_id) if dossier else None
    amount = payload.get("amount", order.amount if order else None)
    return {
        "name": recipient.name,
        "action_url": action_url(event, facts, settings),
        "product": str(payload.get("productName") or (product.name if product else "")),
        "dossier_ref": dossier.reference if dossier else "",
        "reference": dossier.reference if dossier else "",  # the case number (issue 19)
        "client": client.full_name if client else "",
        "actor": facts.actor_name(event),
        "step": step.label if step else "",
        "document": document_type.label
        if document_type
        else str(payload.get("document") or (document.label if document else "") or ""),
        "reason": str(payload.get("reason") or ""),
        "amount": amount,
        "currency": str(payload.get("currency") or (order.currency if order else "eur")),
        "expires_at": str(payload.get("expiresAt") or ""),
        "preview": message_preview(event, facts)
        if event.event_type == EventType.MESSAGE_SENT
        else "",
        "count": 1,
        # due dates and chasing
        "due_at": str(payload.get("dueAt") or ""),
        "previous_due_at": str(payload.get("previousDueAt") or ""),
        "overdue": bool(payload.get("overdue")),
        "overdue_hours": int(payload.get("overdueHours") or 0),
        "missing": _missing_documents(payload),
        # documents that expire
        "expires_on": str(payload.get("expiresOn") or ""),
        "days_left": int(payload.get("daysLeft") or 0),
        # retention: the day the dossier's files are deleted, and how many
        "purge_on": str(payload.get("purgeOn") or ""),
        "file_count": int(payload.get("fileCount") or 0),
        # account e-mails: the token's id; delivery derives the link and code from it
        "account_token_id": str(payload.get("accountTokenId") or ""),
        "purpose": str(payload.get("purpose") or ""),
        # payment links: the link's id; delivery derives the link from it
        "payment_link_id": str(payload.get("paymentLinkId") or "")
        if event.event_type in PAYMENT_LINK_EVENTS
        else "",
        "existing_client": bool(payload.get("existingClient")),
        "role": str(payload.get("role") or ""),
        # data exports: the export's id; delivery derives the signed link from it
        "data_export_id": str(payload.get("dataExportId") or "")
        if event.event_type == EventType.DATA_EXPORT_READY
        else "",
        "code": "",
        "email": recipient.email or "",
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
