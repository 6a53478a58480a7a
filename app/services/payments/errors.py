"""What goes wrong with payments: the codes of the expected failures (GraphQL's
`PaymentErrorCode`, in `userErrors`) and a Stripe event that refers to nothing of ours."""

from __future__ import annotations

from enum import StrEnum


class PaymentErrorCode(StrEnum):
    LINK_EXPIRED = "LINK_EXPIRED"
    LINK_USED = "LINK_USED"
    PRODUCT_INACTIVE = "PRODUCT_INACTIVE"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    WEAK_PASSWORD = "WEAK_PASSWORD"
    INVALID_EXPIRY = "INVALID_EXPIRY"
    ORDER_NOT_PAYABLE = "ORDER_NOT_PAYABLE"
    CHECKOUT_UNAVAILABLE = "CHECKOUT_UNAVAILABLE"
    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"
    INVALID_TEXT = "INVALID_TEXT"
    LINK_REVOKED = "LINK_REVOKED"
    LINK_FOR_ANOTHER_ACCOUNT = "LINK_FOR_ANOTHER_ACCOUNT"
    STAFF_EMAIL = "STAFF_EMAIL"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    NOT_A_CLIENT = "NOT_A_CLIENT"
    INVALID_PAYMENT_METHOD = "INVALID_PAYMENT_METHOD"
    DUPLICATE_REFERENCE = "DUPLICATE_REFERENCE"
    # refunds
    AMOUNT_TOO_LARGE = "AMOUNT_TOO_LARGE"
    ORDER_NOT_REFUNDABLE = "ORDER_NOT_REFUNDABLE"
    NOTHING_TO_REFUND = "NOTHING_TO_REFUND"
    REFUND_UNAVAILABLE = "REFUND_UNAVAILABLE"


class UnmatchedEvent(Exception):
    """A well-signed event that refers to nothing of ours (or to the wrong amount)."""
