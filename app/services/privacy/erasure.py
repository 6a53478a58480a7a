"""Right to erasure (GDPR art. 17): `erase_client`, admins only.

In ONE transaction, every row about the client keeps its place but loses its personal
data: the profile (name, phone; the locale stays), the credential (a unique undeliverable
e-mail, no password, no second factor, no pending reset or invitation), their sessions
(ended at once: every request reads its session), the messages they wrote (replaced), the
notifications and deliveries to them (recipient, subject, body), payment links sent to
them, document and shared-file names, and anything else that quotes them (agents' messages,
notes, reasons, event payloads, agents' notifications, Stripe payloads: their name, e-mail,
phone and messages are cut out of the text). Orders, refunds and payments stay for the
legal retention of accounting records, without personal fields. One CLIENT_ERASED event
says who did it and why, without personal data. The files (document versions, shared files,
export archives) are deleted after commit through app.services.privacy.files, which
retries what the storage refuses: a failure never leaves personal data in a row.

Refused while a dossier of theirs runs unless `force` (with a reason), for a staff
account (an agent's id), and answered as done for a client already erased (nothing changes).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app import clock
from app.domain.viewer import Viewer
from app.errors import DomainError, Forbidden, NotFound
from app.models import (
    AccountSession,
    AccountToken,
    Agent,
    ChannelConsent,
    DataExport,
    DeferredStripeEvent,
    Document,
    DocumentReview,
    Dossier,
    DossierNote,
    DossierStatusHistory,
    Event,
    InboundMessage,
    Message,
    Notification,
    NotificationDelivery,
    Order,
    PaymentLink,
    Profile,
    Refund,
    SharedFile,
    StepInstance,
)
from app.models.enums import ACTIVE_DOSSIER_STATUSES, ActorType, EventType, UserStatus
from app.providers.storage import Storage
from app.security import UNUSABLE_PASSWORD
from app.services import events, outbox, search
from app.services.codes import PrivacyErrorCode as Code
from app.services.privacy import files
from app.services.privacy.scope import ENTITY_TYPES, Scope, scope_of
from app.services.sessions import revoke_all
from app.services.validation import check_text

logger = logging.getLogger("app.privacy.erasure")

ERASED = "[erased]"
ERASED_NAME = "Erased client"
ERASED_MESSAGE = "[message erased]"
ERASED_DOMAIN = "erased.invalid"  # RFC 2606: never delivered


@dataclass
class Erased:
    profile: Profile
    already: bool
    files: int = 0  # stored files scheduled for deletion


def tombstone_email(profile_id: uuid.UUID) -> str:
    return f"erased-{profile_id.hex}@{ERASED_DOMAIN}"


class Scrubber:
    """Cuts a client's personal strings (name, e-mail, phone, what they wrote, the names of
    their files) out of text and JSON, case-insensitively; the rest of the text stays."""

    MIN_NEEDLE = 4  # shorter strings would cut common words

    def __init__(self, needles: list[str]) -> None:
        words = sorted(
            {n.strip() for n in needles if n and len(n.strip()) >= self.MIN_NEEDLE},
            key=len,
            reverse=True,
        )
        self.pattern = (
            re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None
        )

    def text(self, value: str | None) -> str | None:
        if value is None or self.pattern is None:
            return value
        return self.pattern.sub(ERASED, value)

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        return value

    def changes(self, row: Any, text_fields: tuple[str, ...], json_fields: tuple[str, ...] = ()):
        """The fields of `row` the scrubber changed (set on the row)."""
        changed = []
        for name in text_fields:
            old = getattr(row, name)
            new = self.text(old)
            if new != old:
                setattr(row, name, new)
                changed.append(name)
        for name in json_fields:
            old = getattr(row, name)
            new = self.json(old)
            if new != old:
                setattr(row, name, new)
                changed.append(name)
        return changed


async def _scrub_rows(
    rows: list[Any], scrub: Scrubber, text: tuple[str, ...], json: tuple[str, ...] = ()
) -> None:
    for row in rows:
        changed = scrub.changes(row, text, json)
        if changed:
            await row.save(update_fields=changed)


def _check_reason(reason: str) -> str:
    value = check_text(reason or "", "reason", max_length=1000, required=False)
    if not value:
        raise DomainError(Code.REQUIRED, "Give the reason for the erasure.", "reason")
    return value


async def erase_client(
    actor: Viewer,
    profile_id: uuid.UUID,
    *,
    reason: str,
    force: bool = False,
    storage: Storage | None = None,
) -> Erased:
    if not actor.is_admin:
        raise Forbidden("Only administrators can do this.")
    async with outbox.collecting(), in_transaction():
        profile = await Profile.filter(id=profile_id).select_for_update().first()
        if profile is None:
            if await Agent.filter(id=profile_id).exists():
                raise DomainError(
                    Code.STAFF_ACCOUNT,
                    "This is a staff account, not a client: deactivate it instead.",
                    "profileId",
                )
            raise NotFound("No such client.")
        if profile.erased_at is not None:
            return Erased(profile, already=True)
        reason = _check_reason(reason)
        running = await Dossier.filter(
            user_id=profile.id, status__in=list(ACTIVE_DOSSIER_STATUSES)
        ).count()
        if running and not force:
            raise DomainError(
                Code.DOSSIER_RUNNING,
                f"{running} dossier(s) of this client still run: cancel or complete them, "
                "or erase with force and a reason.",
                "force",
            )
        scope = await scope_of(profile)
        keys, scrub = await _erase(scope, actor)
        scheduled = await files.schedule(keys, "client-erased")
        await events.record(
            "profile",
            profile.id,
            EventType.CLIENT_ERASED,
            actor=actor,
            payload={
                "reason": scrub.text(reason),  # an admin may have named them
                "forced": bool(force and running),
                "runningDossiers": running,
                "files": len(keys),
            },
        )
    await files.delete_now(scheduled, storage)
    return Erased(await Profile.get(id=profile.id), already=False, files=len(keys))


async def _erase(scope: Scope, actor: Viewer) -> tuple[list[str], Scrubber]:
    """Every row of the scope tombstoned; the storage keys of the files to delete."""
    profile, credential = scope.profile, scope.credential
    pid = profile.id
    message_rows = (
        list(await Message.filter(dossier_id__in=scope.dossier_ids)) if scope.dossier_ids else []
    )
    own_messages = [
        m for m in message_rows if m.sender_type == ActorType.USER and m.sender_id == pid
    ]
    needles = [
        profile.full_name,
        profile.phone or "",
        scope.email or "",
        *(m.content for m in own_messages),
        *(v.file_name for v in scope.versions),
    ]
    scrub = Scrubber(needles)
    addresses = [a for a in (scope.email, profile.phone) if a]  # before they are replaced
    phone = profile.phone
    now = clock.now()
    keys: list[str] = [v.file_url for v in scope.versions]

    # the account: no way in, sessions ended now
    if credential is not None:
        await revoke_all(credential, "client-erased", actor=actor)
        await AccountSession.filter(credential_id=credential.id).update(
            ip_address=None, user_agent=None
        )
        await AccountToken.filter(credential_id=credential.id).delete()
        credential.email = tombstone_email(pid)
        credential.password_hash = UNUSABLE_PASSWORD
        credential.password_changed_at = now
        credential.totp_secret = None
        credential.two_factor_enabled_at = None
        credential.totp_last_step = None
        credential.recovery_code_hashes = None
        await credential.save()
    profile.full_name, profile.phone = ERASED_NAME, None  # type: ignore[assignment]
    profile.stripe_customer_id = None
    # a bounced address and its DSN's diagnostic (issue 20) name the client
    profile.email_bounced_address = profile.email_bounce_reason = None  # type: ignore[assignment]
    profile.status, profile.erased_at = UserStatus.SUSPENDED, now
    await profile.save()

    # messages: theirs replaced, the others' cut
    for message in message_rows:
        if message in own_messages:
            message.content, message.attachments = ERASED_MESSAGE, []
            await message.save(update_fields=["content", "attachments"])
    await _scrub_rows(
        [m for m in message_rows if m not in own_messages], scrub, ("content",), ("attachments",)
    )

    # documents and their files
    if scope.versions:
        for version in scope.versions:
            extension = version.file_name.rpartition(".")[2] if "." in version.file_name else ""
            version.file_name = f"erased.{extension}" if extension.isalnum() else "erased"
            version.awaiting_review_since = None
            # its file goes after commit: the version answers as purged (410) from now on
            version.purged_at = version.purged_at or clock.now()
            await version.save(update_fields=["file_name", "awaiting_review_since", "purged_at"])
        version_ids = [v.id for v in scope.versions]
        await _scrub_rows(
            list(await DocumentReview.filter(document_version_id__in=version_ids)),
            scrub,
            ("reason", "notes"),
        )
    if scope.document_ids:
        await _scrub_rows(
            list(await Document.filter(id__in=scope.document_ids)),
            scrub,
            ("label", "note", "waived_reason"),
        )
    if scope.own_dossier_ids:
        own = scope.own_dossier_ids
        shared = list(await SharedFile.filter(dossier_id__in=own))
        keys += [s.storage_key for s in shared]
        for row in shared:
            row.file_name, row.note = "erased", scrub.text(row.note)  # type: ignore[assignment]
            await row.save(update_fields=["file_name", "note"])
        await _scrub_rows(list(await Dossier.filter(id__in=own)), scrub, (), ("metadata",))
        await _scrub_rows(
            list(await DossierStatusHistory.filter(dossier_id__in=own)),
            scrub,
            ("reason",),
            ("metadata",),
        )
        await _scrub_rows(
            list(await StepInstance.filter(dossier_id__in=own)), scrub, (), ("metadata",)
        )
    if scope.dossier_ids:
        # the firm's internal notes on their dossiers: what quotes them cut
        notes = await DossierNote.filter(dossier_id__in=scope.dossier_ids)
        await _scrub_rows(list(notes), scrub, ("body",))

    # what they wrote us by SMS or WhatsApp (app.services.phone), and their consents' traces
    inbound = InboundMessage.filter(profile_id=pid)
    if phone:
        inbound = InboundMessage.filter(Q(profile_id=pid) | Q(from_number=phone))
    await inbound.update(from_number=ERASED, body=ERASED_MESSAGE, media=[])
    await ChannelConsent.filter(profile_id=pid).update(opted_in_by=None)

    # export archives
    exports = list(await DataExport.filter(profile_id=pid, storage_key__not_isnull=True))
    keys += [e.storage_key for e in exports if e.storage_key]
    await DataExport.filter(profile_id=pid).update(storage_key=None, last_error=None)

    # money: kept, without personal fields
    if scope.order_ids:
        await _scrub_rows(
            list(await Order.filter(id__in=scope.order_ids)),
            scrub,
            ("payment_reference", "note"),
            ("metadata",),
        )
        await _scrub_rows(list(await Refund.filter(order_id__in=scope.order_ids)), scrub, ("note",))
        await _scrub_rows(
            list(await DeferredStripeEvent.filter(order_id__in=scope.order_ids)),
            scrub,
            (),
            ("payload",),
        )
    for link in (
        await PaymentLink.filter(id__in=scope.payment_link_ids) if scope.payment_link_ids else []
    ):
        link.prospect_email, link.prospect_name = tombstone_email(pid), ERASED
        await link.save(update_fields=["prospect_email", "prospect_name"])

    # the log: what is about them, or what they did, cut
    about = Event.filter(entity_type__in=ENTITY_TYPES, entity_id__in=scope.entity_ids())
    logged = {e.id: e for e in [*await about, *await Event.filter(actor_id=pid)]}
    await _scrub_rows(list(logged.values()), scrub, (), ("payload",))

    # notifications: theirs emptied, the others' (agents told about them) cut
    await _erase_notifications(scope, scrub, list(logged), addresses)

    await search.index_clients([pid])  # the embedded search index: the tombstone only
    return keys, scrub


async def _erase_notifications(
    scope: Scope, scrub: Scrubber, event_ids: list[uuid.UUID], addresses: list[str]
) -> None:
    pid = scope.profile.id
    own_ids = set(await Notification.filter(user_id=pid).values_list("id", flat=True))
    if addresses:
        own_ids |= set(
            await NotificationDelivery.filter(recipient__in=addresses).values_list(
                "notification_id", flat=True
            )
        )
    if own_ids:
        await Notification.filter(id__in=list(own_ids)).update(
            title=ERASED, message=ERASED, payload={}, action_url=None, group_key=None
        )
        await NotificationDelivery.filter(notification_id__in=list(own_ids)).update(
            recipient=ERASED, provider_response=None, last_error=None, failover_reason=None
        )
    related: dict[uuid.UUID, Notification] = {}
    if scope.dossier_ids:
        related |= {n.id: n for n in await Notification.filter(dossier_id__in=scope.dossier_ids)}
    if event_ids:
        related |= {n.id: n for n in await Notification.filter(event_id__in=event_ids)}
    for own in own_ids:
        related.pop(uuid.UUID(str(own)), None)
    await _scrub_rows(
        list(related.values()), scrub, ("title", "message", "action_url"), ("payload",)
    )
    if related:
        await _scrub_rows(
            list(await NotificationDelivery.filter(notification_id__in=list(related))),
            scrub,
            ("last_error",),
            ("provider_response",),
        )


__all__ = ["Erased", "Scrubber", "erase_client", "tombstone_email"]
