"""Issue 19: the access audit (access_events, its own table: never relayed like the
events outbox) and the retention of uploaded files: document_versions.purged_at, and on
dossiers ended_at (backfilled for the dossiers that ended before: completed_at, else the
status change that ended them), retention_notified_at and files_purged_at, with the two
partial indexes the worker's passes walk, built concurrently."""

from tortoise import migrations
from app.models.migration_ops import AddIndexConcurrently
from tortoise.migrations import operations as ops
from app.models.base import WhereIndex
from app.models.enums import AccessKind, ActorType
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

BACKFILL_ENDED_AT = """
UPDATE dossiers SET ended_at = COALESCE(
    completed_at,
    (SELECT MAX(h.created_at) FROM dossier_status_history h
     WHERE h.dossier_id = dossiers.id AND h.new_status IN ('COMPLETED', 'CANCELLED')),
    updated_at
)
WHERE status IN ('COMPLETED', 'CANCELLED') AND ended_at IS NULL
"""


class Migration(migrations.Migration):
    dependencies = [('models', '0024_report_indexes')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        ops.CreateModel(
            name='AccessEvent',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('kind', fields.CharEnumField(description='DOSSIER_VIEWED: DOSSIER_VIEWED\nDOCUMENT_DOWNLOADED: DOCUMENT_DOWNLOADED\nSHARED_FILE_DOWNLOADED: SHARED_FILE_DOWNLOADED', enum_type=AccessKind, max_length=32)),
                ('actor_type', fields.CharEnumField(description='USER: USER\nAGENT: AGENT\nSYSTEM: SYSTEM', enum_type=ActorType, max_length=16)),
                ('actor_id', fields.UUIDField(null=True)),
                ('client_id', fields.UUIDField(null=True)),
                ('dossier_id', fields.UUIDField(null=True)),
                ('document_id', fields.UUIDField(null=True)),
                ('version_id', fields.UUIDField(null=True)),
                ('ip_address', fields.CharField(null=True, max_length=64)),
                ('user_agent', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'access_events', 'app': 'models', 'indexes': [Index(fields=['client_id', 'occurred_at', 'id'], name='idx_access_events_client'), Index(fields=['dossier_id', 'occurred_at', 'id'], name='idx_access_events_dossier'), WhereIndex(fields=['document_id', 'occurred_at', 'id'], name='idx_access_events_document', where='document_id IS NOT NULL')], 'pk_attr': 'id'},
            bases=['UUIDModel'],
        ),
        ops.AddField(
            model_name='DocumentVersion',
            name='purged_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Dossier',
            name='ended_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Dossier',
            name='files_purged_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Dossier',
            name='retention_notified_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.RunSQL(BACKFILL_ENDED_AT, reverse_sql=ops.RunSQL.noop),
        AddIndexConcurrently(model_name='Dossier', index=WhereIndex(fields=['ended_at', 'id'], name='idx_dossiers_retention_due', where='ended_at IS NOT NULL AND files_purged_at IS NULL')),
        AddIndexConcurrently(model_name='Dossier', index=WhereIndex(fields=['ended_at', 'id'], name='idx_dossiers_retention_notice_due', where='ended_at IS NOT NULL AND files_purged_at IS NULL AND retention_notified_at IS NULL')),
    ]
