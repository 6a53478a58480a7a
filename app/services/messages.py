"""Chat: the messages of a dossier, their read state and unread counts (SPEC §2.4).

Messages of one dossier are totally ordered by (created_at, id), and that order is the
commit order: `send_message` locks the dossier row, then stamps the message strictly after
the dossier's latest one. So a cursor taken from any message means "everything committed
after it", which is what lets `messageAdded(after:)` resume with no gap and no duplicate.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from tortoise import connections
from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app.compat.tortoise import from_row, queryset_sql
from app.db import fetch_value, insert_together
from app.domain.viewer import Viewer
from app.errors import DomainError, Forbidden, NotFound, ValidationFailed
from app.models import DocumentVersion, Dossier, Message, SharedFile
from app.models.enums import ActorType, EventType, NotificationChannel
from app.services import events
from app.services.codes import MessageErrorCode as Code
from app.services.dossiers import visible_dossiers
from app.services.validation import check_text
from app.settings import get_settings

TICK = timedelta(microseconds=1)
ORDER = ("created_at", "id")


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def other_side(viewer: Viewer) -> list[ActorType]:
    """Whose messages the viewer reads: a client reads agents' and the system's, an agent
    reads the client's."""
    if viewer.is_agent:
        return [ActorType.USER]
    if viewer.is_client:
        return [ActorType.AGENT, ActorType.SYSTEM]
    raise Forbidden()


def _check_content(content: str) -> str:
    limit = get_settings().message_max_length
    # the one check for free text (control characters), then this domain's own wording
    text = check_text(content or "", "content", max_length=None, required=False)
    if not text:
        raise DomainError(Code.REQUIRED, "A message cannot be empty.", "content")
    if len(text) > limit:
        raise DomainError(
            Code.TOO_LONG, f"A message is at most {limit:,} characters long.", "content"
        )
    return text


def _distinct(ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(ids))


async def _shared_files(dossier_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[dict]:
    """Files the firm shared with THIS dossier, described for the message (one query);
    another dossier's are refused exactly like missing ones."""
    if not ids:
        return []
    found = {
        row.id: row for row in await SharedFile.filter(id__in=list(ids), dossier_id=dossier_id)
    }
    missing = [i for i, sid in enumerate(ids) if sid not in found]
    if missing:
        raise ValidationFailed(
            [
                DomainError(
                    Code.INVALID_ATTACHMENT,
                    "No such uploaded file in this dossier.",
                    ["sharedFileIds", str(i)],
                )
                for i in missing
            ]
        )
    return [
        {
            "sharedFileId": str(sid),
            "fileName": found[sid].file_name,
            "mimeType": found[sid].mime_type,
            "fileSizeBytes": found[sid].file_size_bytes,
        }
        for sid in ids
    ]


async def _attachments(
    dossier_id: uuid.UUID, version_ids: Sequence[uuid.UUID], shared: int = 0
) -> list[dict]:
    """The document versions of THIS dossier, described for the message (one query);
    `shared`: how many shared files come with them (the limit counts both)."""
    limit = get_settings().message_max_attachments
    if len(version_ids) + shared > limit:
        raise DomainError(
            Code.TOO_MANY_ATTACHMENTS, f"At most {limit} attachments per message.", "attachments"
        )
    if not version_ids:
        return []
    if len(version_ids) > limit:
        raise DomainError(
            Code.TOO_MANY_ATTACHMENTS, f"At most {limit} attachments per message.", "attachments"
        )
    rows = await DocumentVersion.filter(
        id__in=list(version_ids), document__dossier_id=dossier_id
    ).select_related("document")
    found = {row.id: row for row in rows}
    missing = [i for i, vid in enumerate(version_ids) if vid not in found]
    if missing:
        raise ValidationFailed(
            [
                DomainError(
                    Code.INVALID_ATTACHMENT,
                    "No such uploaded file in this dossier.",
                    ["attachments", str(i)],
                )
                for i in missing
            ]
        )
    return [
        {
            "documentVersionId": str(vid),
            "documentId": str(found[vid].document_id),
            "fileName": found[vid].file_name,
            "mimeType": found[vid].mime_type,
            "fileSizeBytes": found[vid].file_size_bytes,
            "versionNumber": found[vid].version_number,
        }
        for vid in version_ids
    ]


async def send_message(
    viewer: Viewer | None,
    dossier_id: uuid.UUID,
    content: str,
    attachments: Sequence[uuid.UUID] = (),
    shared_file_ids: Sequence[uuid.UUID] = (),
    *,
    channel: NotificationChannel = NotificationChannel.IN_APP,
    now: datetime | None = None,
) -> Message:
    """Post a message in a dossier: by its client, an agent, or the system (viewer None);
    `channel`: where it was written (a client's SMS or WhatsApp reply, issue 20).

    One transaction writes the message and its MESSAGE_SENT event; the dossier row is
    locked so the dossier's messages are stamped in commit order.
    """
    text = _check_content(content)
    version_ids = _distinct(attachments)
    shared_ids = _distinct(shared_file_ids)
    async with in_transaction():
        queryset = Dossier.all() if viewer is None else visible_dossiers(viewer)
        dossier = await queryset.filter(id=dossier_id).select_for_update().first()
        if dossier is None:
            raise NotFound("No such dossier.")
        described = await _attachments(dossier.id, version_ids, len(shared_ids))
        described += await _shared_files(dossier.id, shared_ids)
        # Read after the lock is held (a statement of its own: read in the lock's
        # statement, it would not see a message committed while that statement waited).
        previous = await latest_message(dossier.id)
        created_at = _now(now)
        if previous is not None and created_at <= previous.created_at:
            created_at = previous.created_at + TICK
        sender_type, sender_id = events.actor_of(viewer)
        message = Message(
            dossier_id=dossier.id,
            sender_type=sender_type,
            sender_id=sender_id,
            content=text,
            attachments=described,
            created_at=created_at,
            channel=channel,
        )
        event = events.build(
            "message",
            message.id,
            EventType.MESSAGE_SENT,
            actor=viewer,
            payload={
                "dossierId": str(dossier.id),
                "senderType": sender_type.value,
                "senderId": str(sender_id) if sender_id else None,
                "channel": channel.value,
                # the message before this one in the dossier: lets a live subscriber see
                # that it missed one (publication order is not commit order)
                "previousMessageId": str(previous.id) if previous else None,
            },
        )
        await insert_together(message, event)  # one statement on PostgreSQL
        events.track(event)
    return message


async def mark_dossier_messages_read(
    viewer: Viewer, dossier_id: uuid.UUID, *, now: datetime | None = None
) -> tuple[Dossier, int]:
    """Set read_at on the other side's unread messages of the dossier; returns how many."""
    sides = other_side(viewer)
    stamp = _now(now)
    async with in_transaction():
        dossier = await visible_dossiers(viewer).filter(id=dossier_id).first()
        if dossier is None:
            raise NotFound("No such dossier.")
        count = await Message.filter(
            dossier_id=dossier.id, read_at=None, sender_type__in=sides
        ).update(read_at=stamp)
        if count:
            await events.record(
                "dossier",
                dossier.id,
                EventType.MESSAGES_READ,
                actor=viewer,
                payload={"count": count, "readerType": viewer.actor_type.value},
            )
    return dossier, count


def dossier_messages(dossier_id: uuid.UUID) -> QuerySet[Message]:
    return Message.filter(dossier_id=dossier_id)


async def latest_message(dossier_id: uuid.UUID) -> Message | None:
    return await Message.filter(dossier_id=dossier_id).order_by("-created_at", "-id").first()


def after_key(created_at: datetime, message_id: uuid.UUID) -> Q:
    """Messages strictly after (created_at, id) in the dossier order."""
    return Q(
        Q(created_at__gt=created_at),
        Q(created_at=created_at, id__gt=message_id),
        join_type="OR",
    )


def before_key(created_at: datetime, message_id: uuid.UUID) -> Q:
    return Q(
        Q(created_at__lt=created_at),
        Q(created_at=created_at, id__lt=message_id),
        join_type="OR",
    )


async def messages_after(
    dossier_id: uuid.UUID,
    key: tuple[datetime, uuid.UUID] | None,
    *,
    limit: int = 100,
) -> list[Message]:
    """The next `limit` messages after `key` (from the start when None), oldest first."""
    queryset = Message.filter(dossier_id=dossier_id)
    if key is not None:
        queryset = queryset.filter(after_key(*key))
    return list(await queryset.order_by(*ORDER).limit(limit))


async def message_pages(
    dossier_ids: Sequence[Any],
    *,
    size: int,
    backwards: bool,
    after: tuple[datetime, uuid.UUID] | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> dict[str, list[Message]]:
    """One page (up to size + 1 rows, to tell if there is more) of each dossier's messages,
    forwards from the oldest or backwards from the newest, in ONE statement.

    Each dossier's page is an index range (`idx_messages_dossier_order`, dossier_id then
    created_at, id) read up to its LIMIT, so a page costs its size however long the chat
    is; several dossiers' pages are those ranges side by side (UNION ALL), never a window
    over their whole chats."""
    ids = list({str(d) for d in dossier_ids})
    pages: dict[str, list[Message]] = {i: [] for i in ids}
    if not ids:
        return pages
    ordering = [f"-{name}" for name in ORDER] if backwards else list(ORDER)

    def page_of(dossier_id: str) -> QuerySet[Message]:
        queryset = Message.filter(dossier_id=dossier_id)
        if after is not None:
            queryset = queryset.filter(after_key(*after))
        if before is not None:
            queryset = queryset.filter(before_key(*before))
        return queryset.order_by(*ordering).limit(int(size) + 1)

    if len(ids) == 1:  # the usual case: one dossier's chat
        rows = list(await page_of(ids[0]))
    else:
        rows = []
        for start in range(0, len(ids), _PAGES_PER_STATEMENT):
            sql, params = _side_by_side(
                [page_of(i) for i in ids[start : start + _PAGES_PER_STATEMENT]]
            )
            found = await connections.get("default").execute_query_dict(sql, params)
            rows += [from_row(Message, row) for row in found]
    for message in rows:
        pages[str(message.dossier_id)].append(message)
    for page in pages.values():
        page.sort(key=lambda m: (m.created_at, str(m.id)), reverse=backwards)
    return pages


# SQLite allows 500 members in a compound SELECT; a batch is at most a page of dossiers.
_PAGES_PER_STATEMENT = 200
_PLACEHOLDER = re.compile(r"\$(\d+)")


def _moved(match: re.Match[str], *, offset: int) -> str:
    return f"${int(match.group(1)) + offset}"


def _side_by_side(querysets: Sequence[QuerySet[Any]]) -> tuple[str, list[Any]]:
    """`SELECT * FROM (q1) UNION ALL SELECT * FROM (q2) …`: each query keeps its own ORDER
    BY and LIMIT (as a subquery; SQLite has no parenthesised compound members). PostgreSQL
    numbers its placeholders: each query's are moved past the previous ones'."""
    parts: list[str] = []
    params: list[Any] = []
    for n, queryset in enumerate(querysets):
        sql, values = queryset_sql(queryset)
        offset = len(params)
        if offset:
            sql = _PLACEHOLDER.sub(partial(_moved, offset=offset), sql)
        parts.append(f'SELECT * FROM ({sql}) AS "page{n}"')
        params += values
    return " UNION ALL ".join(parts), params


async def message_counts(dossier_ids: Sequence[Any]) -> dict[str, int]:
    ids = list({str(d) for d in dossier_ids})
    if not ids:
        return {}
    rows = (
        await Message.filter(dossier_id__in=ids)
        .annotate(n=Count("id"))
        .group_by("dossier_id")
        .values("dossier_id", "n")
    )
    return {str(row["dossier_id"]): int(row["n"]) for row in rows}


@lru_cache(maxsize=8)
def _unread_sql(for_client: bool, sides: int) -> str:
    """Read on every dashboard: the statement is written once (app.db.fetch_value), not
    rebuilt by the query builder per request. $1 is the client, then the sender types."""
    first = 2 if for_client else 1
    senders = ", ".join(f"${n}" for n in range(first, first + sides))
    if not for_client:
        return (
            'SELECT COUNT(*) FROM "messages" '
            f'WHERE "read_at" IS NULL AND "sender_type" IN ({senders})'
        )
    return (
        'SELECT COUNT(*) FROM "messages" AS "m" '
        'JOIN "dossiers" AS "d" ON "d"."id" = "m"."dossier_id" '
        f'WHERE "m"."read_at" IS NULL AND "m"."sender_type" IN ({senders}) '
        'AND "d"."user_id" = $1'
    )


async def unread_total(viewer: Viewer) -> int:
    """Unread messages for the viewer across every dossier they may see."""
    sides = [side.value for side in other_side(viewer)]
    if viewer.is_agent:
        return int(await fetch_value(_unread_sql(False, len(sides)), *sides))
    sql = _unread_sql(True, len(sides))
    return int(await fetch_value(sql, viewer.actor_id, *sides))
