"""Indexes for years of data (issue 14): every foreign key, and the hot paths.

Every foreign-key column now leads an index (tests/test_schema_db.py
::test_every_foreign_key_leads_an_index, with its short allow-list of the two that need
none), so a lookup from the parent, and the parent's DELETE (which checks or cascades to
the referencing rows), reads an index instead of the whole table. Beside them, the
queries that run all the time on tables that only grow:

* the outbox relay's batch: unprocessed events, oldest first (partial, `processed_at IS
  NULL`: the index holds only the few rows still waiting);
* events of some types, newest first;
* a user's / an agent's notifications, newest first;
* open steps by due date (partial, `completed_at IS NULL`);
* payment reminders neither sent nor cancelled, by due time (partial).

The partial ones are `app.models.base.WhereIndex` in the models and here, so the migration
state still matches the models (`test_migrations_match_the_models`).

On PostgreSQL every index is built with `CREATE INDEX CONCURRENTLY`, which does not block
writes to the table while it is built, but cannot run inside a transaction: this
migration is `atomic = False`, which Tortoise's executor honours (it opens no transaction
around the migration, nor around each operation), and each statement is sent on its own.
Without the transaction a failure part-way leaves the indexes built so far (and, from
CONCURRENTLY, possibly an INVALID one) and the migration unrecorded; so every statement is
`IF NOT EXISTS`, an INVALID leftover of the same name is dropped first, and running
`migrate` again finishes the job (`app.models.migration_ops`). SQLite has no CONCURRENTLY;
there it is a plain `CREATE INDEX IF NOT EXISTS`.
"""

from tortoise import migrations
from tortoise.indexes import Index

from app.models.base import WhereIndex
from app.models.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    dependencies = [('models', '0006_erd_column_names')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        # Foreign keys.
        AddIndexConcurrently(model_name='Document', index=Index(fields=['document_type_id'], name='idx_documents_document_type_id')),
        AddIndexConcurrently(model_name='Document', index=Index(fields=['step_instance_id'], name='idx_documents_step_instance_id')),
        AddIndexConcurrently(model_name='Dossier', index=Index(fields=['product_id'], name='idx_dossiers_product_id')),
        AddIndexConcurrently(model_name='StepInstance', index=Index(fields=['step_id'], name='idx_step_instances_step_id')),
        AddIndexConcurrently(model_name='Notification', index=Index(fields=['dossier_id'], name='idx_notifications_dossier_id')),
        AddIndexConcurrently(model_name='Notification', index=Index(fields=['event_id'], name='idx_notifications_event_id')),
        AddIndexConcurrently(model_name='PaymentLink', index=Index(fields=['product_id'], name='idx_payment_links_product_id')),
        AddIndexConcurrently(model_name='PaymentLink', index=Index(fields=['used_by'], name='idx_payment_links_used_by')),
        AddIndexConcurrently(model_name='Order', index=Index(fields=['product_id'], name='idx_orders_product_id')),
        AddIndexConcurrently(model_name='Order', index=Index(fields=['payment_link_id'], name='idx_orders_payment_link_id')),
        AddIndexConcurrently(model_name='Order', index=Index(fields=['dossier_id'], name='idx_orders_dossier_id')),
        AddIndexConcurrently(model_name='PaymentReminder', index=Index(fields=['user_id'], name='idx_payment_reminders_user_id')),
        # Hot paths.
        AddIndexConcurrently(model_name='Event', index=WhereIndex(fields=['created_at', 'id'], name='idx_events_unprocessed', where='processed_at IS NULL')),
        AddIndexConcurrently(model_name='Event', index=Index(fields=['event_type', 'created_at', 'id'], name='idx_events_type_created')),
        AddIndexConcurrently(model_name='Notification', index=Index(fields=['user_id', 'created_at', 'id'], name='idx_notifications_user_created')),
        AddIndexConcurrently(model_name='Notification', index=Index(fields=['agent_id', 'created_at', 'id'], name='idx_notifications_agent_created')),
        AddIndexConcurrently(model_name='StepInstance', index=WhereIndex(fields=['due_at'], name='idx_step_instances_open_due', where='completed_at IS NULL')),
        AddIndexConcurrently(model_name='PaymentReminder', index=WhereIndex(fields=['scheduled_for', 'id'], name='idx_payment_reminders_unsent_due', where='sent_at IS NULL AND cancelled_at IS NULL')),
    ]
