"""An SMS or WhatsApp message Twilio brought us (POST /webhooks/twilio/inbound, verified).

- Once per Twilio `MessageSid`: the `inbound_messages` row is written in the transaction
  of its effects, so a retried (or concurrent) webhook finds it and does nothing again.
- The sender is the one client whose phone (stored E.164) is the `From` number, normalised
  to E.164. No client, or several sharing the number: the message is kept for admins
  (`inboundMessages`), never attached to a dossier.
- A whole-message keyword changes the channel's consent (STOP, ARRET…: opted out; START:
  opted in) and posts nothing.
- Anything else is posted in the chat of the client's current dossier, as the client,
  marked with its channel; its media (`MediaUrlN`, `MediaContentTypeN`) are fetched from
  Twilio and stored as the dossier's files with the checks of any upload (an extension
  the platform accepts, magic bytes that agree, the size cap), attached to the message. A
  file refused is named in the message instead. The message is then pushed live and
  notified like any message a client writes in the app.
- The current dossier, a rule kept simple: the client's running dossier (neither
  completed nor cancelled) with the latest activity (its latest message, else its last
  change); with none running, their latest dossier; no dossier at all: kept for admins.
"""

from __future__ import annotations

import io
import logging
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import phonenumbers
from tortoise.exceptions import IntegrityError
from tortoise.functions import Max
from tortoise.transactions import in_transaction

from app.domain.viewer import Viewer
from app.errors import DomainError
from app.models import Credential, Dossier, InboundMessage, Message, Profile, SharedFile
from app.models.enums import ConsentSource, DossierStatus, InboundOutcome, NotificationChannel
from app.providers.storage import Storage
from app.providers.twilio_media import MediaRefused, fetch_media
from app.services import messages
from app.services.documents import StoredFile, UploadedFile, store_upload
from app.services.phone import consents
from app.services.shared_files import SHARED_SPEC
from app.settings import Settings, get_settings

logger = logging.getLogger("app.phone.inbound")

MAX_MEDIA = 10  # Twilio sends at most 10 media per message
ENDED = (DossierStatus.COMPLETED, DossierStatus.CANCELLED)
EXTENSION_OF_TYPE = {
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/heic": "heic",
    "image/heif": "heic",
    "image/tiff": "tif",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.oasis.opendocument.text": "odt",
}


@dataclass
class Received:
    outcome: InboundOutcome | None  # None: nothing done (a duplicate, or no MessageSid)
    inbound: InboundMessage | None = None
    message: Message | None = None
    duplicate: bool = False


def e164(raw: str) -> str:
    """`whatsapp:+33 6 12…` / `+33612…` -> `+33612…`; as given when it does not parse."""
    number = raw.split(":", 1)[1] if raw.lower().startswith("whatsapp:") else raw
    number = number.strip()
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _clean(text: str) -> str:
    """What a chat message may hold: line breaks kept, other control and format
    characters (which the chat refuses) dropped."""
    text = unicodedata.normalize("NFC", text or "").replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        ch for ch in text if ch in "\n" or not unicodedata.category(ch).startswith("C")
    ).strip()


async def current_dossier(profile_id: uuid.UUID) -> Dossier | None:
    running = list(
        await Dossier.filter(user_id=profile_id).exclude(status__in=ENDED).order_by("-updated_at")
    )
    if len(running) > 1:
        last = {
            str(row["dossier_id"]): row["last"]
            for row in await Message.filter(dossier_id__in=[d.id for d in running])
            .annotate(last=Max("created_at"))
            .group_by("dossier_id")
            .values("dossier_id", "last")
        }

        def activity(dossier: Dossier) -> datetime:
            latest = last.get(str(dossier.id))
            if isinstance(latest, str):
                latest = datetime.fromisoformat(latest)
            return max(x for x in (dossier.updated_at, latest) if x is not None)

        return max(running, key=activity)
    if running:
        return running[0]
    return await Dossier.filter(user_id=profile_id).order_by("-updated_at").first()


async def _client_viewer(profile: Profile) -> Viewer:
    """The client as the author of their message (their login, when they have one)."""
    credential = await Credential.filter(profile_id=profile.id).first()
    return Viewer(
        credential_id=credential.id if credential else profile.id,
        email=credential.email if credential else "",
        profile=profile,
    )


async def _keep(
    sid: str,
    channel: NotificationChannel,
    number: str,
    body: str,
    media: list[dict],
    outcome: InboundOutcome,
    profile: Profile | None = None,
    dossier: Dossier | None = None,
) -> InboundMessage:
    return await InboundMessage.create(
        message_sid=sid,
        channel=channel,
        from_number=number,
        body=body,
        media=media,
        outcome=outcome,
        profile_id=profile.id if profile else None,
        dossier_id=dossier.id if dossier else None,
    )


async def _store_media(
    given: list[tuple[str, str]],
    channel: NotificationChannel,
    dossier: Dossier,
    storage: Storage,
    settings: Settings,
) -> tuple[list[StoredFile], list[dict]]:
    """Each medium fetched and stored as an upload is; the others described with why."""
    stored: list[StoredFile] = []
    described: list[dict] = []
    limit = SHARED_SPEC.max_file_size_mb * 1024 * 1024
    for n, (url, declared) in enumerate(given, 1):
        entry: dict = {"contentType": declared}
        extension = EXTENSION_OF_TYPE.get(declared.lower())
        try:
            if len(stored) >= settings.message_max_attachments:
                raise MediaRefused(f"at most {settings.message_max_attachments} per message")
            if extension is None:
                raise MediaRefused(f"files of type {declared or 'unknown'} are not accepted")
            media = await fetch_media(url, limit=limit, settings=settings)
            buffer = io.BytesIO(media.content)

            async def read(size: int, buffer: io.BytesIO = buffer) -> bytes:
                return buffer.read(size)

            name = f"{channel.value.lower()}-{n}.{extension}"
            done = await store_upload(
                UploadedFile(file_name=name, read=read),
                SHARED_SPEC,
                storage=storage,
                key_prefix=f"shared/{dossier.id}",
            )
        except (MediaRefused, DomainError) as exc:
            entry["error"] = str(exc)
            described.append(entry)
            continue
        stored.append(done)
        entry |= {"fileName": done.file_name, "fileSizeBytes": done.size}
        described.append(entry)
    return stored, described


def _content(body: str, media: list[dict], settings: Settings) -> str:
    lines = [body] if body else []
    refused = [m for m in media if m.get("error")]
    if not body and not refused:
        lines.append(", ".join(m["fileName"] for m in media if m.get("fileName")))
    for m in refused:
        lines.append(f"[A file was not attached ({m.get('contentType') or '?'}): {m['error']}]")
    return "\n".join(lines)[: settings.message_max_length] or "…"


async def receive(
    form: dict[str, list[str]],
    *,
    storage: Storage,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> Received:
    settings = settings or get_settings()
    stamp = now or datetime.now(UTC)

    def first(name: str) -> str:
        return (form.get(name) or [""])[0]

    sid = first("MessageSid") or first("SmsMessageSid") or first("SmsSid")
    if not sid:
        return Received(None)
    if await InboundMessage.filter(message_sid=sid).exists():
        return Received(None, duplicate=True)
    raw_from = first("From")
    channel = (
        NotificationChannel.WHATSAPP
        if raw_from.lower().startswith("whatsapp:")
        else NotificationChannel.SMS
    )
    number = e164(raw_from)
    body = _clean(first("Body"))
    count = int(first("NumMedia")) if first("NumMedia").isdigit() else 0
    given = [
        (first(f"MediaUrl{i}"), first(f"MediaContentType{i}"))
        for i in range(min(count, MAX_MEDIA))
        if first(f"MediaUrl{i}")
    ]
    listed = [{"contentType": t, "url": u} for u, t in given]

    try:
        profiles = list(await Profile.filter(phone=number, erased_at=None).limit(2))
        if len(profiles) != 1:
            outcome = InboundOutcome.AMBIGUOUS_SENDER if profiles else InboundOutcome.UNKNOWN_SENDER
            logger.info("inbound %s from an unknown number kept for admins", channel.value)
            return Received(outcome, await _keep(sid, channel, number, body, listed, outcome))
        profile = profiles[0]
        if consents.is_opt_out(body) or consents.is_opt_in(body):
            out = consents.is_opt_out(body)
            outcome = InboundOutcome.OPTED_OUT if out else InboundOutcome.OPTED_IN
            async with in_transaction():
                row = await _keep(sid, channel, number, body, listed, outcome, profile)
                if out:
                    await consents.opt_out(profile.id, channel, ConsentSource.KEYWORD, now=stamp)
                else:
                    await consents.opt_in(profile.id, channel, ConsentSource.KEYWORD, now=stamp)
                    await consents.wrote_to_us(profile.id, channel, now=stamp)
            return Received(outcome, row)
        dossier = await current_dossier(profile.id)
        if dossier is None:
            async with in_transaction():
                row = await _keep(
                    sid, channel, number, body, listed, InboundOutcome.NO_DOSSIER, profile
                )
                await consents.wrote_to_us(profile.id, channel, now=stamp)
            return Received(InboundOutcome.NO_DOSSIER, row)
    except IntegrityError:  # the same MessageSid, handled meanwhile
        return Received(None, duplicate=True)

    # The files are fetched outside any transaction; if what follows fails, they go.
    stored, media = await _store_media(given, channel, dossier, storage, settings)
    viewer = await _client_viewer(profile)
    try:
        async with in_transaction():
            row = await _keep(
                sid, channel, number, body, media, InboundOutcome.ATTACHED, profile, dossier
            )
            shared = []
            for done in stored:
                shared.append(
                    await SharedFile.create(
                        dossier_id=dossier.id,
                        shared_by_id=None,  # the client's, through Twilio
                        file_name=done.file_name,
                        mime_type=done.kind.mime,
                        file_size_bytes=done.size,
                        storage_key=done.key,
                        note=f"Sent by {channel.value.title()}",
                        created_at=stamp,
                    )
                )
            for entry, file in zip((m for m in media if not m.get("error")), shared, strict=True):
                entry["sharedFileId"] = str(file.id)
            message = await messages.send_message(
                viewer,
                dossier.id,
                _content(body, media, settings),
                shared_file_ids=[file.id for file in shared],
                channel=channel,
                now=stamp,
            )
            row.message_id = message.id
            row.media = media
            await row.save(update_fields=["message_id", "media"])
            await consents.wrote_to_us(profile.id, channel, now=stamp)
    except BaseException as exc:
        for done in stored:
            try:
                await storage.delete(done.key)
            except Exception:  # nothing committed points at it
                logger.exception("could not delete %s after a failed inbound", done.key)
        if isinstance(exc, IntegrityError):
            return Received(None, duplicate=True)
        raise
    return Received(InboundOutcome.ATTACHED, row, message)
