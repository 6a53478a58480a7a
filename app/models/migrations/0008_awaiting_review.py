"""`document_versions.awaiting_review_since`: set (to its upload time) while a version is
the current version of an UPLOADED document, so the review queue can walk the waiting versions in order through a
partial index (0009) instead of building and sorting the whole queue (issue 14).

Filled from the documents as they are: the current version of every UPLOADED document.
One transaction (the column and its values appear together).
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

BACKFILL = (
    'UPDATE "document_versions" SET "awaiting_review_since" = "uploaded_at" WHERE "id" IN '
    '(SELECT "current_version_id" FROM "documents" WHERE "status" = \'UPLOADED\' '
    'AND "current_version_id" IS NOT NULL)'
)


class Migration(migrations.Migration):
    dependencies = [('models', '0007_indexes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='DocumentVersion',
            name='awaiting_review_since',
            field=fields.DatetimeField(null=True),
        ),
        ops.RunSQL(BACKFILL, reverse_sql=ops.RunSQL.noop),
    ]
