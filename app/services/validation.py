"""Input checks shared by services; each failure is a DomainError naming its field."""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from app.errors import DomainError
from app.settings import get_settings

PASSWORD_MIN, PASSWORD_MAX = 10, 256
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$")


def normalise_email(value: str, field: str = "email") -> str:
    try:
        result = validate_email(
            value.strip(),
            check_deliverability=False,
            # `.test` addresses (the demo's) are refused in production only
            test_environment=not get_settings().is_production,
        )
    except EmailNotValidError as exc:
        raise DomainError("INVALID_EMAIL", f"Invalid email address: {exc}", field) from exc
    return result.normalized.lower()


@lru_cache
def _common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords of zxcvbn's ranked list (leaked-password corpora,
    maintained with the library), lower-cased."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def _personal_parts(email: str | None, name: str | None) -> list[str]:
    parts = []
    if email:
        local = email.lower().split("@", 1)[0]
        parts += [email.lower(), local, *re.split(r"[^a-z0-9]+", local)]
    if name:
        parts += re.split(r"\W+", name.lower())
    return [p for p in parts if len(p) >= 3]


def check_password(
    value: str, field: str = "password", *, email: str | None = None, name: str | None = None
) -> str:
    """At least PASSWORD_MIN characters, not one of the most common passwords, and not
    containing the account's e-mail address or name (each refusal says which)."""
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise DomainError(
            "WEAK_PASSWORD",
            f"The password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long.",
            field,
        )
    lowered = value.lower()
    if lowered in _common_passwords():
        raise DomainError(
            "WEAK_PASSWORD",
            "This password is one of the most common ones, the first an attacker tries: "
            "choose another.",
            field,
        )
    if any(part in lowered for part in _personal_parts(email, name)):
        raise DomainError(
            "WEAK_PASSWORD", "The password must not contain your e-mail address or name.", field
        )
    return value


def check_text(value: str, field: str, *, max_length: int = 500, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise DomainError("REQUIRED", f"{field} must not be empty.", field)
    if len(value) > max_length:
        raise DomainError("TOO_LONG", f"{field} is longer than {max_length} characters.", field)
    return value


def check_code(value: str, field: str = "code") -> str:
    value = value.strip()
    if not CODE_RE.match(value):
        raise DomainError(
            "INVALID_CODE",
            "A code is 2 to 64 letters, digits, '_' or '-', starting with a letter or digit.",
            field,
        )
    return value.upper()
