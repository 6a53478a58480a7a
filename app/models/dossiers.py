from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import CreatedModel, TimestampedModel, WhereIndex
from app.models.enums import ActorType, DossierKind, DossierStatus, ReminderKind, ReminderStatus

if TYPE_CHECKING:
    from app.models.agents import Agent
    from app.models.catalog import Product, Step
    from app.models.documents import Document
    from app.models.messages import Message
    from app.models.notifications import Notification
    from app.models.payments import Order
    from app.models.profiles import Profile


class Dossier(TimestampedModel):
    user: fields.ForeignKeyRelation[Profile] = fields.ForeignKeyField(
        "models.Profile", related_name="dossiers", on_delete=fields.CASCADE
    )
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="dossiers", on_delete=fields.RESTRICT
    )
    type = fields.CharEnumField(DossierKind, max_length=32)
    status = fields.CharEnumField(DossierStatus, max_length=32, default=DossierStatus.CREATED)
    # One side of the dossiers <-> step_instances cycle is a plain column: Tortoise cannot
    # build a foreign-key cycle. Its FOREIGN KEY constraint is added by a migration step of
    # its own on PostgreSQL (see migrations/0002_cyclic_foreign_keys.py).
    current_step_instance_id = fields.UUIDField(null=True)
    metadata: dict[str, Any] = fields.JSONField(default=dict)
    completed_at = fields.DatetimeField(null=True)
    # Beyond the ERD, retention (issue 19, app/services/retention.py): when the dossier
    # ended (COMPLETED or CANCELLED, set by the status change), when its client was told its
    # files would go, and when they went.
    ended_at = fields.DatetimeField(null=True)
    retention_notified_at = fields.DatetimeField(null=True)
    files_purged_at = fields.DatetimeField(null=True)
    # The agent responsible for the dossier (issue 19): assignDossierOwner.
    owner: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="owned_dossiers", null=True, on_delete=fields.SET_NULL
    )
    # The case number, e.g. PV-2026-000123 (issue 19, app/services/references.py).
    reference = fields.CharField(max_length=32, unique=True)

    # The foreign keys' columns (attributes Tortoise adds):
    user_id: uuid.UUID
    product_id: uuid.UUID
    owner_id: uuid.UUID | None
    # The other side of foreign keys to dossiers:
    status_history: fields.ReverseRelation[DossierStatusHistory]
    step_instances: fields.ReverseRelation[StepInstance]
    step_reminders: fields.ReverseRelation[StepReminder]
    documents: fields.ReverseRelation[Document]
    messages: fields.ReverseRelation[Message]
    orders: fields.ReverseRelation[Order]
    notifications: fields.ReverseRelation[Notification]

    class Meta:
        table = "dossiers"
        indexes = (
            Index(fields=("user_id",), name="idx_dossiers_user_id"),
            Index(fields=("status",), name="idx_dossiers_status"),
            Index(fields=("product_id",), name="idx_dossiers_product_id"),
            # The agents' list, newest first (with or without a filter, read in this order).
            Index(fields=("created_at", "id"), name="idx_dossiers_created"),
            # The reports' dossier durations: dossiers completed in a range of time.
            Index(fields=("completed_at",), name="idx_dossiers_completed_at"),
            # The retention passes: ended dossiers whose files are still kept, by end date
            # (the notice's own, so the notified ones drop out of it).
            WhereIndex(
                fields=("ended_at", "id"),
                name="idx_dossiers_retention_due",
                where="ended_at IS NOT NULL AND files_purged_at IS NULL",
            ),
            WhereIndex(
                fields=("ended_at", "id"),
                name="idx_dossiers_retention_notice_due",
                where="ended_at IS NOT NULL AND files_purged_at IS NULL"
                " AND retention_notified_at IS NULL",
            ),
            # An owner's dossiers newest first (filter ownerId / mine, the workload).
            Index(fields=("owner_id", "created_at", "id"), name="idx_dossiers_owner"),
        )


class DossierStatusHistory(CreatedModel):
    dossier: fields.ForeignKeyRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="status_history", on_delete=fields.CASCADE
    )
    old_status = fields.CharEnumField(DossierStatus, max_length=32, null=True)
    new_status = fields.CharEnumField(DossierStatus, max_length=32)
    changed_by_type = fields.CharEnumField(ActorType, max_length=16)
    changed_by_id = fields.UUIDField(null=True)
    reason = fields.TextField(null=True)
    metadata: dict[str, Any] = fields.JSONField(default=dict)

    dossier_id: uuid.UUID  # the foreign key's column (an attribute Tortoise adds)

    class Meta:
        table = "dossier_status_history"
        indexes = (Index(fields=("dossier_id",), name="idx_dossier_status_history_dossier_id"),)


class StepInstance(CreatedModel):
    dossier: fields.ForeignKeyRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="step_instances", on_delete=fields.CASCADE
    )
    step: fields.ForeignKeyRelation[Step] = fields.ForeignKeyField(
        "models.Step", related_name="step_instances", on_delete=fields.RESTRICT
    )
    # The ERD's column name (migration 0006); `makemigrations` echoes a no-op "Alter
    # field" for it every time (see tests/test_schema_db.py::_column_echo): delete it.
    assigned_to: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent",
        related_name="step_instances",
        null=True,
        on_delete=fields.SET_NULL,
        source_field="assigned_to",  # the ERD's column name (the attribute is assigned_to_id)
    )
    # Copied from product_steps when the dossier is created, so a later catalogue edit
    # never reshuffles a running dossier.
    position = fields.IntField(default=0)
    is_required = fields.BooleanField(default=True)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    skipped_at = fields.DatetimeField(null=True)  # set with completed_at when skipped
    due_at = fields.DatetimeField(null=True)  # started_at + estimated duration, movable
    # Set while the step is open in a dossier that is not running (on hold, cancelled,
    # completed; app.services.waiting): the overdue pages walk the open steps of running
    # dossiers only, however many stopped ones the years leave behind.
    stopped_at = fields.DatetimeField(null=True)
    # Copied from product_steps.estimated_duration_hours with position and is_required.
    estimated_duration_hours = fields.IntField(null=True)
    metadata: dict[str, Any] = fields.JSONField(default=dict)

    # The foreign keys' columns (attributes Tortoise adds):
    dossier_id: uuid.UUID
    step_id: uuid.UUID
    assigned_to_id: uuid.UUID | None
    # The other side of foreign keys to step instances:
    reminders: fields.ReverseRelation[StepReminder]
    documents: fields.ReverseRelation[Document]

    class Meta:
        table = "step_instances"
        indexes = (
            Index(fields=("assigned_to",), name="idx_step_instances_assigned_to"),
            Index(fields=("dossier_id",), name="idx_step_instances_dossier_id"),
            Index(fields=("step_id",), name="idx_step_instances_step_id"),
            # The reports' step durations: steps completed in a range of time.
            Index(fields=("completed_at",), name="idx_step_instances_completed_at"),
            # Open steps by due date (the overdue pages, the deadline sweeps).
            WhereIndex(
                fields=("due_at",), name="idx_step_instances_open_due", where="completed_at IS NULL"
            ),
            # Open steps of running dossiers by due date (the overdue pages).
            WhereIndex(
                fields=("due_at", "id"),
                name="idx_step_instances_running_due",
                where="completed_at IS NULL AND stopped_at IS NULL",
            ),
            # An agent's open steps by due date ("mine" in the review queue and overdue).
            WhereIndex(
                fields=("assigned_to", "due_at", "id"),
                name="idx_step_instances_assigned_open",
                where="completed_at IS NULL",
            ),
        )


class StepReminder(CreatedModel):
    """A planned notice about one step (beyond the ERD): a reminder to the client of the
    documents still missing, or an escalation to agents when the step is overdue.

    Planned when the step starts (and re-planned when its due date moves), one row per slot
    of the schedule; the worker sends each at most once: `(step_instance, slot)` is unique
    and a row leaves PENDING exactly once, under its dossier's row lock.
    """

    dossier: fields.ForeignKeyRelation[Dossier] = fields.ForeignKeyField(
        "models.Dossier", related_name="step_reminders", on_delete=fields.CASCADE
    )
    step_instance: fields.ForeignKeyRelation[StepInstance] = fields.ForeignKeyField(
        "models.StepInstance", related_name="reminders", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(ReminderKind, max_length=16)
    # The schedule entry, e.g. "start+48h", or "due-24h@2030-01-31T12:00:00Z" (slots
    # relative to the due date name it: moving the due date plans new slots).
    slot = fields.CharField(max_length=96)
    scheduled_for = fields.DatetimeField()
    status = fields.CharEnumField(ReminderStatus, max_length=16, default=ReminderStatus.PENDING)
    processed_at = fields.DatetimeField(null=True)
    skip_reason = fields.CharField(max_length=32, null=True)
    event_id = fields.UUIDField(null=True)  # the event that recorded the sending

    # The foreign keys' columns (attributes Tortoise adds):
    dossier_id: uuid.UUID
    step_instance_id: uuid.UUID

    class Meta:
        table = "step_reminders"
        unique_together = (("step_instance", "slot"),)
        indexes = (
            Index(fields=("status", "scheduled_for"), name="idx_step_reminders_due"),
            Index(fields=("dossier_id",), name="idx_step_reminders_dossier_id"),
        )
