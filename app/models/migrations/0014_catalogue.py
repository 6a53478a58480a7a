"""The catalogue you can maintain (issue 17, item 5): products, steps and document types
archived (`archived_at`) instead of deleted, and `step_document_types`, the document types
each step asks for, so one type can serve the steps of several products.

Every `document_types.required_step_id` becomes its first link (position 0, the type's
own id as the link's id: a type had one such step, so the ids are unique; the same SQL on
PostgreSQL and SQLite). The column stays (the ERD drops nothing) and keeps naming the
first step the type was attached to. The catalogue tables are small (a few hundred rows):
the new columns and the copy take no noticeable lock, and `archived_at` needs no index.
"""

from tortoise import migrations
from app.models.migration_ops import AlterEnumMembers
from tortoise.migrations import operations as ops
from app.models.enums import EventType
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

COPY_REQUIRED_STEPS = (
    'INSERT INTO "step_document_types" ("id", "step_id", "document_type_id", "position", '
    '"created_at") SELECT "id", "required_step_id", "id", 0, "created_at" '
    'FROM "document_types" WHERE "required_step_id" IS NOT NULL'
)


class Migration(migrations.Migration):
    dependencies = [('models', '0013_accounts')]

    initial = False

    operations = [
        ops.CreateModel(
            name='StepDocumentType',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('step', fields.ForeignKeyField('models.Step', source_field='step_id', db_constraint=True, to_field='id', related_name='document_type_links', on_delete=OnDelete.CASCADE)),
                ('document_type', fields.ForeignKeyField('models.DocumentType', source_field='document_type_id', db_constraint=True, to_field='id', related_name='step_links', on_delete=OnDelete.CASCADE)),
                ('position', fields.IntField(default=0)),
            ],
            options={'table': 'step_document_types', 'app': 'models', 'unique_together': (('step', 'document_type'),), 'indexes': [Index(fields=['document_type_id'], name='idx_step_document_types_document_type')], 'pk_attr': 'id', 'table_description': 'A document type a step asks for (issue 17): one type can be asked for by the steps'},
            bases=['CreatedModel'],
        ),
        ops.RunSQL(COPY_REQUIRED_STEPS, reverse_sql=ops.RunSQL.noop),
        ops.AddField(
            model_name='DocumentType',
            name='archived_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        AlterEnumMembers(
            model_name='Event',
            name='event_type',
            field=fields.CharEnumField(description='PROFILE_CREATED: PROFILE_CREATED\nPROFILE_UPDATED: PROFILE_UPDATED\nPASSWORD_CHANGED: PASSWORD_CHANGED\nAGENT_CREATED: AGENT_CREATED\nAGENT_UPDATED: AGENT_UPDATED\nPRODUCT_CREATED: PRODUCT_CREATED\nPRODUCT_UPDATED: PRODUCT_UPDATED\nSTEP_CREATED: STEP_CREATED\nPRODUCT_STEPS_SET: PRODUCT_STEPS_SET\nDOCUMENT_TYPE_CREATED: DOCUMENT_TYPE_CREATED\nDOCUMENT_TYPE_UPDATED: DOCUMENT_TYPE_UPDATED\nSTEP_UPDATED: STEP_UPDATED\nPRODUCT_ARCHIVED: PRODUCT_ARCHIVED\nPRODUCT_UNARCHIVED: PRODUCT_UNARCHIVED\nSTEP_ARCHIVED: STEP_ARCHIVED\nSTEP_UNARCHIVED: STEP_UNARCHIVED\nDOCUMENT_TYPE_ARCHIVED: DOCUMENT_TYPE_ARCHIVED\nDOCUMENT_TYPE_UNARCHIVED: DOCUMENT_TYPE_UNARCHIVED\nDOCUMENT_TYPE_ATTACHED: DOCUMENT_TYPE_ATTACHED\nDOCUMENT_TYPE_DETACHED: DOCUMENT_TYPE_DETACHED\nLOGIN_SUCCEEDED: LOGIN_SUCCEEDED\nLOGIN_FAILED: LOGIN_FAILED\nSESSION_REVOKED: SESSION_REVOKED\nPASSWORD_RESET_REQUESTED: PASSWORD_RESET_REQUESTED\nPASSWORD_RESET: PASSWORD_RESET\nTWO_FACTOR_ENABLED: TWO_FACTOR_ENABLED\nTWO_FACTOR_DISABLED: TWO_FACTOR_DISABLED\nRECOVERY_CODE_USED: RECOVERY_CODE_USED\nINVITATION_SENT: INVITATION_SENT\nINVITATION_ACCEPTED: INVITATION_ACCEPTED\nPAYMENT_LINK_CREATED: PAYMENT_LINK_CREATED\nPAYMENT_LINK_USED: PAYMENT_LINK_USED\nORDER_CREATED: ORDER_CREATED\nCHECKOUT_STARTED: CHECKOUT_STARTED\nPAYMENT_SUCCEEDED: PAYMENT_SUCCEEDED\nPAYMENT_FAILED: PAYMENT_FAILED\nPAYMENT_REMINDER_SENT: PAYMENT_REMINDER_SENT\nPAYMENT_REMINDER_CLICKED: PAYMENT_REMINDER_CLICKED\nORDER_REFUNDED: ORDER_REFUNDED\nDOSSIER_CREATED: DOSSIER_CREATED\nDOSSIER_STATUS_CHANGED: DOSSIER_STATUS_CHANGED\nDOSSIER_COMPLETED: DOSSIER_COMPLETED\nDOSSIER_CANCELLED: DOSSIER_CANCELLED\nSTEP_STARTED: STEP_STARTED\nSTEP_COMPLETED: STEP_COMPLETED\nSTEP_SKIPPED: STEP_SKIPPED\nSTEP_ASSIGNED: STEP_ASSIGNED\nSTEP_DUE_DATE_CHANGED: STEP_DUE_DATE_CHANGED\nSTEP_OVERDUE: STEP_OVERDUE\nDOCUMENT_REMINDER_SENT: DOCUMENT_REMINDER_SENT\nDOCUMENT_UPLOADED: DOCUMENT_UPLOADED\nDOCUMENT_APPROVED: DOCUMENT_APPROVED\nDOCUMENT_CHANGES_REQUESTED: DOCUMENT_CHANGES_REQUESTED\nDOCUMENT_REJECTED: DOCUMENT_REJECTED\nMESSAGE_SENT: MESSAGE_SENT\nMESSAGES_READ: MESSAGES_REA', enum_type=EventType, max_length=64),
        ),
        ops.AddField(
            model_name='Product',
            name='archived_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Step',
            name='archived_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
