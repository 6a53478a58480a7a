"""Issue 18: documents that expire. document_types.requires_expiry / min_validity_days,
document_versions.expires_on, the expiry and reminder schedule of a document's approved
version (documents.expires_on, expiry_reminder_on, expiry_reminded_margin, each listed or
claimed through a partial index built concurrently), products.renewal_product_id, and the
DOCUMENT_EXPIRING and DOSSIER_RENEWAL_OFFERED event types."""

from tortoise import migrations
from app.models.enums import EventType
from app.models.migration_ops import AddIndexConcurrently, AlterEnumMembers
from tortoise.migrations import operations as ops
from app.models.base import WhereIndex
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0017_refunds')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        ops.AddField(
            model_name='Document',
            name='expires_on',
            field=fields.DateField(null=True),
        ),
        ops.AddField(
            model_name='Document',
            name='expiry_reminded_margin',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Document',
            name='expiry_reminder_on',
            field=fields.DateField(null=True),
        ),
        AddIndexConcurrently(model_name='Document', index=WhereIndex(fields=['expires_on', 'id'], name='idx_documents_expires_on', where='expires_on IS NOT NULL')),
        AddIndexConcurrently(model_name='Document', index=WhereIndex(fields=['expiry_reminder_on', 'id'], name='idx_documents_expiry_reminder_due', where='expiry_reminder_on IS NOT NULL')),
        ops.AddField(
            model_name='DocumentType',
            name='min_validity_days',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='DocumentType',
            name='requires_expiry',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='DocumentVersion',
            name='expires_on',
            field=fields.DateField(null=True),
        ),
        ops.AddField(
            model_name='Product',
            name='renewal_product',
            field=fields.ForeignKeyField('models.Product', source_field='renewal_product_id', null=True, db_constraint=True, to_field='id', related_name='renewed_products', on_delete=OnDelete.SET_NULL),
        ),
        AddIndexConcurrently(model_name='Product', index=Index(fields=['renewal_product_id'], name='idx_products_renewal_product_id')),
        AlterEnumMembers(
            model_name='Event',
            name='event_type',
            field=fields.CharEnumField(description='PROFILE_CREATED: PROFILE_CREATED\nPROFILE_UPDATED: PROFILE_UPDATED\nPASSWORD_CHANGED: PASSWORD_CHANGED\nAGENT_CREATED: AGENT_CREATED\nAGENT_UPDATED: AGENT_UPDATED\nPRODUCT_CREATED: PRODUCT_CREATED\nPRODUCT_UPDATED: PRODUCT_UPDATED\nSTEP_CREATED: STEP_CREATED\nPRODUCT_STEPS_SET: PRODUCT_STEPS_SET\nDOCUMENT_TYPE_CREATED: DOCUMENT_TYPE_CREATED\nDOCUMENT_TYPE_UPDATED: DOCUMENT_TYPE_UPDATED\nSTEP_UPDATED: STEP_UPDATED\nPRODUCT_ARCHIVED: PRODUCT_ARCHIVED\nPRODUCT_UNARCHIVED: PRODUCT_UNARCHIVED\nSTEP_ARCHIVED: STEP_ARCHIVED\nSTEP_UNARCHIVED: STEP_UNARCHIVED\nDOCUMENT_TYPE_ARCHIVED: DOCUMENT_TYPE_ARCHIVED\nDOCUMENT_TYPE_UNARCHIVED: DOCUMENT_TYPE_UNARCHIVED\nDOCUMENT_TYPE_ATTACHED: DOCUMENT_TYPE_ATTACHED\nDOCUMENT_TYPE_DETACHED: DOCUMENT_TYPE_DETACHED\nLOGIN_SUCCEEDED: LOGIN_SUCCEEDED\nLOGIN_FAILED: LOGIN_FAILED\nSESSION_REVOKED: SESSION_REVOKED\nPASSWORD_RESET_REQUESTED: PASSWORD_RESET_REQUESTED\nPASSWORD_RESET: PASSWORD_RESET\nTWO_FACTOR_ENABLED: TWO_FACTOR_ENABLED\nTWO_FACTOR_DISABLED: TWO_FACTOR_DISABLED\nRECOVERY_CODE_USED: RECOVERY_CODE_USED\nINVITATION_SENT: INVITATION_SENT\nINVITATION_ACCEPTED: INVITATION_ACCEPTED\nPAYMENT_LINK_CREATED: PAYMENT_LINK_CREATED\nPAYMENT_LINK_USED: PAYMENT_LINK_USED\nPAYMENT_LINK_REVOKED: PAYMENT_LINK_REVOKED\nPAYMENT_LINK_RESENT: PAYMENT_LINK_RESENT\nORDER_CREATED: ORDER_CREATED\nCHECKOUT_STARTED: CHECKOUT_STARTED\nPAYMENT_SUCCEEDED: PAYMENT_SUCCEEDED\nPAYMENT_FAILED: PAYMENT_FAILED\nPAYMENT_REMINDER_SENT: PAYMENT_REMINDER_SENT\nPAYMENT_REMINDER_CLICKED: PAYMENT_REMINDER_CLICKED\nORDER_REFUNDED: ORDER_REFUNDED\nORDER_PARTIALLY_REFUNDED: ORDER_PARTIALLY_REFUNDED\nDOSSIER_CREATED: DOSSIER_CREATED\nDOSSIER_STATUS_CHANGED: DOSSIER_STATUS_CHANGED\nDOSSIER_COMPLETED: DOSSIER_COMPLETED\nDOSSIER_CANCELLED: DOSSIER_CANCELLED\nSTEP_STARTED: STEP_STARTED\nSTEP_COMPLETED: STEP_COMPLETED\nSTEP_SKIPPED: STEP_SKIPPED\nSTEP_ASSIGNED: STEP_ASSIGNED\nSTEP_DUE_DATE_CHANGED: STEP_DUE_DATE_CHANGED\nSTEP_OVERDUE: STEP_OVERDUE\nDOCUMENT_REMINDER_SENT: DOCUMENT_REMINDER_SENT\nDOCUMENT_UPLOADED: DOCUMENT_UPLOADED\nDOCUMENT_APPROVED: DOCUMENT_APPROVED\nDOCUMENT_CH', enum_type=EventType, max_length=64),
        ),
    ]
