"""Input checks shared by services; each failure is a DomainError naming its field."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from app.errors import DomainError
from app.settings import get_settings

PASSWORD_MIN, PASSWORD_MAX = 10, 256
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$")
PHONE_MAX = 32
PHONE_DEFAULT_REGION = "FR"
# What people type in a phone number: digits, a leading +, spaces and the usual separators.
PHONE_RE = re.compile(r"^\+?[0-9 ().\-/]+$")
# Control (Cc), format (Cf: bidi overrides, zero-width, BOM), surrogates (Cs), and the
# line and paragraph separators (Zl, Zp): none belongs in a single line of text.
_REFUSED_IN_LINE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# …but the zero-width non-joiner and joiner are letters' business: Persian, Urdu and Indic
# names are spelt with them (and emoji sequences); they steer no text direction.
_JOINERS = "\u200c\u200d"


def normalise_email(value: str, field: str = "email") -> str:
    """A deliverable-looking address, normalised (IDNA domain, lower case): the one form
    every credential, invitation and payment link stores and looks up."""
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


def _refuse_controls(value: str, field: str, *, allowed: str = "") -> None:
    for position, char in enumerate(value):
        if (
            char not in allowed
            and char not in _JOINERS
            and unicodedata.category(char) in _REFUSED_IN_LINE
        ):
            what = "a line break" if char in "\r\n\u2028\u2029" else "a control character"
            raise DomainError(
                "INVALID_TEXT",
                f"{field} must not contain {what} (U+{ord(char):04X} at position {position + 1}).",
                field,
            )


def _bounded(value: str, field: str, max_length: int | None, required: bool) -> str:
    if required and not value:
        raise DomainError("REQUIRED", f"{field} must not be empty.", field)
    if max_length is not None and len(value) > max_length:
        raise DomainError("TOO_LONG", f"{field} is longer than {max_length} characters.", field)
    return value


def check_name(value: str, field: str, *, max_length: int = 200, required: bool = True) -> str:
    """A single line of text: a person's name, a product name, a step or document label
    (anything that may end up in an e-mail subject). Any control or format character
    (CR, LF, TAB, NUL, bidi overrides, zero-width characters) inside it is refused
    (INVALID_TEXT); the text is NFC-normalised, trimmed (surrounding whitespace, tabs and
    line breaks included), and its runs of spaces collapse to one."""
    value = unicodedata.normalize("NFC", value).strip()
    _refuse_controls(value, field)
    return _bounded(" ".join(value.split()), field, max_length, required)


def check_text(
    value: str, field: str, *, max_length: int | None = 500, required: bool = True
) -> str:
    """Free text over several lines (a message, a reason, notes, a description): line
    breaks are kept (CRLF and CR become LF), every other control or format character is
    refused (INVALID_TEXT) once the text is trimmed; NFC-normalised."""
    value = unicodedata.normalize("NFC", value)
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = value.replace("\u2028", "\n").replace("\u2029", "\n").strip()
    _refuse_controls(value, field, allowed="\n")
    return _bounded(value, field, max_length, required)


def normalise_phone(value: str, field: str = "phone", *, region: str = PHONE_DEFAULT_REGION) -> str:
    """A valid phone number in E.164 (`+33612345678`); a number without `+` is read as one
    of `region` (French by default). Anything else is refused (INVALID_PHONE; TOO_LONG
    beyond PHONE_MAX characters)."""
    text = value.strip()
    if len(text) > PHONE_MAX:
        raise DomainError("TOO_LONG", f"{field} is longer than {PHONE_MAX} characters.", field)
    if not PHONE_RE.match(text):
        number = None
    else:
        try:
            number = phonenumbers.parse(text, None if text.startswith("+") else region)
        except phonenumbers.NumberParseException:
            number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise DomainError(
            "INVALID_PHONE",
            "Invalid phone number: give it with its country code (+33 6 12 34 56 78) "
            "or as a French number (06 12 34 56 78).",
            field,
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_code(value: str, field: str = "code") -> str:
    value = value.strip()
    if not CODE_RE.match(value):
        raise DomainError(
            "INVALID_CODE",
            "A code is 2 to 64 letters, digits, '_' or '-', starting with a letter or digit.",
            field,
        )
    return value.upper()
