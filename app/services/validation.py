"""Input checks shared by services; each failure is a DomainError naming its field."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

from app.errors import DomainError
from app.settings import get_settings

PASSWORD_MIN, PASSWORD_MAX = 8, 256
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


def check_password(value: str, field: str = "password") -> str:
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise DomainError(
            "WEAK_PASSWORD",
            f"The password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long.",
            field,
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
