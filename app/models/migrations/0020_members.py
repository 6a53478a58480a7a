"""Issue 18: the members of a dossier (dossier_members), the member a per-member
document is for, and the document types asked of each member of a role."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models.enums import EventType
from app.models.migration_ops import AlterEnumMembers
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0019_document_expiry')]

    initial = False

    operations = [
        AlterEnumMembers(
            model_name='Event',
            name='event_type',
            field=fields.CharEnumField(description='PROFILE_CREATED: PROFILE_CREATED\nPROFILE_UPDATED: PROFILE_UPDATED\nPASSWORD_CHANGED: PASSWORD_CHANGED\nAGENT_CREATED: AGENT_CREATED\nAGENT_UPDATED: AGENT_UPDATED\nPRODUCT_CREATED: PRODUCT_CREATED\nPRODUCT_UPDATED: PRODUCT_UPDATED\nSTEP_CREATED: STEP_CREATED\nPRODUCT_STEPS_SET: PRODUCT_STEPS_SET\nDOCUMENT_TYPE_CREATED: DOCUMENT_TYPE_CREATED\nDOCUMENT_TYPE_UPDATED: DOCUMENT_TYPE_UPDATED\nSTEP_UPDATED: STEP_UPDATED\nPRODUCT_ARCHIVED: PRODUCT_ARCHIVED\nPRODUCT_UNARCHIVED: PRODUCT_UNARCHIVED\nSTEP_ARCHIVED: STEP_ARCHIVED\nSTEP_UNARCHIVED: STEP_UNARCHIVED\nDOCUMENT_TYPE_ARCHIVED: DOCUMENT_TYPE_ARCHIVED\nDOCUMENT_TYPE_UNARCHIVED: DOCUMENT_TYPE_UNARCHIVED\nDOCUMENT_TYPE_ATTACHED: DOCUMENT_TYPE_ATTACHED\nDOCUMENT_TYPE_DETACHED: DOCUMENT_TYPE_DETACHED\nLOGIN_SUCCEEDED: LOGIN_SUCCEEDED\nLOGIN_FAILED: LOGIN_FAILED\nSESSION_REVOKED: SESSION_REVOKED\nPASSWORD_RESET_REQUESTED: PASSWORD_RESET_REQUESTED\nPASSWORD_RESET: PASSWORD_RESET\nTWO_FACTOR_ENABLED: TWO_FACTOR_ENABLED\nTWO_FACTOR_DISABLED: TWO_FACTOR_DISABLED\nRECOVERY_CODE_USED: RECOVERY_CODE_USED\nINVITATION_SENT: INVITATION_SENT\nINVITATION_ACCEPTED: INVITATION_ACCEPTED\nPAYMENT_LINK_CREATED: PAYMENT_LINK_CREATED\nPAYMENT_LINK_USED: PAYMENT_LINK_USED\nPAYMENT_LINK_REVOKED: PAYMENT_LINK_REVOKED\nPAYMENT_LINK_RESENT: PAYMENT_LINK_RESENT\nORDER_CREATED: ORDER_CREATED\nCHECKOUT_STARTED: CHECKOUT_STARTED\nPAYMENT_SUCCEEDED: PAYMENT_SUCCEEDED\nPAYMENT_FAILED: PAYMENT_FAILED\nPAYMENT_REMINDER_SENT: PAYMENT_REMINDER_SENT\nPAYMENT_REMINDER_CLICKED: PAYMENT_REMINDER_CLICKED\nORDER_REFUNDED: ORDER_REFUNDED\nORDER_PARTIALLY_REFUNDED: ORDER_PARTIALLY_REFUNDED\nDOSSIER_CREATED: DOSSIER_CREATED\nDOSSIER_STATUS_CHANGED: DOSSIER_STATUS_CHANGED\nDOSSIER_COMPLETED: DOSSIER_COMPLETED\nDOSSIER_CANCELLED: DOSSIER_CANCELLED\nDOSSIER_MEMBER_ADDED: DOSSIER_MEMBER_ADDED\nDOSSIER_MEMBER_REMOVED: DOSSIER_MEMBER_REMOVED\nSTEP_STARTED: STEP_STARTED\nSTEP_COMPLETED: STEP_COMPLETED\nSTEP_SKIPPED: STEP_SKIPPED\nSTEP_ASSIGNED: STEP_ASSIGNED\nSTEP_DUE_DATE_CHANGED: STEP_DUE_DATE_CHANGED\nSTEP_OVERDUE: STEP_OVERDUE\nDOCUMENT_REMINDER_SENT: DOCUMENT_REMINDER_', enum_type=EventType, max_length=64),
        ),
        ops.CreateModel(
            name='DossierMember',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('dossier', fields.ForeignKeyField('models.Dossier', source_field='dossier_id', db_constraint=True, to_field='id', related_name='members', on_delete=OnDelete.CASCADE)),
                ('profile', fields.ForeignKeyField('models.Profile', source_field='profile_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.CASCADE)),
                ('role', fields.CharField(max_length=64)),
                ('removed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'dossier_members', 'app': 'models', 'indexes': [Index(fields=['dossier_id'], name='idx_dossier_members_dossier_id'), Index(fields=['profile_id', 'dossier_id'], name='idx_dossier_members_profile')], 'pk_attr': 'id', 'table_description': "One person's part in a dossier. Removing a member ends their access (removed_at),"},
            bases=['CreatedModel'],
        ),
        ops.AddField(
            model_name='Document',
            name='member',
            field=fields.ForeignKeyField('models.DossierMember', source_field='member_id', null=True, db_constraint=True, to_field='id', related_name='documents', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddIndex(
            model_name='Document',
            index=Index(fields=['member_id'], name='idx_documents_member_id'),
        ),
        ops.AddField(
            model_name='DocumentType',
            name='per_member_role',
            field=fields.CharField(null=True, max_length=64),
        ),
    ]
