"""Indexes that make a page cost its size (issue 14), built without locking writes.

* the review queue: waiting versions in (uploaded_at, id) order (partial: only the waiting
  ones, `awaiting_review_since` from 0008);
* the agents' dossier list, newest first;
* a dossier's chat in its exact order (created_at, id), so that a page is an index range
  with a LIMIT; it replaces the (dossier_id, created_at) index, which it covers;
* a user's / an agent's unread notifications, newest first (partial: only the unread).

Built as 0007 builds its own (`app.models.migration_ops`: CONCURRENTLY on PostgreSQL,
outside a transaction, idempotent, so running `migrate` again after a failure finishes).
"""

from tortoise import migrations
from tortoise.indexes import Index

from app.models.base import WhereIndex
from app.models.migration_ops import AddIndexConcurrently, RemoveIndexConcurrently


class Migration(migrations.Migration):
    dependencies = [('models', '0008_awaiting_review')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        AddIndexConcurrently(model_name='DocumentVersion', index=WhereIndex(fields=['uploaded_at', 'id'], name='idx_document_versions_awaiting', where='awaiting_review_since IS NOT NULL')),
        AddIndexConcurrently(model_name='Dossier', index=Index(fields=['created_at', 'id'], name='idx_dossiers_created')),
        AddIndexConcurrently(model_name='Message', index=Index(fields=['dossier_id', 'created_at', 'id'], name='idx_messages_dossier_order')),
        RemoveIndexConcurrently(model_name='Message', name='idx_messages_dossier_created'),
        AddIndexConcurrently(model_name='Notification', index=WhereIndex(fields=['user_id', 'created_at', 'id'], name='idx_notifications_user_unread', where='read_at IS NULL')),
        AddIndexConcurrently(model_name='Notification', index=WhereIndex(fields=['agent_id', 'created_at', 'id'], name='idx_notifications_agent_unread', where='read_at IS NULL')),
    ]
