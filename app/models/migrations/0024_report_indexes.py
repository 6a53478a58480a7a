"""Issue 19, item 4: the admins' reports read rows by when something happened (links made,
orders paid, refunds made, steps and dossiers completed, reviews made): an index on each of
those times, so a report over a month reads that month, not the table.

CONCURRENTLY on PostgreSQL, outside a transaction, idempotent (`app.models.migration_ops`).
"""

from tortoise import migrations
from tortoise.indexes import Index

from app.models.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    dependencies = [('models', '0023_notes_tags_owner')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        AddIndexConcurrently(model_name='DocumentReview', index=Index(fields=['reviewed_at'], name='idx_document_reviews_reviewed_at')),
        AddIndexConcurrently(model_name='Dossier', index=Index(fields=['completed_at'], name='idx_dossiers_completed_at')),
        AddIndexConcurrently(model_name='Order', index=Index(fields=['paid_at'], name='idx_orders_paid_at')),
        AddIndexConcurrently(model_name='PaymentLink', index=Index(fields=['created_at'], name='idx_payment_links_created_at')),
        AddIndexConcurrently(model_name='Refund', index=Index(fields=['created_at'], name='idx_refunds_created_at')),
        AddIndexConcurrently(model_name='StepInstance', index=Index(fields=['completed_at'], name='idx_step_instances_completed_at')),
    ]
