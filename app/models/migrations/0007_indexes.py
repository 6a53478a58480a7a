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
`migrate` again finishes the job. SQLite has no CONCURRENTLY; there it is a plain
`CREATE INDEX IF NOT EXISTS` (SQLite supports partial indexes as well).
"""

from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from app.models.base import WhereIndex

_INVALID_INDEX_SQL = (
    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = $1 AND NOT i.indisvalid"
)


def _create_sql(table: str, index: Index, *, postgres: bool) -> str:
    columns = ", ".join(f'"{column}"' for column in index.fields)
    concurrently = "CONCURRENTLY " if postgres else ""
    return (
        f'CREATE INDEX {concurrently}IF NOT EXISTS "{index.name}" ON "{table}" ({columns})'
        f"{index.extra}"
    )


class AddIndexConcurrently(ops.AddIndex):
    """AddIndex (the migration state) whose database step is `CREATE INDEX CONCURRENTLY
    IF NOT EXISTS` on PostgreSQL, `CREATE INDEX IF NOT EXISTS` on SQLite."""

    def describe(self) -> str:
        return f"Add index {self.index.name} to {self.model_name}"

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        model = new_state.apps.get_model(f"{app_label}.{self.model_name}")
        postgres = state_editor.client.capabilities.dialect == "postgres"
        if postgres and not state_editor.collect_sql:
            # A CONCURRENTLY build that failed leaves an INVALID index behind, which
            # IF NOT EXISTS would keep: drop it, so that this run builds it again.
            invalid = await state_editor.client.execute_query_dict(
                _INVALID_INDEX_SQL, [self.index.name]
            )
            if invalid:
                await state_editor._run_sql(f'DROP INDEX CONCURRENTLY IF EXISTS "{self.index.name}"')
        sql = _create_sql(model._meta.db_table, self.index, postgres=postgres)
        await state_editor._run_sql(sql)  # what ops.RunSQL runs (and sqlmigrate prints)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        postgres = state_editor.client.capabilities.dialect == "postgres"
        concurrently = "CONCURRENTLY " if postgres else ""
        await state_editor._run_sql(f'DROP INDEX {concurrently}IF EXISTS "{self.index.name}"')


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
