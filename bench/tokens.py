"""Access tokens for the bench's accounts: a session row written straight into the
generated database (as a login would) and a token of that session lasting the run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BENCH_TOKEN_HOURS = 12


async def token_for(conn: Any, row: dict[str, Any]) -> str:
    """`conn` an asyncpg connection to the bench database; `row` a credential's columns."""
    from app.models import Credential
    from app.security import issue_token

    session_id = uuid.uuid4()
    now = datetime.now(UTC)
    ends = now + timedelta(hours=BENCH_TOKEN_HOURS)
    await conn.execute(
        'INSERT INTO "sessions" ("id", "created_at", "updated_at", "credential_id",'
        ' "refresh_token_hash", "last_used_at", "expires_at", "ends_at", "user_agent")'
        " VALUES ($1, $2, $2, $3, $4, $2, $5, $5, 'bench')",
        session_id,
        now,
        row["id"],
        uuid.uuid4().hex,
        ends,
    )
    credential = Credential(
        id=row["id"],
        email=row["email"],
        password_hash=row["password_hash"],
        password_changed_at=row["password_changed_at"],
        profile_id=row["profile_id"],
        agent_id=row["agent_id"],
    )
    return issue_token(credential, session_id, ttl=timedelta(hours=BENCH_TOKEN_HOURS))[0]
