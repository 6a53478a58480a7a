"""Issue 17: orders recorded by an agent (method, who, reference, note) and refunded in
part; payment links revocable, with a price of their own, and their secrets hashed: every
existing link's `token` becomes the SHA-256 of the secret the prospect holds, which keeps
working (app.services.payments.links looks links up by that hash)."""

import hashlib

from tortoise import migrations
from tortoise.migrations import operations as ops

from app.models.enums import EventType
from app.models.migration_ops import AlterEnumMembers
from app.models.enums import PaymentMethod
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

async def hash_link_tokens(apps, state_editor) -> None:
    client = state_editor.client
    _, rows = await client.execute_query('SELECT "id", "token" FROM "payment_links"')
    postgres = client.capabilities.dialect == "postgres"
    sql = 'UPDATE "payment_links" SET "token" = {} WHERE "id" = {}'.format(
        *(("$1", "$2") if postgres else ("?", "?"))
    )
    for row in rows:
        token = row["token"] if hasattr(row, "keys") else row[1]
        row_id = row["id"] if hasattr(row, "keys") else row[0]
        if len(token) == 64 and all(c in "0123456789abcdef" for c in token):
            continue  # already a hash (the migration ran before, in part)
        digest = hashlib.sha256(token.encode()).hexdigest()
        await client.execute_query(sql, [digest, row_id])


class Migration(migrations.Migration):
    dependencies = [('models', '0014_catalogue')]

    initial = False

    operations = [
        AlterEnumMembers(
            model_name='Event',
            name='event_type',
            field=fields.CharEnumField(description='PROFILE_CREATED: PROFILE_CREATED\nPROFILE_UPDATED: PROFILE_UPDATED\nPASSWORD_CHANGED: PASSWORD_CHANGED\nAGENT_CREATED: AGENT_CREATED\nAGENT_UPDATED: AGENT_UPDATED\nPRODUCT_CREATED: PRODUCT_CREATED\nPRODUCT_UPDATED: PRODUCT_UPDATED\nSTEP_CREATED: STEP_CREATED\nPRODUCT_STEPS_SET: PRODUCT_STEPS_SET\nDOCUMENT_TYPE_CREATED: DOCUMENT_TYPE_CREATED\nDOCUMENT_TYPE_UPDATED: DOCUMENT_TYPE_UPDATED\nSTEP_UPDATED: STEP_UPDATED\nPRODUCT_ARCHIVED: PRODUCT_ARCHIVED\nPRODUCT_UNARCHIVED: PRODUCT_UNARCHIVED\nSTEP_ARCHIVED: STEP_ARCHIVED\nSTEP_UNARCHIVED: STEP_UNARCHIVED\nDOCUMENT_TYPE_ARCHIVED: DOCUMENT_TYPE_ARCHIVED\nDOCUMENT_TYPE_UNARCHIVED: DOCUMENT_TYPE_UNARCHIVED\nDOCUMENT_TYPE_ATTACHED: DOCUMENT_TYPE_ATTACHED\nDOCUMENT_TYPE_DETACHED: DOCUMENT_TYPE_DETACHED\nLOGIN_SUCCEEDED: LOGIN_SUCCEEDED\nLOGIN_FAILED: LOGIN_FAILED\nSESSION_REVOKED: SESSION_REVOKED\nPASSWORD_RESET_REQUESTED: PASSWORD_RESET_REQUESTED\nPASSWORD_RESET: PASSWORD_RESET\nTWO_FACTOR_ENABLED: TWO_FACTOR_ENABLED\nTWO_FACTOR_DISABLED: TWO_FACTOR_DISABLED\nRECOVERY_CODE_USED: RECOVERY_CODE_USED\nINVITATION_SENT: INVITATION_SENT\nINVITATION_ACCEPTED: INVITATION_ACCEPTED\nPAYMENT_LINK_CREATED: PAYMENT_LINK_CREATED\nPAYMENT_LINK_USED: PAYMENT_LINK_USED\nPAYMENT_LINK_REVOKED: PAYMENT_LINK_REVOKED\nPAYMENT_LINK_RESENT: PAYMENT_LINK_RESENT\nORDER_CREATED: ORDER_CREATED\nCHECKOUT_STARTED: CHECKOUT_STARTED\nPAYMENT_SUCCEEDED: PAYMENT_SUCCEEDED\nPAYMENT_FAILED: PAYMENT_FAILED\nPAYMENT_REMINDER_SENT: PAYMENT_REMINDER_SENT\nPAYMENT_REMINDER_CLICKED: PAYMENT_REMINDER_CLICKED\nORDER_REFUNDED: ORDER_REFUNDED\nDOSSIER_CREATED: DOSSIER_CREATED\nDOSSIER_STATUS_CHANGED: DOSSIER_STATUS_CHANGED\nDOSSIER_COMPLETED: DOSSIER_COMPLETED\nDOSSIER_CANCELLED: DOSSIER_CANCELLED\nSTEP_STARTED: STEP_STARTED\nSTEP_COMPLETED: STEP_COMPLETED\nSTEP_SKIPPED: STEP_SKIPPED\nSTEP_ASSIGNED: STEP_ASSIGNED\nSTEP_DUE_DATE_CHANGED: STEP_DUE_DATE_CHANGED\nSTEP_OVERDUE: STEP_OVERDUE\nDOCUMENT_REMINDER_SENT: DOCUMENT_REMINDER_SENT\nDOCUMENT_UPLOADED: DOCUMENT_UPLOADED\nDOCUMENT_APPROVED: DOCUMENT_APPROVED\nDOCUMENT_CHANGES_REQUESTED: DOCUMENT_CHANGES_REQUESTED\nDOCUMEN', enum_type=EventType, max_length=64),
        ),
        ops.AddField(
            model_name='Order',
            name='note',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Order',
            name='payment_method',
            field=fields.CharEnumField(default=PaymentMethod.CHECKOUT, db_default=PaymentMethod.CHECKOUT, description='CHECKOUT: CHECKOUT\nBANK_TRANSFER: BANK_TRANSFER\nCASH: CASH\nWAIVED: WAIVED', enum_type=PaymentMethod, max_length=16),
        ),
        ops.AddField(
            model_name='Order',
            name='payment_reference',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Order',
            name='recorded_by',
            field=fields.ForeignKeyField('models.Agent', source_field='recorded_by_id', null=True, db_constraint=True, to_field='id', related_name='recorded_orders', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='Order',
            name='refunded_amount',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['recorded_by_id'], name='idx_orders_recorded_by_id'),
        ),
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['payment_reference'], name='idx_orders_payment_reference'),
        ),
        ops.RunPython(hash_link_tokens, ops.RunPython.noop),
        ops.AddField(
            model_name='PaymentLink',
            name='amount',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='PaymentLink',
            name='revoked_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
