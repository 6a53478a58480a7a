"""Issue 17: refunds (an admin's, through the provider or recorded by hand, and those
Stripe reports), the Stripe events kept until the state they apply to arrives, and the
ORDER_PARTIALLY_REFUNDED event type."""

from tortoise import migrations
from app.models.migration_ops import AlterEnumMembers
from tortoise.migrations import operations as ops
from app.models.base import WhereIndex
from app.models.enums import EventType, RefundReason
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0016_link_prices')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DeferredStripeEvent',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('stripe_event_id', fields.CharField(unique=True, max_length=255)),
                ('type', fields.CharField(max_length=128)),
                ('payment_intent_id', fields.CharField(null=True, max_length=255)),
                ('order', fields.ForeignKeyField('models.Order', source_field='order_id', null=True, db_constraint=True, to_field='id', related_name='deferred_stripe_events', on_delete=OnDelete.CASCADE)),
                ('payload', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('applied_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'stripe_deferred_events', 'app': 'models', 'indexes': [Index(fields=['order_id'], name='idx_stripe_deferred_events_order_id'), WhereIndex(fields=['payment_intent_id'], name='idx_stripe_deferred_events_pending_intent', where='applied_at IS NULL')], 'pk_attr': 'id', 'table_description': 'A verified Stripe event that found its order not yet in the state it applies to'},
            bases=['CreatedModel'],
        ),
        ops.CreateModel(
            name='Refund',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('order', fields.ForeignKeyField('models.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='refunds', on_delete=OnDelete.CASCADE)),
                ('provider_refund_id', fields.CharField(null=True, unique=True, max_length=255)),
                ('amount', fields.IntField()),
                ('currency', fields.CharField(max_length=3)),
                ('reason', fields.CharEnumField(default=RefundReason.OTHER, description='REQUESTED_BY_CUSTOMER: REQUESTED_BY_CUSTOMER\nDUPLICATE: DUPLICATE\nFRAUDULENT: FRAUDULENT\nOTHER: OTHER', enum_type=RefundReason, max_length=32)),
                ('note', fields.TextField(null=True, unique=False)),
                ('requested_by', fields.ForeignKeyField('models.Agent', source_field='requested_by_id', null=True, db_constraint=True, to_field='id', related_name='refunds_requested', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'refunds', 'app': 'models', 'indexes': [Index(fields=['order_id', 'created_at'], name='idx_refunds_order'), Index(fields=['requested_by_id'], name='idx_refunds_requested_by_id')], 'pk_attr': 'id'},
            bases=['CreatedModel'],
        ),
        AlterEnumMembers(
            model_name='Event',
            name='event_type',
            field=fields.CharEnumField(description='PROFILE_CREATED: PROFILE_CREATED\nPROFILE_UPDATED: PROFILE_UPDATED\nPASSWORD_CHANGED: PASSWORD_CHANGED\nAGENT_CREATED: AGENT_CREATED\nAGENT_UPDATED: AGENT_UPDATED\nPRODUCT_CREATED: PRODUCT_CREATED\nPRODUCT_UPDATED: PRODUCT_UPDATED\nSTEP_CREATED: STEP_CREATED\nPRODUCT_STEPS_SET: PRODUCT_STEPS_SET\nDOCUMENT_TYPE_CREATED: DOCUMENT_TYPE_CREATED\nDOCUMENT_TYPE_UPDATED: DOCUMENT_TYPE_UPDATED\nSTEP_UPDATED: STEP_UPDATED\nPRODUCT_ARCHIVED: PRODUCT_ARCHIVED\nPRODUCT_UNARCHIVED: PRODUCT_UNARCHIVED\nSTEP_ARCHIVED: STEP_ARCHIVED\nSTEP_UNARCHIVED: STEP_UNARCHIVED\nDOCUMENT_TYPE_ARCHIVED: DOCUMENT_TYPE_ARCHIVED\nDOCUMENT_TYPE_UNARCHIVED: DOCUMENT_TYPE_UNARCHIVED\nDOCUMENT_TYPE_ATTACHED: DOCUMENT_TYPE_ATTACHED\nDOCUMENT_TYPE_DETACHED: DOCUMENT_TYPE_DETACHED\nLOGIN_SUCCEEDED: LOGIN_SUCCEEDED\nLOGIN_FAILED: LOGIN_FAILED\nSESSION_REVOKED: SESSION_REVOKED\nPASSWORD_RESET_REQUESTED: PASSWORD_RESET_REQUESTED\nPASSWORD_RESET: PASSWORD_RESET\nTWO_FACTOR_ENABLED: TWO_FACTOR_ENABLED\nTWO_FACTOR_DISABLED: TWO_FACTOR_DISABLED\nRECOVERY_CODE_USED: RECOVERY_CODE_USED\nINVITATION_SENT: INVITATION_SENT\nINVITATION_ACCEPTED: INVITATION_ACCEPTED\nPAYMENT_LINK_CREATED: PAYMENT_LINK_CREATED\nPAYMENT_LINK_USED: PAYMENT_LINK_USED\nPAYMENT_LINK_REVOKED: PAYMENT_LINK_REVOKED\nPAYMENT_LINK_RESENT: PAYMENT_LINK_RESENT\nORDER_CREATED: ORDER_CREATED\nCHECKOUT_STARTED: CHECKOUT_STARTED\nPAYMENT_SUCCEEDED: PAYMENT_SUCCEEDED\nPAYMENT_FAILED: PAYMENT_FAILED\nPAYMENT_REMINDER_SENT: PAYMENT_REMINDER_SENT\nPAYMENT_REMINDER_CLICKED: PAYMENT_REMINDER_CLICKED\nORDER_REFUNDED: ORDER_REFUNDED\nORDER_PARTIALLY_REFUNDED: ORDER_PARTIALLY_REFUNDED\nDOSSIER_CREATED: DOSSIER_CREATED\nDOSSIER_STATUS_CHANGED: DOSSIER_STATUS_CHANGED\nDOSSIER_COMPLETED: DOSSIER_COMPLETED\nDOSSIER_CANCELLED: DOSSIER_CANCELLED\nSTEP_STARTED: STEP_STARTED\nSTEP_COMPLETED: STEP_COMPLETED\nSTEP_SKIPPED: STEP_SKIPPED\nSTEP_ASSIGNED: STEP_ASSIGNED\nSTEP_DUE_DATE_CHANGED: STEP_DUE_DATE_CHANGED\nSTEP_OVERDUE: STEP_OVERDUE\nDOCUMENT_REMINDER_SENT: DOCUMENT_REMINDER_SENT\nDOCUMENT_UPLOADED: DOCUMENT_UPLOADED\nDOCUMENT_APPROVED: DOCUMENT_APPROVED\nDOCUMENT_CH', enum_type=EventType, max_length=64),
        ),
    ]
