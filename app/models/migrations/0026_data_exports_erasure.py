"""Issue 19, the GDPR: data-export archives (right of access), the stored files still to
delete (file_deletions), when a client was erased (profiles.erased_at), the indexes an
erasure finds its client's rows by (events by actor, deliveries by recipient, payment links
by prospect e-mail), and the new event types."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models.enums import ActorType, DataExportStatus, EventType
from app.models.migration_ops import AddIndexConcurrently, AlterEnumMembers
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0025_access_audit_retention')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        ops.CreateModel(
            name='DataExport',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('profile', fields.ForeignKeyField('models.Profile', source_field='profile_id', db_constraint=True, to_field='id', related_name='data_exports', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharEnumField(default=DataExportStatus.REQUESTED, description='REQUESTED: REQUESTED\nBUILDING: BUILDING\nREADY: READY\nFAILED: FAILED\nEXPIRED: EXPIRED', enum_type=DataExportStatus, max_length=16)),
                ('requested_by_type', fields.CharEnumField(description='USER: USER\nAGENT: AGENT\nSYSTEM: SYSTEM', enum_type=ActorType, max_length=16)),
                ('requested_by_id', fields.UUIDField(null=True)),
                ('storage_key', fields.TextField(null=True, unique=False)),
                ('size_bytes', fields.BigIntField(null=True)),
                ('attempts', fields.IntField(default=0)),
                ('claimed_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ready_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('failed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expired_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'data_exports', 'app': 'models', 'indexes': [Index(fields=['profile_id', 'created_at'], name='idx_data_exports_profile'), Index(fields=['status', 'created_at'], name='idx_data_exports_due'), Index(fields=['status', 'expires_at'], name='idx_data_exports_expiring')], 'pk_attr': 'id', 'table_description': 'One archive of everything about a client (right of access, GDPR art. 15): asked by'},
            bases=['TimestampedModel'],
        ),
        ops.CreateModel(
            name='FileDeletion',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('storage_key', fields.TextField(unique=False)),
                ('reason', fields.CharField(max_length=32)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'file_deletions', 'app': 'models', 'indexes': [Index(fields=['next_attempt_at'], name='idx_file_deletions_due')], 'pk_attr': 'id', 'table_description': "A stored file to delete (an erased client's document, an expired export): written in"},
            bases=['TimestampedModel'],
        ),
        AddIndexConcurrently(model_name='Event', index=Index(fields=['actor_id'], name='idx_events_actor_id')),
        AddIndexConcurrently(model_name='NotificationDelivery', index=Index(fields=['recipient'], name='idx_deliveries_recipient')),
        AddIndexConcurrently(model_name='PaymentLink', index=Index(fields=['prospect_email'], name='idx_payment_links_prospect_email')),
        ops.AddField(
            model_name='Profile',
            name='erased_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        AlterEnumMembers(
            model_name='Event',
            name='event_type',
            field=fields.CharEnumField(description='PROFILE_CREATED: PROFILE_CREATED\nPROFILE_UPDATED: PROFILE_UPDATED\nPASSWORD_CHANGED: PASSWORD_CHANGED\nAGENT_CREATED: AGENT_CREATED\nAGENT_UPDATED: AGENT_UPDATED\nPRODUCT_CREATED: PRODUCT_CREATED\nPRODUCT_UPDATED: PRODUCT_UPDATED\nSTEP_CREATED: STEP_CREATED\nPRODUCT_STEPS_SET: PRODUCT_STEPS_SET\nDOCUMENT_TYPE_CREATED: DOCUMENT_TYPE_CREATED\nDOCUMENT_TYPE_UPDATED: DOCUMENT_TYPE_UPDATED\nSTEP_UPDATED: STEP_UPDATED\nPRODUCT_ARCHIVED: PRODUCT_ARCHIVED\nPRODUCT_UNARCHIVED: PRODUCT_UNARCHIVED\nSTEP_ARCHIVED: STEP_ARCHIVED\nSTEP_UNARCHIVED: STEP_UNARCHIVED\nDOCUMENT_TYPE_ARCHIVED: DOCUMENT_TYPE_ARCHIVED\nDOCUMENT_TYPE_UNARCHIVED: DOCUMENT_TYPE_UNARCHIVED\nDOCUMENT_TYPE_ATTACHED: DOCUMENT_TYPE_ATTACHED\nDOCUMENT_TYPE_DETACHED: DOCUMENT_TYPE_DETACHED\nLOGIN_SUCCEEDED: LOGIN_SUCCEEDED\nLOGIN_FAILED: LOGIN_FAILED\nSESSION_REVOKED: SESSION_REVOKED\nPASSWORD_RESET_REQUESTED: PASSWORD_RESET_REQUESTED\nPASSWORD_RESET: PASSWORD_RESET\nTWO_FACTOR_ENABLED: TWO_FACTOR_ENABLED\nTWO_FACTOR_DISABLED: TWO_FACTOR_DISABLED\nRECOVERY_CODE_USED: RECOVERY_CODE_USED\nINVITATION_SENT: INVITATION_SENT\nINVITATION_ACCEPTED: INVITATION_ACCEPTED\nPAYMENT_LINK_CREATED: PAYMENT_LINK_CREATED\nPAYMENT_LINK_USED: PAYMENT_LINK_USED\nPAYMENT_LINK_REVOKED: PAYMENT_LINK_REVOKED\nPAYMENT_LINK_RESENT: PAYMENT_LINK_RESENT\nORDER_CREATED: ORDER_CREATED\nCHECKOUT_STARTED: CHECKOUT_STARTED\nPAYMENT_SUCCEEDED: PAYMENT_SUCCEEDED\nPAYMENT_FAILED: PAYMENT_FAILED\nPAYMENT_REMINDER_SENT: PAYMENT_REMINDER_SENT\nPAYMENT_REMINDER_CLICKED: PAYMENT_REMINDER_CLICKED\nORDER_REFUNDED: ORDER_REFUNDED\nORDER_PARTIALLY_REFUNDED: ORDER_PARTIALLY_REFUNDED\nDOSSIER_CREATED: DOSSIER_CREATED\nDOSSIER_STATUS_CHANGED: DOSSIER_STATUS_CHANGED\nDOSSIER_COMPLETED: DOSSIER_COMPLETED\nDOSSIER_CANCELLED: DOSSIER_CANCELLED\nDOSSIER_MEMBER_ADDED: DOSSIER_MEMBER_ADDED\nDOSSIER_MEMBER_REMOVED: DOSSIER_MEMBER_REMOVED\nDOSSIER_NOTE_ADDED: DOSSIER_NOTE_ADDED\nDOSSIER_NOTE_EDITED: DOSSIER_NOTE_EDITED\nDOSSIER_NOTE_DELETED: DOSSIER_NOTE_DELETED\nDOSSIER_TAGGED: DOSSIER_TAGGED\nDOSSIER_UNTAGGED: DOSSIER_UNTAGGED\nDOSSIER_OWNER_ASSIGNED: DOSSIER_OWNER_A', enum_type=EventType, max_length=64),
        ),
    ]
