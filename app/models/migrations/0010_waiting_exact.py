"""`document_versions.awaiting_review_since` becomes exactly the review queue (issue 14):
set only while the version is the current version of an UPLOADED document, on a step not
done, of a running dossier (kept so by app.services.waiting). 0008 filled it for every
current version of an UPLOADED document: the ones of dossiers on hold, cancelled or
completed, and of steps done, are cleared here. One transaction.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

CLEAR = (
    'UPDATE "document_versions" SET "awaiting_review_since" = NULL '
    'WHERE "awaiting_review_since" IS NOT NULL AND "document_id" NOT IN ('
    'SELECT "d"."id" FROM "documents" AS "d" '
    'JOIN "step_instances" AS "s" ON "s"."id" = "d"."step_instance_id" '
    'JOIN "dossiers" AS "x" ON "x"."id" = "d"."dossier_id" '
    'WHERE "s"."completed_at" IS NULL '
    "AND \"x\".\"status\" IN ('CREATED', 'IN_PROGRESS', 'UNDER_REVIEW', 'CHANGES_REQUESTED'))"
)


class Migration(migrations.Migration):
    dependencies = [('models', '0009_page_indexes')]

    initial = False

    operations = [
        ops.RunSQL(CLEAR, reverse_sql=ops.RunSQL.noop),
    ]
