"""The real bound of every plain list of objects in the schema, for the node budget
(app/schema/limits.py): what the catalogue, a setting or the list's own input lets it
hold. A list missing here is refused by the budget (fail closed);
tests/test_list_bounds.py checks every plain list of the schema has its bound.

Connections' `edges`/`nodes` are counted by their connection, and `userErrors` carry
scalars only: neither is listed.
"""

from __future__ import annotations

from app.models.enums import NotificationChannel
from app.services.catalogue_bounds import CatalogueBounds
from app.services.document_requests import MAX_REQUESTED_PER_STEP
from app.services.members import MAX_MEMBERS
from app.services.notifications.queries import MAX_MARK_IDS
from app.services.persisted_queries import MAX_TRUSTED_PER_CALL
from app.settings import get_settings

# Lists whose bound is the live catalogue's: the CatalogueBounds attribute that bounds them.
# A dossier's steps and documents are copied from its product's.
CATALOGUE_LISTS: dict[tuple[str, str], str] = {
    ("Dossier", "steps"): "steps_per_product",
    ("Dossier", "documents"): "document_types_per_product",
    ("StepInstance", "documents"): "document_types_per_step",
    ("DossierProgress", "nextActions"): "document_types_per_step",
    ("DocumentReminderEntry", "documents"): "document_types_per_step",
    ("Product", "steps"): "steps_per_product",
    ("Step", "documentTypes"): "document_types_per_step",
}


def static_list_bounds() -> dict[tuple[str, str], int]:
    """The lists bounded by a setting or by their input."""
    return {
        ("Message", "attachments"): get_settings().message_max_attachments,
        ("Message", "sharedFiles"): get_settings().message_max_attachments,
        ("Notification", "deliveries"): len(NotificationChannel),  # one per channel
        ("MarkNotificationsReadPayload", "notifications"): MAX_MARK_IDS,
        ("Dossier", "members"): MAX_MEMBERS,
        ("RegisterTrustedDocumentsPayload", "documents"): MAX_TRUSTED_PER_CALL,
    }


# Lists of documents also hold those agents requested on the fly: MAX_REQUESTED_PER_STEP
# more per step (a step's lists), per step of the product (a dossier's).
REQUESTED_IN_A_STEP = {
    ("StepInstance", "documents"),
    ("DossierProgress", "nextActions"),
    ("DocumentReminderEntry", "documents"),
}


def catalogue_list_bound(catalogue: CatalogueBounds, key: tuple[str, str]) -> int:
    bound = int(getattr(catalogue, CATALOGUE_LISTS[key]))
    if key in REQUESTED_IN_A_STEP:
        bound += MAX_REQUESTED_PER_STEP
    elif key == ("Dossier", "documents"):
        bound += MAX_REQUESTED_PER_STEP * catalogue.steps_per_product
    return bound


def is_counted_elsewhere(owner: str, field: str) -> bool:
    return (owner.endswith("Connection") and field in {"edges", "nodes"}) or field == "userErrors"
