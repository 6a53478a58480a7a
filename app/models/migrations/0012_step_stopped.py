"""`step_instances.stopped_at` (issue 14): set while the step is open in a dossier that is
not running, so the overdue pages walk the open steps of running dossiers only
(`idx_step_instances_running_due`), not every step cancelled dossiers left open over the
years. Filled from the dossiers as they are, then the index, CONCURRENTLY on PostgreSQL
(outside a transaction: each operation commits on its own, and each can run again).
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from app.models.base import WhereIndex
from app.models.migration_ops import AddIndexConcurrently

BACKFILL = (
    'UPDATE "step_instances" SET "stopped_at" = CURRENT_TIMESTAMP '
    'WHERE "completed_at" IS NULL AND "stopped_at" IS NULL AND "dossier_id" IN ('
    'SELECT "id" FROM "dossiers" WHERE "status" NOT IN '
    "('CREATED', 'IN_PROGRESS', 'UNDER_REVIEW', 'CHANGES_REQUESTED'))"
)


class Migration(migrations.Migration):
    dependencies = [('models', '0011_agent_and_unread_indexes')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        ops.AddField(
            model_name='StepInstance',
            name='stopped_at',
            field=fields.DatetimeField(null=True),
        ),
        ops.RunSQL(BACKFILL, reverse_sql=ops.RunSQL.noop),
        AddIndexConcurrently(model_name='StepInstance', index=WhereIndex(fields=['due_at', 'id'], name='idx_step_instances_running_due', where='completed_at IS NULL AND stopped_at IS NULL')),
    ]
