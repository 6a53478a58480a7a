"""Authentication attempts (login, password reset, invitation, two-factor codes): counted
per account and per address by `app.services.throttle` (Redis, shared by every process),
refused with RATE_LIMITED and `retryAfter` past the limit, and failures of a known
account written to its audit trail."""

from __future__ import annotations

from app.errors import DomainError
from app.models import Credential
from app.models.enums import EventType
from app.services import events, throttle
from app.services.codes import IdentityErrorCode
from app.services.sessions import Origin, origin_payload, owner_of


class RateLimited(DomainError):
    def __init__(self, retry_after: int):
        super().__init__(
            IdentityErrorCode.RATE_LIMITED,
            f"Too many attempts; try again in {retry_after} s.",
        )
        self.retry_after = retry_after


def keys(email: str, origin: Origin | None) -> list[str]:
    """The counters an attempt for `email` from `origin` counts against."""
    found = [f"account:{email}"]
    if origin is not None and origin.ip_address:
        found.append(f"address:{origin.ip_address}")
    return found


async def check(scope: str, counted: list[str]) -> None:
    """RateLimited when any counter is locked now."""
    try:
        await throttle.check(scope, counted)
    except throttle.Throttled as exc:
        raise RateLimited(exc.retry_after) from None


async def failed(
    scope: str,
    counted: list[str],
    *,
    credential: Credential | None,
    origin: Origin | None,
    reason: str,
    event: EventType = EventType.LOGIN_FAILED,
) -> None:
    await throttle.failed(scope, counted)
    if credential is not None:  # unknown e-mails are nobody's trail
        kind, owner_id = owner_of(credential)
        await events.record(
            kind, owner_id, event, payload={"reason": reason, **origin_payload(origin)}
        )


async def succeeded(scope: str, counted: list[str]) -> None:
    """Clear the account's counter (the first key); the address keeps its count, so one
    account of one's own does not reset the guessing of others'."""
    await throttle.succeeded(scope, counted[:1])
