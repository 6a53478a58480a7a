"""Issue 19, item 3: the agents' desk. Internal notes (dossier_notes), tags
(dossier_tags, unique per dossier, indexed by name for the list's filter), the dossier's
owner (dossiers.owner_id, its index built concurrently on PostgreSQL), and the event types
DOSSIER_NOTE_ADDED/EDITED/DELETED, DOSSIER_TAGGED/UNTAGGED and DOSSIER_OWNER_ASSIGNED."""

from tortoise import migrations
from app.models.migration_ops import AddIndexConcurrently, AlterEnumMembers
from tortoise.migrations import operations as ops
from app.models.enums import EventType
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0022_references_and_search')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        ops.CreateModel(
            name='DossierNote',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('dossier', fields.ForeignKeyField('models.Dossier', source_field='dossier_id', db_constraint=True, to_field='id', related_name='notes', on_delete=OnDelete.CASCADE)),
                ('author', fields.ForeignKeyField('models.Agent', source_field='author_id', null=True, db_constraint=True, to_field='id', related_name='dossier_notes', on_delete=OnDelete.SET_NULL)),
                ('body', fields.TextField(unique=False)),
                ('pinned', fields.BooleanField(default=False)),
                ('edited_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'dossier_notes', 'app': 'models', 'indexes': [Index(fields=['dossier_id', 'created_at', 'id'], name='idx_dossier_notes_dossier'), Index(fields=['author_id'], name='idx_dossier_notes_author_id')], 'pk_attr': 'id', 'table_description': "An agent's internal note on a dossier: edited by its author only, deleted (for"},
            bases=['TimestampedModel'],
        ),
        ops.CreateModel(
            name='DossierTag',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('dossier', fields.ForeignKeyField('models.Dossier', source_field='dossier_id', db_constraint=True, to_field='id', related_name='tags', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=40)),
            ],
            options={'table': 'dossier_tags', 'app': 'models', 'unique_together': (('dossier', 'name'),), 'indexes': [Index(fields=['name', 'dossier_id'], name='idx_dossier_tags_name')], 'pk_attr': 'id', 'table_description': 'A free-form tag on a dossier, stored normalised (trimmed, single spaces, lower'},
            bases=['CreatedModel'],
        ),
        ops.AddField(
            model_name='Dossier',
            name='owner',
            field=fields.ForeignKeyField('models.Agent', source_field='owner_id', null=True, db_constraint=True, to_field='id', related_name='owned_dossiers', on_delete=OnDelete.SET_NULL),
        ),
        AddIndexConcurrently(
            model_name='Dossier',
            index=Index(fields=['owner_id', 'created_at', 'id'], name='idx_dossiers_owner'),
        ),
        AlterEnumMembers(
            model_name='Event',
            name='event_type',
            field=fields.CharEnumField(description='PROFILE_CREATED: PROFILE_CREATED\nPROFILE_UPDATED: PROFILE_UPDATED\nPASSWORD_CHANGED: PASSWORD_CHANGED\nAGENT_CREATED: AGENT_CREATED\nAGENT_UPDATED: AGENT_UPDATED\nPRODUCT_CREATED: PRODUCT_CREATED\nPRODUCT_UPDATED: PRODUCT_UPDATED\nSTEP_CREATED: STEP_CREATED\nPRODUCT_STEPS_SET: PRODUCT_STEPS_SET\nDOCUMENT_TYPE_CREATED: DOCUMENT_TYPE_CREATED\nDOCUMENT_TYPE_UPDATED: DOCUMENT_TYPE_UPDATED\nSTEP_UPDATED: STEP_UPDATED\nPRODUCT_ARCHIVED: PRODUCT_ARCHIVED\nPRODUCT_UNARCHIVED: PRODUCT_UNARCHIVED\nSTEP_ARCHIVED: STEP_ARCHIVED\nSTEP_UNARCHIVED: STEP_UNARCHIVED\nDOCUMENT_TYPE_ARCHIVED: DOCUMENT_TYPE_ARCHIVED\nDOCUMENT_TYPE_UNARCHIVED: DOCUMENT_TYPE_UNARCHIVED\nDOCUMENT_TYPE_ATTACHED: DOCUMENT_TYPE_ATTACHED\nDOCUMENT_TYPE_DETACHED: DOCUMENT_TYPE_DETACHED\nLOGIN_SUCCEEDED: LOGIN_SUCCEEDED\nLOGIN_FAILED: LOGIN_FAILED\nSESSION_REVOKED: SESSION_REVOKED\nPASSWORD_RESET_REQUESTED: PASSWORD_RESET_REQUESTED\nPASSWORD_RESET: PASSWORD_RESET\nTWO_FACTOR_ENABLED: TWO_FACTOR_ENABLED\nTWO_FACTOR_DISABLED: TWO_FACTOR_DISABLED\nRECOVERY_CODE_USED: RECOVERY_CODE_USED\nINVITATION_SENT: INVITATION_SENT\nINVITATION_ACCEPTED: INVITATION_ACCEPTED\nPAYMENT_LINK_CREATED: PAYMENT_LINK_CREATED\nPAYMENT_LINK_USED: PAYMENT_LINK_USED\nPAYMENT_LINK_REVOKED: PAYMENT_LINK_REVOKED\nPAYMENT_LINK_RESENT: PAYMENT_LINK_RESENT\nORDER_CREATED: ORDER_CREATED\nCHECKOUT_STARTED: CHECKOUT_STARTED\nPAYMENT_SUCCEEDED: PAYMENT_SUCCEEDED\nPAYMENT_FAILED: PAYMENT_FAILED\nPAYMENT_REMINDER_SENT: PAYMENT_REMINDER_SENT\nPAYMENT_REMINDER_CLICKED: PAYMENT_REMINDER_CLICKED\nORDER_REFUNDED: ORDER_REFUNDED\nORDER_PARTIALLY_REFUNDED: ORDER_PARTIALLY_REFUNDED\nDOSSIER_CREATED: DOSSIER_CREATED\nDOSSIER_STATUS_CHANGED: DOSSIER_STATUS_CHANGED\nDOSSIER_COMPLETED: DOSSIER_COMPLETED\nDOSSIER_CANCELLED: DOSSIER_CANCELLED\nDOSSIER_MEMBER_ADDED: DOSSIER_MEMBER_ADDED\nDOSSIER_MEMBER_REMOVED: DOSSIER_MEMBER_REMOVED\nDOSSIER_NOTE_ADDED: DOSSIER_NOTE_ADDED\nDOSSIER_NOTE_EDITED: DOSSIER_NOTE_EDITED\nDOSSIER_NOTE_DELETED: DOSSIER_NOTE_DELETED\nDOSSIER_TAGGED: DOSSIER_TAGGED\nDOSSIER_UNTAGGED: DOSSIER_UNTAGGED\nDOSSIER_OWNER_ASSIGNED: DOSSIER_OWNER_A', enum_type=EventType, max_length=64),
        ),
    ]
