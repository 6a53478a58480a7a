"""Errors raised by services; the API layer maps them to its three tiers.

- `DomainError`: an expected failure (validation, illegal transition, expired link). It is
  returned in the mutation payload as `userErrors { field message code }`.
- `AccessError` and subclasses: authentication, authorisation and not-found. They become
  top-level GraphQL errors with `extensions.code`.
- Anything else is unexpected: masked to the client, logged with the request id.
"""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    def __init__(self, code: str, message: str, field: Sequence[str] | str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        if isinstance(field, str):
            field = [field]
        self.field = list(field) if field else None


class ValidationFailed(DomainError):
    """Several user errors at once (for example every invalid field of an input)."""

    def __init__(self, errors: Sequence[DomainError]):
        super().__init__(errors[0].code, errors[0].message, errors[0].field)
        self.errors = list(errors)


class AccessError(Exception):
    code = "FORBIDDEN"
    default_message = "You are not allowed to do this."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message


class Unauthenticated(AccessError):
    code = "UNAUTHENTICATED"
    default_message = "Authentication required."


class Forbidden(AccessError):
    code = "FORBIDDEN"
    default_message = "You are not allowed to do this."


class NotFound(AccessError):
    code = "NOT_FOUND"
    default_message = "Not found."


class BadUserInput(AccessError):
    """A malformed argument outside a mutation payload (a bad cursor, a page too large)."""

    code = "BAD_USER_INPUT"
    default_message = "Invalid argument."
