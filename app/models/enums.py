"""Enums shared by the database and the GraphQL schema (defined once, UPPER names)."""

from __future__ import annotations

from enum import StrEnum


class UserStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class AgentRole(StrEnum):
    AGENT = "AGENT"
    ADMIN = "ADMIN"


class Locale(StrEnum):
    FR = "fr"
    EN = "en"


class DossierKind(StrEnum):
    IMMIGRATION = "IMMIGRATION"
    COMPANY_FORMATION = "COMPANY_FORMATION"
    TAX = "TAX"
    LEGAL = "LEGAL"
    OTHER = "OTHER"


class DossierStatus(StrEnum):
    CREATED = "CREATED"
    IN_PROGRESS = "IN_PROGRESS"
    UNDER_REVIEW = "UNDER_REVIEW"
    CHANGES_REQUESTED = "CHANGES_REQUESTED"
    ON_HOLD = "ON_HOLD"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


# The workflow runs (uploads, reviews, step moves, reminders) only in these statuses.
ACTIVE_DOSSIER_STATUSES = frozenset(
    {
        DossierStatus.CREATED,
        DossierStatus.IN_PROGRESS,
        DossierStatus.UNDER_REVIEW,
        DossierStatus.CHANGES_REQUESTED,
    }
)


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    REFUNDED = "REFUNDED"
    CANCELLED = "CANCELLED"


class PaymentMethod(StrEnum):
    """How an order was paid: online (Stripe Checkout), or recorded by an agent."""

    CHECKOUT = "CHECKOUT"
    BANK_TRANSFER = "BANK_TRANSFER"
    CASH = "CASH"
    WAIVED = "WAIVED"


class RefundReason(StrEnum):
    """Why money went back; the first three are Stripe's own reasons."""

    REQUESTED_BY_CUSTOMER = "REQUESTED_BY_CUSTOMER"
    DUPLICATE = "DUPLICATE"
    FRAUDULENT = "FRAUDULENT"
    OTHER = "OTHER"


class NotificationChannel(StrEnum):
    IN_APP = "IN_APP"
    EMAIL = "EMAIL"
    SMS = "SMS"
    WHATSAPP = "WHATSAPP"


class ConsentStatus(StrEnum):
    """A client's consent to be written to on a phone channel (issue 20)."""

    OPTED_IN = "OPTED_IN"
    OPTED_OUT = "OPTED_OUT"


class ConsentSource(StrEnum):
    """How a consent (or its withdrawal) was given."""

    APP = "APP"  # the client, in the app (recordWhatsappOptIn)
    AGENT = "AGENT"  # an agent recording the client's verbal consent
    INBOUND = "INBOUND"  # the client wrote to us on that channel first
    KEYWORD = "KEYWORD"  # STOP / START sent as a whole message


class InboundOutcome(StrEnum):
    """What became of an SMS or WhatsApp message a client (or anyone) sent us."""

    ATTACHED = "ATTACHED"  # posted in the chat of the sender's current dossier
    UNKNOWN_SENDER = "UNKNOWN_SENDER"  # no client has this number: kept for admins only
    AMBIGUOUS_SENDER = "AMBIGUOUS_SENDER"  # several clients share it: kept for admins only
    NO_DOSSIER = "NO_DOSSIER"  # a client without any dossier: kept for admins only
    OPTED_OUT = "OPTED_OUT"  # a STOP keyword: the channel is opted out
    OPTED_IN = "OPTED_IN"  # a START keyword: the channel is opted in again


class NotificationStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"  # the provider accepted it (Twilio: queued, sending, sent)
    FAILED = "FAILED"
    # Issue 20, delivery receipts (Twilio's status callbacks, app.services.receipts):
    DELIVERED = "DELIVERED"  # the handset (or WhatsApp) has it
    READ = "READ"  # WhatsApp: the recipient opened it
    UNDELIVERED = "UNDELIVERED"  # the carrier could not deliver it


class ActorType(StrEnum):
    USER = "USER"
    AGENT = "AGENT"
    SYSTEM = "SYSTEM"


class AccessKind(StrEnum):
    """What an access event records (app/models/audit.py)."""

    DOSSIER_VIEWED = "DOSSIER_VIEWED"  # `dossier(id:)` by an agent or admin
    DOCUMENT_DOWNLOADED = "DOCUMENT_DOWNLOADED"  # a signed download of a document version
    SHARED_FILE_DOWNLOADED = "SHARED_FILE_DOWNLOADED"  # a file the firm shared with a dossier


class DocumentStatus(StrEnum):
    PENDING = "PENDING"
    UPLOADED = "UPLOADED"
    APPROVED = "APPROVED"
    CHANGES_REQUESTED = "CHANGES_REQUESTED"
    REJECTED = "REJECTED"
    WAIVED = "WAIVED"  # an agent no longer needs it: the step completes without it


class ReminderKind(StrEnum):
    """What a planned step notice is: a nudge to the client, or an escalation to agents."""

    DOCUMENTS = "DOCUMENTS"  # the client: documents still missing in the current step
    ESCALATION = "ESCALATION"  # the step's agent (or every agent): the step is overdue


class ReminderStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    SKIPPED = "SKIPPED"  # its time came but there was nothing to send (see skip_reason)


class ReviewStatus(StrEnum):
    APPROVED = "APPROVED"
    CHANGES_REQUESTED = "CHANGES_REQUESTED"
    REJECTED = "REJECTED"


class DataExportStatus(StrEnum):
    REQUESTED = "REQUESTED"
    BUILDING = "BUILDING"
    READY = "READY"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


# An export still on its way: a client has at most one at a time.
PENDING_EXPORT_STATUSES = frozenset({DataExportStatus.REQUESTED, DataExportStatus.BUILDING})


class AccountTokenPurpose(StrEnum):
    PASSWORD_RESET = "PASSWORD_RESET"
    INVITATION = "INVITATION"


class EventType(StrEnum):
    # identity and catalogue
    PROFILE_CREATED = "PROFILE_CREATED"
    PROFILE_UPDATED = "PROFILE_UPDATED"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"
    AGENT_CREATED = "AGENT_CREATED"
    AGENT_UPDATED = "AGENT_UPDATED"
    PRODUCT_CREATED = "PRODUCT_CREATED"
    PRODUCT_UPDATED = "PRODUCT_UPDATED"
    STEP_CREATED = "STEP_CREATED"
    PRODUCT_STEPS_SET = "PRODUCT_STEPS_SET"
    DOCUMENT_TYPE_CREATED = "DOCUMENT_TYPE_CREATED"
    DOCUMENT_TYPE_UPDATED = "DOCUMENT_TYPE_UPDATED"
    STEP_UPDATED = "STEP_UPDATED"
    PRODUCT_ARCHIVED = "PRODUCT_ARCHIVED"
    PRODUCT_UNARCHIVED = "PRODUCT_UNARCHIVED"
    STEP_ARCHIVED = "STEP_ARCHIVED"
    STEP_UNARCHIVED = "STEP_UNARCHIVED"
    DOCUMENT_TYPE_ARCHIVED = "DOCUMENT_TYPE_ARCHIVED"
    DOCUMENT_TYPE_UNARCHIVED = "DOCUMENT_TYPE_UNARCHIVED"
    DOCUMENT_TYPE_ATTACHED = "DOCUMENT_TYPE_ATTACHED"
    DOCUMENT_TYPE_DETACHED = "DOCUMENT_TYPE_DETACHED"
    # account security (the account audit trail: entity agent/profile)
    LOGIN_SUCCEEDED = "LOGIN_SUCCEEDED"
    LOGIN_FAILED = "LOGIN_FAILED"
    SESSION_REVOKED = "SESSION_REVOKED"
    PASSWORD_RESET_REQUESTED = "PASSWORD_RESET_REQUESTED"
    PASSWORD_RESET = "PASSWORD_RESET"
    TWO_FACTOR_ENABLED = "TWO_FACTOR_ENABLED"
    TWO_FACTOR_DISABLED = "TWO_FACTOR_DISABLED"
    RECOVERY_CODE_USED = "RECOVERY_CODE_USED"
    INVITATION_SENT = "INVITATION_SENT"
    INVITATION_ACCEPTED = "INVITATION_ACCEPTED"
    # payments
    PAYMENT_LINK_CREATED = "PAYMENT_LINK_CREATED"
    PAYMENT_LINK_USED = "PAYMENT_LINK_USED"
    PAYMENT_LINK_REVOKED = "PAYMENT_LINK_REVOKED"
    PAYMENT_LINK_RESENT = "PAYMENT_LINK_RESENT"
    ORDER_CREATED = "ORDER_CREATED"
    CHECKOUT_STARTED = "CHECKOUT_STARTED"
    PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    PAYMENT_REMINDER_SENT = "PAYMENT_REMINDER_SENT"
    PAYMENT_REMINDER_CLICKED = "PAYMENT_REMINDER_CLICKED"
    ORDER_REFUNDED = "ORDER_REFUNDED"  # all of it: the order is REFUNDED
    ORDER_PARTIALLY_REFUNDED = "ORDER_PARTIALLY_REFUNDED"  # part of it: the order stays PAID
    # workflow
    DOSSIER_CREATED = "DOSSIER_CREATED"
    DOSSIER_STATUS_CHANGED = "DOSSIER_STATUS_CHANGED"
    DOSSIER_COMPLETED = "DOSSIER_COMPLETED"
    DOSSIER_CANCELLED = "DOSSIER_CANCELLED"
    DOSSIER_MEMBER_ADDED = "DOSSIER_MEMBER_ADDED"
    DOSSIER_MEMBER_REMOVED = "DOSSIER_MEMBER_REMOVED"
    # the agents' desk (issue 19): staff-only, never on a client's topic or notification
    DOSSIER_NOTE_ADDED = "DOSSIER_NOTE_ADDED"
    DOSSIER_NOTE_EDITED = "DOSSIER_NOTE_EDITED"
    DOSSIER_NOTE_DELETED = "DOSSIER_NOTE_DELETED"
    DOSSIER_TAGGED = "DOSSIER_TAGGED"
    DOSSIER_UNTAGGED = "DOSSIER_UNTAGGED"
    DOSSIER_OWNER_ASSIGNED = "DOSSIER_OWNER_ASSIGNED"
    STEP_STARTED = "STEP_STARTED"
    STEP_COMPLETED = "STEP_COMPLETED"
    STEP_SKIPPED = "STEP_SKIPPED"
    STEP_ASSIGNED = "STEP_ASSIGNED"
    STEP_DUE_DATE_CHANGED = "STEP_DUE_DATE_CHANGED"
    STEP_OVERDUE = "STEP_OVERDUE"
    DOCUMENT_REMINDER_SENT = "DOCUMENT_REMINDER_SENT"
    # documents
    DOCUMENT_UPLOADED = "DOCUMENT_UPLOADED"
    DOCUMENT_APPROVED = "DOCUMENT_APPROVED"
    DOCUMENT_CHANGES_REQUESTED = "DOCUMENT_CHANGES_REQUESTED"
    DOCUMENT_REJECTED = "DOCUMENT_REJECTED"
    # Documents that expire (issue 18): a reminder at a margin before the expiry, and the
    # renewal payment link offered at the first one.
    DOCUMENT_EXPIRING = "DOCUMENT_EXPIRING"
    DOSSIER_RENEWAL_OFFERED = "DOSSIER_RENEWAL_OFFERED"
    DOCUMENT_REQUESTED = "DOCUMENT_REQUESTED"  # an agent added a document to an open step
    DOCUMENT_WAIVED = "DOCUMENT_WAIVED"
    FILE_SHARED = "FILE_SHARED"  # an agent shared a file with the dossier
    # Retention (issue 19): the client told the files go, then the files deleted.
    DOSSIER_RETENTION_NOTICE = "DOSSIER_RETENTION_NOTICE"
    DOSSIER_FILES_PURGED = "DOSSIER_FILES_PURGED"
    # chat
    MESSAGE_SENT = "MESSAGE_SENT"
    MESSAGES_READ = "MESSAGES_READ"
    # the GDPR (issue 19): right of access (exports) and right to erasure
    DATA_EXPORT_REQUESTED = "DATA_EXPORT_REQUESTED"
    DATA_EXPORT_READY = "DATA_EXPORT_READY"
    DATA_EXPORT_FAILED = "DATA_EXPORT_FAILED"
    CLIENT_ERASED = "CLIENT_ERASED"
