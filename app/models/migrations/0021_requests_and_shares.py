"""Issue 18: documents requested on the fly (ad-hoc ones without a document type: its
column becomes nullable), waived documents (WAIVED), and files the firm shares with a
dossier (shared_files)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models.migration_ops import AlterEnumMembers, DropNotNull
from app.models.enums import DocumentStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0020_members')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SharedFile',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('dossier', fields.ForeignKeyField('models.Dossier', source_field='dossier_id', db_constraint=True, to_field='id', related_name='shared_files', on_delete=OnDelete.CASCADE)),
                ('shared_by', fields.ForeignKeyField('models.Agent', source_field='shared_by_id', null=True, db_constraint=True, to_field='id', related_name='shared_files', on_delete=OnDelete.SET_NULL)),
                ('file_name', fields.TextField(unique=False)),
                ('mime_type', fields.CharField(max_length=255)),
                ('file_size_bytes', fields.BigIntField()),
                ('storage_key', fields.TextField(unique=False)),
                ('note', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'shared_files', 'app': 'models', 'indexes': [Index(fields=['dossier_id', 'created_at', 'id'], name='idx_shared_files_dossier'), Index(fields=['shared_by_id'], name='idx_shared_files_shared_by_id')], 'pk_attr': 'id'},
            bases=['CreatedModel'],
        ),
        # Nullable for ad-hoc requests, in place (see DropNotNull: no table rebuild).
        DropNotNull(
            model_name='Document',
            name='document_type',
            field=fields.ForeignKeyField('models.DocumentType', source_field='document_type_id', null=True, db_constraint=True, to_field='id', related_name='documents', on_delete=OnDelete.RESTRICT),
            table='documents',
            column='document_type_id',
        ),
        AlterEnumMembers(
            model_name='Document',
            name='status',
            field=fields.CharEnumField(default=DocumentStatus.PENDING, description='PENDING: PENDING\nUPLOADED: UPLOADED\nAPPROVED: APPROVED\nCHANGES_REQUESTED: CHANGES_REQUESTED\nREJECTED: REJECTED\nWAIVED: WAIVED', enum_type=DocumentStatus, max_length=32),
        ),
        ops.AddField(
            model_name='Document',
            name='allowed_extensions',
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Document',
            name='due_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Document',
            name='label',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Document',
            name='max_file_size_mb',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Document',
            name='note',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Document',
            name='requested_by_id',
            field=fields.UUIDField(null=True),
        ),
        ops.AddField(
            model_name='Document',
            name='waived_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Document',
            name='waived_by_id',
            field=fields.UUIDField(null=True),
        ),
        ops.AddField(
            model_name='Document',
            name='waived_reason',
            field=fields.TextField(null=True, unique=False),
        ),
    ]
