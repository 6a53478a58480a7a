"""Two-factor login with TOTP (RFC 6238, through pyotp) and single-use recovery codes.

- Enrolment: `begin_enrolment` stores a new secret (not in force yet) and shows its
  `otpauth://` URI once; `confirm_enrolment` with a code from the app puts it in force and
  returns 10 recovery codes, shown once, kept as SHA-256 hashes.
- Login: for an account with two-factor in force, or one REQUIRE_TWO_FACTOR covers,
  `identity.login` answers a short-lived challenge instead of tokens; `complete_login`
  trades the challenge and a code (or a recovery code) for the session. An account the
  policy covers that has not enrolled gets the URI with its challenge and enrols there.
- A code is accepted once (the last accepted time step is kept), within one step of
  drift either way; wrong codes count against the account's two-factor throttle.
- Disabling takes the password and a code, and is refused while the policy covers the
  account.

Time comes from `app.clock`, so tests drive every case with a test clock.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import pyotp
from tortoise.transactions import in_transaction

from app import clock
from app.domain.viewer import Viewer
from app.errors import DomainError, Unauthenticated
from app.models import Agent, Credential
from app.models.enums import AgentRole, EventType
from app.security import decode_challenge, issue_challenge, secret_hash, verify_password
from app.services import attempts, events
from app.services.codes import IdentityErrorCode as Code
from app.services.sessions import Origin, Tokens, origin_payload, owner_of, start_session
from app.settings import get_settings

ISSUER = "Partners VRAI"
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i

INVALID_CODE = DomainError(Code.INVALID_CODE, "This code is not valid.", "code")


@dataclass
class Challenge:
    """The password was right; the account still owes its second factor."""

    token: str
    expires_at: datetime
    credential: Credential
    enrolment_uri: str | None = None  # set when the account must enrol first


def required_for(agent: Agent | None) -> bool:
    policy = get_settings().two_factor_policy
    if agent is None or policy == "none":
        return False
    return policy == "agents" or agent.role == AgentRole.ADMIN


def applies_to(credential: Credential, agent: Agent | None) -> bool:
    return credential.two_factor_enabled_at is not None or required_for(agent)


def _uri(credential: Credential, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=credential.email, issuer_name=ISSUER)


def _matching_step(secret: str, code: str) -> int | None:
    """The time step `code` belongs to (now, or one step either side), or None."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = clock.now()
    current = totp.timecode(now)
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _normal_recovery(code: str) -> str:
    return "".join(code.lower().split()).replace("-", "")


def new_recovery_codes() -> tuple[list[str], list[str]]:
    """Codes to show once (`xxxxx-xxxxx`) and the hashes to keep."""
    codes = [
        "-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODES)
    ]
    return codes, [secret_hash(_normal_recovery(code)) for code in codes]


async def _accept_code(credential: Credential, code: str, *, secret: str) -> str | None:
    """Check `code` against the credential (locked by the caller) and consume it: "totp"
    or "recovery-code" when accepted, None otherwise."""
    step = _matching_step(secret, code)
    if step is not None:
        if credential.totp_last_step is not None and step <= credential.totp_last_step:
            return None  # this code (or an older one) was used already
        credential.totp_last_step = step
        return "totp"
    if credential.two_factor_enabled_at is not None:
        hashed = secret_hash(_normal_recovery(code))
        kept_codes = credential.recovery_code_hashes or []
        for kept in kept_codes:
            if secrets.compare_digest(kept, hashed):
                credential.recovery_code_hashes = [h for h in kept_codes if h != kept]
                return "recovery-code"
    return None


async def challenge(credential: Credential) -> Challenge:
    enrolment_uri = None
    if credential.two_factor_enabled_at is None:  # the policy covers it: enrol now
        if credential.totp_secret is None:
            credential.totp_secret = pyotp.random_base32()
            await credential.save(update_fields=["totp_secret", "updated_at"])
        enrolment_uri = _uri(credential, credential.totp_secret)
    token, expires = issue_challenge(credential)
    return Challenge(token, expires, credential, enrolment_uri)


@dataclass
class Completed:
    tokens: Tokens
    recovery_codes: list[str] | None  # set when this login enrolled the account


async def complete_login(challenge_token: str, code: str, origin: Origin | None) -> Completed:
    try:
        claims = decode_challenge(challenge_token)
        credential_id = uuid.UUID(claims["sub"])
    except (Unauthenticated, ValueError) as exc:
        raise DomainError(
            Code.INVALID_TOKEN, "This login has expired; log in again.", "challenge"
        ) from exc
    credential = await Credential.filter(id=credential_id).first()
    if credential is None or int(credential.password_changed_at.timestamp()) > int(claims["pwd"]):
        raise DomainError(Code.INVALID_TOKEN, "This login has expired; log in again.", "challenge")
    counted = attempts.keys(credential.email, origin)
    await attempts.check("two-factor", counted)
    recovery_codes = None
    async with in_transaction():
        credential = await Credential.filter(id=credential_id).select_for_update().get()
        if credential.totp_secret is None:
            raise DomainError(Code.INVALID_TOKEN, "This login has expired; log in again.")
        enrolling = credential.two_factor_enabled_at is None
        method = await _accept_code(credential, code, secret=credential.totp_secret)
        if method is None:
            await attempts.failed(
                "two-factor", counted, credential=credential, origin=origin, reason="wrong-code"
            )
            failed = True
        else:
            failed = False
            kind, owner_id = owner_of(credential)
            if enrolling:
                recovery_codes, credential.recovery_code_hashes = new_recovery_codes()
                credential.two_factor_enabled_at = clock.now()
                await events.record(
                    kind, owner_id, EventType.TWO_FACTOR_ENABLED, payload=origin_payload(origin)
                )
            elif method == "recovery-code":
                await events.record(
                    kind,
                    owner_id,
                    EventType.RECOVERY_CODE_USED,
                    payload={"left": len(credential.recovery_code_hashes or [])},
                )
            await credential.save()
    if failed:  # the failure's count and event are committed
        raise INVALID_CODE
    await attempts.succeeded("two-factor", counted)
    tokens = await start_session(credential, origin, method=f"password+{method}")
    return Completed(tokens, recovery_codes)


async def _locked_credential(viewer: Viewer) -> Credential:
    return await Credential.filter(id=viewer.credential_id).select_for_update().get()


async def begin_enrolment(viewer: Viewer) -> tuple[str, str]:
    """A new secret for the viewer, not in force until confirmed: its URI and the secret
    itself (for apps that cannot scan)."""
    async with in_transaction():
        credential = await _locked_credential(viewer)
        if credential.two_factor_enabled_at is not None:
            raise DomainError(
                Code.TWO_FACTOR_ALREADY_ENABLED, "Two-factor login is already on; disable it first."
            )
        credential.totp_secret = pyotp.random_base32()
        await credential.save(update_fields=["totp_secret", "updated_at"])
    return _uri(credential, credential.totp_secret), credential.totp_secret


async def confirm_enrolment(viewer: Viewer, code: str) -> list[str]:
    counted = attempts.keys(viewer.email, None)
    await attempts.check("two-factor", counted)
    async with in_transaction():
        credential = await _locked_credential(viewer)
        if credential.two_factor_enabled_at is not None:
            raise DomainError(Code.TWO_FACTOR_ALREADY_ENABLED, "Two-factor login is already on.")
        if credential.totp_secret is None:
            raise DomainError(
                Code.TWO_FACTOR_NOT_ENABLED, "Start the enrolment first (beginTwoFactorEnrolment)."
            )
        method = await _accept_code(credential, code, secret=credential.totp_secret)
        if method is None:
            failed = True
            await attempts.failed(
                "two-factor", counted, credential=credential, origin=None, reason="wrong-code"
            )
        else:
            failed = False
            codes, credential.recovery_code_hashes = new_recovery_codes()
            credential.two_factor_enabled_at = clock.now()
            await credential.save()
            kind, owner_id = owner_of(credential)
            await events.record(kind, owner_id, EventType.TWO_FACTOR_ENABLED, actor=viewer)
    if failed:
        raise INVALID_CODE
    return codes


async def disable(viewer: Viewer, password: str, code: str) -> None:
    if required_for(viewer.agent):
        raise DomainError(
            Code.TWO_FACTOR_REQUIRED, "Your role requires two-factor login; it stays on."
        )
    counted = attempts.keys(viewer.email, None)
    await attempts.check("two-factor", counted)
    async with in_transaction():
        credential = await _locked_credential(viewer)
        if credential.two_factor_enabled_at is None or credential.totp_secret is None:
            raise DomainError(Code.TWO_FACTOR_NOT_ENABLED, "Two-factor login is not on.")
        if not await verify_password(credential.password_hash, password):
            failed: DomainError | None = DomainError(
                Code.INVALID_CREDENTIALS, "The password is wrong.", "password"
            )
        elif await _accept_code(credential, code, secret=credential.totp_secret) is None:
            failed = INVALID_CODE
        else:
            failed = None
            credential.totp_secret = None
            credential.two_factor_enabled_at = None
            credential.totp_last_step = None
            credential.recovery_code_hashes = []
            await credential.save()
            kind, owner_id = owner_of(credential)
            await events.record(kind, owner_id, EventType.TWO_FACTOR_DISABLED, actor=viewer)
        if failed is not None:
            await attempts.failed(
                "two-factor", counted, credential=credential, origin=None, reason="wrong-code"
            )
    if failed is not None:
        raise failed
