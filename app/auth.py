"""A request's token turned into its viewer (one query)."""

from __future__ import annotations

import uuid
from functools import lru_cache

from tortoise import connections
from tortoise.models import Model

from app import clock
from app.db import aliased_columns, hydrate
from app.domain.viewer import Viewer
from app.errors import Unauthenticated
from app.models import AccountSession, Agent, Credential, Profile
from app.security import decode_token

# Every authenticated request reads its viewer: the statement is written once per SQL
# dialect rather than built by the query builder each time (0.86 -> ~0.2 ms of CPU).
_VIEWER_JOINS: tuple[tuple[str, type[Model]], ...] = (
    ("c", Credential),
    ("p", Profile),
    ("a", Agent),
    ("s", AccountSession),
)


@lru_cache(maxsize=4)
def _viewer_sql(dialect: str) -> str:
    columns = ", ".join(
        column for alias, model in _VIEWER_JOINS for column in aliased_columns(alias, model)
    )
    mark, session_mark = ("$1", "$2") if dialect == "postgres" else ("?1", "?2")
    return (
        f'SELECT {columns} FROM "{Credential._meta.db_table}" AS "c" '
        f'LEFT JOIN "{Profile._meta.db_table}" AS "p" ON "p"."id" = "c"."profile_id" '
        f'LEFT JOIN "{Agent._meta.db_table}" AS "a" ON "a"."id" = "c"."agent_id" '
        f'LEFT JOIN "{AccountSession._meta.db_table}" AS "s" '
        f'ON "s"."id" = {session_mark} AND "s"."credential_id" = "c"."id" '
        f'WHERE "c"."id" = {mark}'
    )


async def viewer_from_token(token: str) -> Viewer:
    """One query: the credential joined with its profile or agent and the token's session
    (revoked or expired: refused at once)."""
    claims = decode_token(token)
    try:
        credential_id = uuid.UUID(claims["sub"])
        session_id = uuid.UUID(claims["sid"])
    except (ValueError, TypeError) as exc:
        raise Unauthenticated("Invalid authentication token.") from exc
    connection = connections.get("default")
    key = Credential._meta.fields_map["id"].to_db_value(credential_id, Credential)
    session_key = AccountSession._meta.fields_map["id"].to_db_value(session_id, AccountSession)
    rows = await connection.execute_query_dict(
        _viewer_sql(connection.capabilities.dialect), [key, session_key]
    )
    credential = hydrate(Credential, "c", rows[0]) if rows else None
    if credential is None:
        raise Unauthenticated("Invalid authentication token.")
    if int(credential.password_changed_at.timestamp()) > int(claims["pwd"]):
        raise Unauthenticated("Your password changed; log in again.")
    session = hydrate(AccountSession, "s", rows[0])
    if session is None or session.revoked_at is not None:
        raise Unauthenticated("This session has ended; log in again.")
    if min(session.expires_at, session.ends_at) <= clock.now():
        raise Unauthenticated("Your session has expired; log in again.")
    agent = hydrate(Agent, "a", rows[0])
    profile = hydrate(Profile, "p", rows[0])
    if agent is not None and not agent.active:
        raise Unauthenticated("This account is deactivated.")
    if agent is None and profile is None:
        raise Unauthenticated("Invalid authentication token.")
    return Viewer(
        credential_id=credential.id,
        email=credential.email,
        profile=profile,
        agent=agent,
        session_id=session.id,
    )
