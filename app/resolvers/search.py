from __future__ import annotations

import base64
import uuid
from decimal import Decimal, InvalidOperation

import orjson
import strawberry

from app.context import Info
from app.errors import BadUserInput
from app.schema.common import Connection, _encode, page_of, page_size
from app.schema.search import ClientHit, DossierHit, SearchHit
from app.services import search as service

COUNT_CAP = 10_000  # totalCount counts this many hits at most


def _cursor(hit: SearchHit) -> str:
    return _encode([f"{Decimal(hit.score):.4f}", hit.target_id])


def _after(cursor: str | None) -> tuple[Decimal, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        score, id_ = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return Decimal(score), uuid.UUID(id_)
    except (ValueError, TypeError, InvalidOperation, orjson.JSONDecodeError):
        raise BadUserInput("Invalid cursor.") from None


def _hit(hit: service.Hit) -> SearchHit:
    kind = ClientHit if hit.kind == "client" else DossierHit
    return kind(score=float(hit.score), target_id=hit.id)


@strawberry.type
class SearchQuery:
    @strawberry.field(
        description="Agents: clients by name (accents, case and a typo or two forgiven), "
        "e-mail or phone (any formatting), and dossiers by case number; best first."
    )
    async def search(
        self, info: Info, query: str, first: int | None = None, after: str | None = None
    ) -> Connection[SearchHit]:
        viewer = await info.context.require_agent()
        size, _ = page_size(first, None)
        hits = await service.search(viewer, query, limit=size + 1, after=_after(after))

        async def count() -> int:
            return len(await service.search(viewer, query, limit=COUNT_CAP))

        return page_of(
            [_hit(h) for h in hits],
            size,
            backwards=False,
            after=after,
            before=None,
            cursor=_cursor,
            count=count,
        )
