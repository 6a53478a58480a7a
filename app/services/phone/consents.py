"""Consent per client and phone channel, and when they last wrote there.

- WhatsApp needs an opt-in before any message (Meta's policy): the client in the app
  (`recordWhatsappOptIn`), an agent recording a verbal consent (the same mutation with
  `clientId`), or the client writing to us on WhatsApp first.
- SMS goes out as before (the client gave the number to be told), until they opt out.
- A whole message that is an opt-out keyword (STOP, ARRET, ARRÊT, UNSUBSCRIBE… in any case,
  with or without accents) opts that channel out: nothing more is sent there until the
  client sends START (or, for WhatsApp, opts in again in the app).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError, Forbidden, NotFound
from app.models import ChannelConsent, Profile
from app.models.enums import ConsentSource, ConsentStatus, NotificationChannel
from app.services.codes import PhoneErrorCode as Code
from app.settings import Settings

PHONE_CHANNELS = (NotificationChannel.SMS, NotificationChannel.WHATSAPP)
WHATSAPP_WINDOW = timedelta(hours=24)  # WhatsApp's customer-service window (fixed by Meta)

# Whole-message keywords, compared without case, accents, spaces or punctuation.
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "ARRET", "ARRETER", "UNSUBSCRIBE", "DESINSCRIRE", "CANCEL", "END", "QUIT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "DEMARRER"})
_NOT_LETTERS = re.compile(r"[^A-Z]")


def keyword(text: str) -> str:
    """The message folded for keyword matching: 'Arrêt !' -> 'ARRET'."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_LETTERS.sub("", plain.upper())


def is_opt_out(text: str) -> bool:
    return keyword(text) in OPT_OUT_KEYWORDS


def is_opt_in(text: str) -> bool:
    return keyword(text) in OPT_IN_KEYWORDS


def allows(consent: ChannelConsent | None, channel: NotificationChannel) -> str | None:
    """Why nothing may be sent to this client on `channel` (a reason code), or None."""
    status = consent.status if consent is not None else None
    if status == ConsentStatus.OPTED_OUT:
        return f"{channel.value}_OPTED_OUT"
    if channel == NotificationChannel.WHATSAPP and status != ConsentStatus.OPTED_IN:
        return "NO_WHATSAPP_OPT_IN"
    return None


def window_open(
    consent: ChannelConsent | None, channel: NotificationChannel, now: datetime, settings: Settings
) -> bool:
    """Did the client write to us on `channel` recently enough to be answered in free text
    (WhatsApp: 24 hours; SMS: `sms_reply_window_hours`)?"""
    if consent is None or consent.last_inbound_at is None:
        return False
    if channel == NotificationChannel.WHATSAPP:
        window = WHATSAPP_WINDOW
    else:
        window = timedelta(hours=settings.sms_reply_window_hours)
    return now - consent.last_inbound_at < window


async def consents_of(
    profile_ids: Iterable[uuid.UUID],
) -> dict[tuple[uuid.UUID, NotificationChannel], ChannelConsent]:
    """Every phone-channel state of these clients, in one query."""
    ids = list({i for i in profile_ids if i})
    if not ids:
        return {}
    rows = await ChannelConsent.filter(profile_id__in=ids)
    return {(row.profile_id, NotificationChannel(row.channel)): row for row in rows}


async def _locked(profile_id: uuid.UUID, channel: NotificationChannel) -> ChannelConsent:
    """The (profile, channel) row, created if missing, locked for the caller's transaction."""
    for _ in range(2):
        row = (
            await ChannelConsent.filter(profile_id=profile_id, channel=channel)
            .select_for_update()
            .first()
        )
        if row is not None:
            return row
        try:
            async with in_transaction():  # a savepoint: a lost race leaves the outer one usable
                return await ChannelConsent.create(profile_id=profile_id, channel=channel)
        except IntegrityError:
            continue  # created meanwhile by someone else: lock theirs
    raise RuntimeError("channel consent row could not be created")  # pragma: no cover


async def opt_in(
    profile_id: uuid.UUID,
    channel: NotificationChannel,
    via: ConsentSource,
    *,
    agent_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> ChannelConsent:
    stamp = now or datetime.now(UTC)
    async with in_transaction():
        row = await _locked(profile_id, channel)
        row.status = ConsentStatus.OPTED_IN
        row.opted_in_at, row.opted_in_via, row.opted_in_by = stamp, via, agent_id
        await row.save(update_fields=["status", "opted_in_at", "opted_in_via", "opted_in_by"])
    return row


async def opt_out(
    profile_id: uuid.UUID,
    channel: NotificationChannel,
    via: ConsentSource,
    *,
    now: datetime | None = None,
) -> ChannelConsent:
    stamp = now or datetime.now(UTC)
    async with in_transaction():
        row = await _locked(profile_id, channel)
        row.status = ConsentStatus.OPTED_OUT
        row.opted_out_at, row.opted_out_via = stamp, via
        await row.save(update_fields=["status", "opted_out_at", "opted_out_via"])
    return row


async def wrote_to_us(
    profile_id: uuid.UUID, channel: NotificationChannel, *, now: datetime | None = None
) -> ChannelConsent:
    """The client wrote on `channel`: its window opens; a first WhatsApp message is an
    opt-in (never one that overrides a STOP: only START or the app does that)."""
    stamp = now or datetime.now(UTC)
    async with in_transaction():
        row = await _locked(profile_id, channel)
        row.last_inbound_at = stamp
        fields = ["last_inbound_at"]
        if channel == NotificationChannel.WHATSAPP and row.status is None:
            row.status = ConsentStatus.OPTED_IN
            row.opted_in_at, row.opted_in_via = stamp, ConsentSource.INBOUND
            fields += ["status", "opted_in_at", "opted_in_via"]
        await row.save(update_fields=fields)
    return row


async def record_whatsapp_opt_in(
    viewer: Viewer, client_id: uuid.UUID | None, *, now: datetime | None = None
) -> ChannelConsent:
    """`recordWhatsappOptIn`: a client for themselves (in the app), an agent for a client
    who said yes (a verbal consent, recorded with the agent's id)."""
    if viewer.profile is not None:
        if client_id is not None and client_id != viewer.profile.id:
            raise NotFound("No such client.")
        profile, via, agent_id = viewer.profile, ConsentSource.APP, None
    elif viewer.agent is not None:
        if client_id is None:
            raise DomainError(Code.REQUIRED, "Say which client consented.", "clientId")
        found = await Profile.filter(id=client_id, erased_at=None).first()
        if found is None:
            raise NotFound("No such client.")
        profile, via, agent_id = found, ConsentSource.AGENT, viewer.agent.id
    else:  # pragma: no cover - a viewer is a client or an agent
        raise Forbidden()
    if not profile.phone:
        raise DomainError(
            Code.NO_PHONE, "A WhatsApp opt-in needs a phone number on the profile.", "clientId"
        )
    return await opt_in(profile.id, NotificationChannel.WHATSAPP, via, agent_id=agent_id, now=now)


async def consent_rows(profile_id: uuid.UUID) -> list[ChannelConsent]:
    return list(await ChannelConsent.filter(profile_id=profile_id).order_by("channel"))
