from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel, TimestampedModel
from app.models.enums import AccountTokenPurpose

if TYPE_CHECKING:
    from app.models.agents import Agent
    from app.models.profiles import Profile


class Credential(TimestampedModel):
    """Login credentials for exactly one profile or one agent.

    One table for both kinds keeps emails unique across clients and agents with a single
    database constraint, and lets `login` find the account in one query.
    """

    email = fields.CharField(max_length=320, unique=True)  # stored lower-cased
    password_hash = fields.TextField()
    password_changed_at = fields.DatetimeField()
    # Two-factor (TOTP, RFC 6238): the secret, set at enrolment and in force once a code
    # confirmed it (two_factor_enabled_at); the last time step accepted (a code is good
    # once); the SHA-256 of each unused recovery code.
    totp_secret = fields.CharField(max_length=64, null=True)
    two_factor_enabled_at = fields.DatetimeField(null=True)
    totp_last_step = fields.BigIntField(null=True)
    recovery_code_hashes: list[str] | None = fields.JSONField(null=True)  # None: none
    profile: fields.OneToOneNullableRelation[Profile] = fields.OneToOneField(
        "models.Profile", related_name="credential", null=True, on_delete=fields.CASCADE
    )
    agent: fields.OneToOneNullableRelation[Agent] = fields.OneToOneField(
        "models.Agent", related_name="credential", null=True, on_delete=fields.CASCADE
    )

    sessions: fields.ReverseRelation[AccountSession]
    account_tokens: fields.ReverseRelation[AccountToken]

    # The foreign keys' columns (attributes Tortoise adds):
    profile_id: uuid.UUID | None
    agent_id: uuid.UUID | None

    class Meta:
        table = "credentials"


class AccountSession(TimestampedModel):
    """One login: the refresh token that gets its access tokens, where it came from, and
    whether it still holds.

    The refresh token is `<session id>.<secret>`; only its SHA-256 is kept, replaced at
    every use (rotation). A token naming this session whose hash is not the current one
    is an old token presented again: the session is revoked (reuse detection, OAuth 2.0
    Security BCP §4.14). Every authenticated request reads this row with its credential
    (one query, `app.auth`), so a revoked session stops at once.
    """

    credential: fields.ForeignKeyRelation[Credential] = fields.ForeignKeyField(
        "models.Credential", related_name="sessions", on_delete=fields.CASCADE
    )
    refresh_token_hash = fields.CharField(max_length=64)
    last_used_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()  # idle expiry, pushed back by each refresh
    ends_at = fields.DatetimeField()  # absolute expiry (SESSION_MAX_DAYS after login)
    ip_address = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=512, null=True)
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=32, null=True)

    credential_id: uuid.UUID

    class Meta:
        table = "sessions"
        indexes = (
            # mySessions (newest first) and "end every session of this account".
            Index(fields=("credential_id", "created_at", "id"), name="idx_sessions_credential"),
            # the housekeeping pass: sessions long over (revoking sets expires_at too)
            Index(fields=("expires_at",), name="idx_sessions_expires"),
        )


class AccountToken(CreatedModel):
    """A single-use secret sent by e-mail: a password reset or an invitation to choose a
    password. Only hashes are kept (the link's token and, for resets, the short code a
    mobile user types); the e-mail carries the secrets themselves."""

    credential: fields.ForeignKeyRelation[Credential] = fields.ForeignKeyField(
        "models.Credential", related_name="account_tokens", on_delete=fields.CASCADE
    )
    purpose = fields.CharEnumField(AccountTokenPurpose, max_length=16)
    token_hash = fields.CharField(max_length=64, unique=True)
    code_hash = fields.CharField(max_length=64, null=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    failed_attempts = fields.IntField(default=0)  # wrong codes: the token dies at 5
    created_by: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="account_tokens_created", null=True, on_delete=fields.SET_NULL
    )

    credential_id: uuid.UUID
    created_by_id: uuid.UUID | None

    class Meta:
        table = "account_tokens"
        indexes = (
            Index(
                fields=("credential_id", "purpose", "created_at"), name="idx_account_tokens_owner"
            ),
            Index(fields=("created_by_id",), name="idx_account_tokens_created_by"),
            Index(fields=("expires_at",), name="idx_account_tokens_expires"),
        )
