"""Indexes found by `make bench-scale` (issue 14), built without locking writes:

* an agent's open steps by due date (partial: only the open ones): "my" review queue starts
  from them, and "my" overdue steps are a range of it;
* a dossier's unread messages (partial: only the unread), by sender: the unread counts of
  the dashboard read the unread messages, not the whole chat.

CONCURRENTLY on PostgreSQL, outside a transaction, idempotent (`app.models.migration_ops`).
"""

from tortoise import migrations

from app.models.base import WhereIndex
from app.models.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    dependencies = [('models', '0010_waiting_exact')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        AddIndexConcurrently(model_name='StepInstance', index=WhereIndex(fields=['assigned_to', 'due_at', 'id'], name='idx_step_instances_assigned_open', where='completed_at IS NULL')),
        AddIndexConcurrently(model_name='Message', index=WhereIndex(fields=['dossier_id', 'sender_type'], name='idx_messages_unread', where='read_at IS NULL')),
    ]
