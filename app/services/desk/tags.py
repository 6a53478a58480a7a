"""Free-form tags on a dossier, for agents: "urgent", "vip", "préfecture 92".

A tag is stored normalised: NFC, trimmed, inner runs of blanks made one space, lower case
(`casefold`), at most TAG_MAX characters of letters, digits, spaces and `-_./&'+#`; so
"VIP " and "vip" are one tag, unique per dossier. A dossier has at most MAX_TAGS."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from tortoise.expressions import Subquery
from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app.compat.tortoise import AnyOf
from app.db import is_postgres
from app.domain.viewer import Viewer
from app.errors import BadUserInput, DomainError, Forbidden, NotFound
from app.models import Dossier, DossierTag
from app.models.enums import EventType
from app.services import events
from app.services.codes import DeskErrorCode

TAG_MAX = 40
MAX_TAGS = 20
_TAG_RE = re.compile(r"^[\w][\w \-./&'+#]*$")


def _require_agent(viewer: Viewer) -> None:
    if viewer.agent is None:
        raise Forbidden("Only agents tag dossiers.")


def normalise_tag(value: str, field: str = "tag") -> str:
    text = " ".join(unicodedata.normalize("NFC", value).split()).casefold()
    if not text:
        raise DomainError(DeskErrorCode.REQUIRED, "A tag cannot be empty.", field)
    if len(text) > TAG_MAX:
        raise DomainError(DeskErrorCode.TOO_LONG, f"A tag has at most {TAG_MAX} characters.", field)
    if not _TAG_RE.match(text):
        raise DomainError(
            DeskErrorCode.INVALID_TAG,
            "A tag is letters, digits, spaces and - _ . / & ' + #.",
            field,
        )
    return text


def _normalised(tags: Sequence[str]) -> list[str]:
    out: list[str] = []
    for n, value in enumerate(tags):
        tag = normalise_tag(value, f"tags.{n}")
        if tag not in out:
            out.append(tag)
    return out


async def _dossier(dossier_id: uuid.UUID) -> Dossier:
    dossier = await Dossier.filter(id=dossier_id).select_for_update().first()
    if dossier is None:
        raise NotFound("No such dossier.")
    return dossier


async def tag_dossier(viewer: Viewer, dossier_id: uuid.UUID, tags: Sequence[str]) -> Dossier:
    """Add tags (those it has already are left as they are); one event for what is new."""
    _require_agent(viewer)
    wanted = _normalised(tags)
    if not wanted:
        raise DomainError(DeskErrorCode.REQUIRED, "Give at least one tag.", "tags")
    async with in_transaction():
        dossier = await _dossier(dossier_id)
        present = set(await DossierTag.filter(dossier_id=dossier.id).values_list("name", flat=True))
        new = [t for t in wanted if t not in present]
        if len(present) + len(new) > MAX_TAGS:
            raise DomainError(
                DeskErrorCode.TOO_MANY_TAGS, f"A dossier has at most {MAX_TAGS} tags.", "tags"
            )
        if new:
            await DossierTag.bulk_create([DossierTag(dossier_id=dossier.id, name=t) for t in new])
            await events.record(
                "dossier", dossier.id, EventType.DOSSIER_TAGGED, actor=viewer, payload={"tags": new}
            )
    return dossier


async def untag_dossier(viewer: Viewer, dossier_id: uuid.UUID, tags: Sequence[str]) -> Dossier:
    """Remove tags (those it does not have are ignored); one event for what went."""
    _require_agent(viewer)
    wanted = _normalised(tags)
    async with in_transaction():
        dossier = await _dossier(dossier_id)
        gone = list(
            await DossierTag.filter(dossier_id=dossier.id, name__in=wanted).values_list(
                "name", flat=True
            )
        )
        if gone:
            await DossierTag.filter(dossier_id=dossier.id, name__in=gone).delete()
            await events.record(
                "dossier",
                dossier.id,
                EventType.DOSSIER_UNTAGGED,
                actor=viewer,
                payload={"tags": sorted(str(t) for t in gone)},
            )
    return dossier


def tagged(queryset: QuerySet[Dossier], tag: str) -> QuerySet[Dossier]:
    """The dossiers of `queryset` that have `tag` (through idx_dossier_tags_name)."""
    try:
        name = normalise_tag(tag)
    except DomainError as error:
        raise BadUserInput(error.message) from None
    having = DossierTag.filter(name=name).values("dossier_id")
    if is_postgres():  # as the list's other subqueries: read once, probed by primary key
        return queryset.filter(id=AnyOf(having))
    return queryset.filter(id__in=Subquery(having))


@dataclass(frozen=True)
class TagUse:
    name: str
    count: int


async def tags_in_use(viewer: Viewer, *, size: int, after: str | None) -> list[TagUse]:
    """The tags in use in name order with how many dossiers have each, `size` of them
    from after `after` (one grouped statement over idx_dossier_tags_name)."""
    _require_agent(viewer)
    queryset = DossierTag.all()
    if after is not None:
        queryset = queryset.filter(name__gt=after)
    rows = (
        await queryset.annotate(n=Count("id"))
        .group_by("name")
        .order_by("name")
        .limit(size)
        .values("name", "n")
    )
    return [TagUse(str(r["name"]), int(r["n"])) for r in rows]


async def tags_in_use_count(viewer: Viewer) -> int:
    _require_agent(viewer)
    return len(await DossierTag.all().distinct().values_list("name", flat=True))
