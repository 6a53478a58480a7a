"""Tortoise models: one module per domain. No GraphQL or HTTP imports here."""

from app.models.agents import Agent
from app.models.audit import AccessEvent
from app.models.catalog import DocumentType, Product, ProductStep, Step, StepDocumentType
from app.models.desk import DossierNote, DossierTag
from app.models.documents import Document, DocumentReview, DocumentVersion
from app.models.dossiers import Dossier, DossierStatusHistory, StepInstance, StepReminder
from app.models.identity import AccountSession, AccountToken, Credential
from app.models.members import DossierMember
from app.models.messages import Message
from app.models.messaging import ChannelConsent, InboundMessage
from app.models.notifications import Event, Notification, NotificationDelivery
from app.models.payments import Order, PaymentLink, PaymentReminder, StripeEvent
from app.models.persisted import TrustedDocument
from app.models.privacy import DataExport, FileDeletion
from app.models.profiles import Profile
from app.models.references import DossierSequence
from app.models.refunds import Refund
from app.models.shared_files import SharedFile
from app.models.stripe_deferred import DeferredStripeEvent

__all__ = [
    "AccessEvent",
    "AccountSession",
    "AccountToken",
    "Agent",
    "ChannelConsent",
    "Credential",
    "DataExport",
    "DeferredStripeEvent",
    "Document",
    "DocumentReview",
    "DocumentType",
    "DocumentVersion",
    "Dossier",
    "DossierMember",
    "DossierNote",
    "DossierSequence",
    "DossierStatusHistory",
    "DossierTag",
    "Event",
    "FileDeletion",
    "InboundMessage",
    "Message",
    "Notification",
    "NotificationDelivery",
    "Order",
    "PaymentLink",
    "PaymentReminder",
    "Product",
    "ProductStep",
    "Profile",
    "Refund",
    "SharedFile",
    "Step",
    "StepDocumentType",
    "StepInstance",
    "StepReminder",
    "StripeEvent",
    "TrustedDocument",
]
