"""Who is told of which event, on which delivery channels.

`RULES` maps an event type to its rules: an audience (resolved against the batch's facts
by `Facts.recipients`), a template and the channels it goes out on. `channels_for` turns a
rule's channels into (channel, address) pairs for one recipient; `is_actor` keeps the
author of an event from being told of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from app.models import Event, Profile
from app.models.enums import ActorType, EventType, NotificationChannel
from app.settings import Settings


class Audience(StrEnum):
    CLIENT = "CLIENT"  # the client of the dossier or order
    ASSIGNED_AGENTS = "ASSIGNED_AGENTS"  # the step's assignee, or every active agent
    STEP_ASSIGNEE = "STEP_ASSIGNEE"  # the step's assignee only (nobody when none)
    ADMINS = "ADMINS"  # every active administrator
    PROSPECT = "PROSPECT"  # payload["email"]: someone without an account yet
    # payload["email"] of an account: its security e-mails (reset links, invitations),
    # by e-mail only, whatever the account's other channels
    ACCOUNT_EMAIL = "ACCOUNT_EMAIL"
    OTHER_SIDE = "OTHER_SIDE"  # chat: a client's message -> agents, an agent's -> the client
    ADDED_MEMBER = "ADDED_MEMBER"  # payload["profileId"]: the person just added to a dossier
    # the agents' desk (issue 19): staff only, never a client or member
    DOSSIER_OWNER = "DOSSIER_OWNER"  # the dossier's owner agent, if active
    NEW_OWNER = "NEW_OWNER"  # payload["agentId"]: the agent just made the dossier's owner


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
    E.PAYMENT_LINK_RESENT: (Rule(A.PROSPECT, "payment_link", (V.EMAIL,)),),
    # Accounts (app/services/recovery.py): the link and code are derived when the e-mail is
    # written (app.services.delivery.outbound), never stored.
    E.PASSWORD_RESET_REQUESTED: (Rule(A.ACCOUNT_EMAIL, "password_reset", (V.EMAIL,)),),
    E.PASSWORD_RESET: (Rule(A.ACCOUNT_EMAIL, "password_reset_done", (V.EMAIL,)),),
    E.INVITATION_SENT: (Rule(A.ACCOUNT_EMAIL, "invitation", (V.EMAIL,)),),
    # Right of access (app/services/privacy/exports.py): one event per person told (the
    # client, the admin who asked); the signed link is derived when the e-mail is written.
    E.DATA_EXPORT_READY: (Rule(A.ACCOUNT_EMAIL, "data_export_ready", (V.EMAIL,)),),
    E.PAYMENT_SUCCEEDED: (Rule(A.CLIENT, "payment_succeeded", (V.IN_APP, V.EMAIL)),),
    E.PAYMENT_FAILED: (Rule(A.CLIENT, "payment_failed", (V.IN_APP, V.EMAIL)),),
    # Refunds (app/services/payments/refunds.py): "amount" is what this refund gave back;
    # a full one also cancels the dossier, which DOSSIER_CANCELLED tells.
    E.ORDER_PARTIALLY_REFUNDED: (Rule(A.CLIENT, "order_partially_refunded", (V.IN_APP, V.EMAIL)),),
    E.ORDER_REFUNDED: (Rule(A.CLIENT, "order_refunded", (V.IN_APP, V.EMAIL)),),
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
    # Issue 18: documents asked for on the fly or waived, files the firm shares.
    E.DOCUMENT_REQUESTED: (Rule(A.CLIENT, "document_requested", (V.IN_APP, V.EMAIL)),),
    E.DOCUMENT_WAIVED: (Rule(A.CLIENT, "document_waived", (V.IN_APP, V.EMAIL)),),
    E.FILE_SHARED: (Rule(A.CLIENT, "file_shared", (V.IN_APP, V.EMAIL)),),
    E.MESSAGE_SENT: (
        Rule(A.OTHER_SIDE, "message_received", (V.IN_APP, V.EMAIL), Grouping.CHAT_BURST),
    ),
    E.DOSSIER_COMPLETED: (Rule(A.CLIENT, "dossier_completed", (V.IN_APP, V.EMAIL, V.PHONE)),),
    E.DOSSIER_CANCELLED: (Rule(A.CLIENT, "dossier_cancelled", (V.IN_APP, V.EMAIL)),),
    # Chasing (app/services/chasing.py): one reminder lists every missing document.
    E.DOCUMENT_REMINDER_SENT: (Rule(A.CLIENT, "document_reminder", (V.IN_APP, V.EMAIL, V.PHONE)),),
    E.STEP_DUE_DATE_CHANGED: (Rule(A.CLIENT, "step_due_date_changed", (V.IN_APP, V.EMAIL)),),
    E.STEP_OVERDUE: (Rule(A.ASSIGNED_AGENTS, "step_overdue", (V.IN_APP, V.EMAIL)),),
    E.DOSSIER_MEMBER_ADDED: (Rule(A.ADDED_MEMBER, "dossier_member_added", (V.IN_APP, V.EMAIL)),),
    # Documents that expire (app/services/document_expiry.py): once per margin. The renewal
    # offered with the first (DOSSIER_RENEWAL_OFFERED) is told by its payment link's e-mail.
    E.DOCUMENT_EXPIRING: (
        Rule(A.CLIENT, "document_expiring", (V.IN_APP, V.EMAIL)),
        Rule(A.STEP_ASSIGNEE, "document_expiring_agent", (V.IN_APP, V.EMAIL)),
    ),
    # Retention (app/services/retention.py): told once, DOCUMENT_RETENTION_NOTICE_DAYS ahead.
    E.DOSSIER_RETENTION_NOTICE: (Rule(A.CLIENT, "document_retention_notice", (V.IN_APP, V.EMAIL)),),
    # The agents' desk (issue 19): staff audiences only. A note's notice names who wrote
    # it and on which dossier, never its text (a note lives in dossier_notes only).
    E.DOSSIER_NOTE_ADDED: (Rule(A.DOSSIER_OWNER, "dossier_note_added", (V.IN_APP,)),),
    E.DOSSIER_OWNER_ASSIGNED: (Rule(A.NEW_OWNER, "dossier_owner_assigned", (V.IN_APP, V.EMAIL)),),
}
# Audiences that reach staff only: the rules of STAFF_ONLY_EVENTS use nothing else.
STAFF_AUDIENCES = frozenset(
    {A.ASSIGNED_AGENTS, A.STEP_ASSIGNEE, A.ADMINS, A.DOSSIER_OWNER, A.NEW_OWNER}
)
STAFF_ONLY_EVENTS = frozenset(
    {
        E.DOSSIER_NOTE_ADDED,
        E.DOSSIER_NOTE_EDITED,
        E.DOSSIER_NOTE_DELETED,
        E.DOSSIER_TAGGED,
        E.DOSSIER_UNTAGGED,
        E.DOSSIER_OWNER_ASSIGNED,
    }
)
TEMPLATE_CODES = sorted({rule.template for rules in RULES.values() for rule in rules})


@dataclass(frozen=True)
class Recipient:
    key: str  # "user:<id>", "agent:<id>" or "email:<address>"
    name: str
    locale: str
    email: str | None = None
    phone: str | None = None
    profile_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None


def usable_email(profile: Profile, login_email: str | None) -> str | None:
    """The client's e-mail address unless a hard bounce flagged this very address
    (app.services.bounces): a changed address is used again."""
    if not login_email:
        return None
    flagged = profile.email_bounced_address
    if flagged and flagged.strip().lower() == login_email.strip().lower():
        return None
    return login_email


def channels_for(
    rule: Rule, event: Event, recipient: Recipient, settings: Settings
) -> list[tuple[NotificationChannel, str]]:
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


def is_actor(event: Event, recipient: Recipient) -> bool:
    """Did the recipient cause the event? Nobody is told of what they did themselves."""
    if event.actor_id is None:
        return False
    if event.actor_type == ActorType.USER:
        return recipient.profile_id == event.actor_id
    if event.actor_type == ActorType.AGENT:
        return recipient.agent_id == event.actor_id
    return False
