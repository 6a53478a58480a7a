"""Persisted queries (Apollo's automatic persisted queries) and trusted documents.

A document is named by the SHA-256 of its text (lower-case hex). `PersistedQueries.resolve`
turns what a request sent (its `query`, its `extensions.persistedQuery`) into the document
to run, or refuses it with a `PersistedQueryRefusal` carrying the client-facing code:

- APQ (PERSISTED_QUERIES, on by default): a hash alone runs the document persisted under it,
  or is answered PERSISTED_QUERY_NOT_FOUND; the client then sends the document with its
  hash, which must match (PERSISTED_QUERY_HASH_MISMATCH otherwise), and it is kept — in
  Redis under the deployment's prefix with a TTL, or in process memory without Redis — for
  PERSISTED_QUERY_TTL_SECONDS, at most PERSISTED_QUERY_CACHE_SIZE documents.
- Trusted documents (TRUSTED_DOCUMENTS, off by default): only documents of the manifest
  (TRUSTED_DOCUMENTS_MANIFEST) or registered by an admin (`trusted_documents` table) run,
  by hash or by full text; anything else is PERSISTED_QUERY_NOT_TRUSTED, decided on the
  hash alone, before the text is parsed. Nothing is persisted automatically then.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from app import clock
from app.models import TrustedDocument

logger = logging.getLogger("app.persisted_queries")

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_TRUSTED_PER_CALL = 100  # documents one registerTrustedDocuments call may trust
KNOWN_TRUSTED = 10_000  # trusted documents read from the database, kept per process


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueryRefusal(Exception):
    """A request refused before parsing; `code` is its `extensions.code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def not_found() -> PersistedQueryRefusal:
    # Apollo's clients look for this message (and code) to resend with the document.
    return PersistedQueryRefusal("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")


def not_trusted() -> PersistedQueryRefusal:
    return PersistedQueryRefusal(
        "PERSISTED_QUERY_NOT_TRUSTED",
        "Only registered operations run on this server: this document is not one of them.",
    )


def read_manifest(path: str | Path) -> dict[str, str]:
    """{hash: document} from a manifest file: a plain JSON object (GraphQL Codegen's
    persisted documents) or Apollo's `{"format": "apollo-persisted-query-manifest",
    "operations": [{"id", "body", …}]}`. Every hash is checked against its document."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(raw, dict) and isinstance(raw.get("operations"), list):
        pairs = [(op.get("id"), op.get("body")) for op in raw["operations"]]
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise ValueError(f"{path}: a manifest is a JSON object")
    documents: dict[str, str] = {}
    for key, document in pairs:
        if not isinstance(key, str) or not isinstance(document, str):
            raise ValueError(f"{path}: every entry maps a hash to a document's text")
        name = key.lower().removeprefix("sha256:")
        if document_hash(document) != name:
            raise ValueError(f"{path}: {key} is not the SHA-256 of its document")
        documents[name] = document
    return documents


class MemoryStore:
    """Documents by hash in this process: least recently registered dropped first."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self._documents: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def get(self, key: str) -> str | None:
        found = self._documents.get(key)
        if found is None:
            return None
        document, expires = found
        if expires < time.monotonic():
            del self._documents[key]
            return None
        return document

    async def put(self, key: str, document: str) -> None:
        self._documents[key] = (document, time.monotonic() + self.ttl)
        self._documents.move_to_end(key)
        while len(self._documents) > self.size:
            self._documents.popitem(last=False)

    async def clear(self) -> None:
        self._documents.clear()


class RedisStore:
    """Documents by hash in Redis, under the deployment's prefix, with a TTL; an index
    (a sorted set by registration time) keeps at most `size` of them. Redis down: a miss
    (the client resends the document), never an error."""

    def __init__(self, redis_url: str, prefix: str, size: int, ttl: int) -> None:
        from app.services.throttle import quick_redis

        self._redis = quick_redis(redis_url)
        self.prefix = f"{prefix}apq:"
        self.index = f"{prefix}apq-index"
        self.size = size
        self.ttl = ttl

    async def get(self, key: str) -> str | None:
        try:
            value = await self._redis.get(self.prefix + key)
        except Exception as exc:  # Redis down or slow: a miss
            logger.warning("persisted query lookup failed: %r", exc)
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, document: str) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self.prefix + key, document, ex=self.ttl)
                pipe.zadd(self.index, {key: time.time()})
                pipe.zcard(self.index)
                *_, count = await pipe.execute()
            if count > self.size:
                dropped = await self._redis.zpopmin(self.index, count - self.size)
                names = [
                    self.prefix + (k.decode() if isinstance(k, bytes) else k) for k, _ in dropped
                ]
                if names:
                    await self._redis.delete(*names)
        except Exception as exc:  # not kept: the client sends the document again
            logger.warning("persisted query not stored: %r", exc)

    async def clear(self) -> None:
        names = [name async for name in self._redis.scan_iter(match=self.prefix + "*")]
        await self._redis.delete(self.index, *names)


@dataclass
class Resolved:
    query: str | None
    by_hash: bool  # the request sent a hash alone (a persisted query)


class PersistedQueries:
    def __init__(
        self,
        store: MemoryStore | RedisStore,
        *,
        automatic: bool = True,
        trusted_only: bool = False,
        manifest: Mapping[str, str] | None = None,
        max_bytes: int = 100_000,
    ) -> None:
        self.store = store
        self.automatic = automatic and not trusted_only
        self.trusted_only = trusted_only
        self.manifest = dict(manifest or {})
        self.max_bytes = max_bytes
        self._trusted: OrderedDict[str, str] = OrderedDict()  # read from the table

    @classmethod
    def from_settings(cls, settings: Any) -> PersistedQueries:
        from app.services.throttle import deployment_prefix

        store: MemoryStore | RedisStore
        if settings.redis_url:
            store = RedisStore(
                settings.redis_url,
                deployment_prefix(settings),
                settings.persisted_query_cache_size,
                settings.persisted_query_ttl_seconds,
            )
        else:
            store = MemoryStore(
                settings.persisted_query_cache_size, settings.persisted_query_ttl_seconds
            )
        manifest = (
            read_manifest(settings.trusted_documents_manifest)
            if settings.trusted_documents_manifest
            else None
        )
        return cls(
            store,
            automatic=settings.persisted_queries,
            trusted_only=settings.trusted_documents,
            manifest=manifest,
            max_bytes=settings.persisted_query_max_bytes,
        )

    async def trusted(self, key: str) -> str | None:
        """The registered document of this hash (manifest, then the table), or None."""
        document = self.manifest.get(key) or self._trusted.get(key)
        if document is not None:
            return document
        row = await TrustedDocument.get_or_none(hash=key)
        if row is None:
            return None
        self._trusted[key] = row.document
        if len(self._trusted) > KNOWN_TRUSTED:
            self._trusted.popitem(last=False)
        return row.document

    async def resolve(self, query: str | None, extensions: Mapping[str, Any] | None) -> Resolved:
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            if (
                self.trusted_only
                and query is not None
                and await self.trusted(document_hash(query)) is None
            ):
                raise not_trusted()
            return Resolved(query, by_hash=False)
        key = _hash_of(persisted)
        if query is None:
            document = await self.trusted(key)
            if document is None and self.automatic:
                document = await self.store.get(key)
            if document is None:
                raise not_trusted() if self.trusted_only else not_found()
            return Resolved(document, by_hash=True)
        if document_hash(query) != key:
            raise PersistedQueryRefusal(
                "PERSISTED_QUERY_HASH_MISMATCH",
                "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query sent.",
            )
        if self.trusted_only:
            if await self.trusted(key) is None:
                raise not_trusted()
        elif self.automatic and len(query.encode()) <= self.max_bytes:
            await self.store.put(key, query)
        return Resolved(query, by_hash=False)


def _hash_of(persisted: Any) -> str:
    if not isinstance(persisted, Mapping) or persisted.get("version") != 1:
        raise PersistedQueryRefusal(
            "PERSISTED_QUERY_INVALID",
            "extensions.persistedQuery must be {version: 1, sha256Hash: <hex>}.",
        )
    key = persisted.get("sha256Hash")
    if not isinstance(key, str) or not SHA256_HEX.match(key.lower()):
        raise PersistedQueryRefusal(
            "PERSISTED_QUERY_INVALID", "sha256Hash must be 64 hexadecimal digits."
        )
    return key.lower()


async def register_trusted(
    documents: list[tuple[str, str | None]], *, admin_id: Any
) -> list[TrustedDocument]:
    """Trust these documents (text, operation name), by the hash of each text; one already
    registered is kept as it is. Returns the rows, in the order given."""
    rows: list[TrustedDocument] = []
    keys = [document_hash(text) for text, _ in documents]
    existing = {row.hash: row for row in await TrustedDocument.filter(hash__in=keys)}
    new = []
    now = clock.now()
    for key, (text, name) in zip(keys, documents, strict=True):
        row = existing.get(key)
        if row is None:
            row = TrustedDocument(
                hash=key, document=text, operation_name=name, created_by_id=admin_id, created_at=now
            )
            existing[key] = row
            new.append(row)
        rows.append(row)
    if new:
        await TrustedDocument.bulk_create(new, ignore_conflicts=True)
    return rows


class TrustedDocumentErrorCode(StrEnum):
    INVALID_DOCUMENT = "INVALID_DOCUMENT"
    HASH_MISMATCH = "HASH_MISMATCH"
    TOO_MANY = "TOO_MANY"
