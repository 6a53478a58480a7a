"""Issue 20, delivery receipts and e-mail bounces: the new delivery states (DELIVERED, READ,
UNDELIVERED), the provider's status and error code and when each state was told, the
failover link between a failed delivery and the one that replaced it, the index a status
callback finds its delivery by (Twilio's MessageSid), and a hard-bounced address flagged
on the profile."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models.enums import NotificationStatus
from app.models.migration_ops import AddIndexConcurrently, AlterEnumMembers
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0028_whatsapp_and_inbound')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        AlterEnumMembers(
            model_name='NotificationDelivery',
            name='status',
            field=fields.CharEnumField(default=NotificationStatus.PENDING, description='PENDING: PENDING\nSENT: SENT\nFAILED: FAILED\nDELIVERED: DELIVERED\nREAD: READ\nUNDELIVERED: UNDELIVERED', enum_type=NotificationStatus, max_length=16),
        ),
        ops.AddField(
            model_name='NotificationDelivery',
            name='delivered_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='NotificationDelivery',
            name='error_code',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name='NotificationDelivery',
            name='failover_of_id',
            field=fields.UUIDField(null=True),
        ),
        ops.AddField(
            model_name='NotificationDelivery',
            name='failover_reason',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='NotificationDelivery',
            name='provider_status',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name='NotificationDelivery',
            name='read_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        AddIndexConcurrently(model_name='NotificationDelivery', index=Index(fields=['provider_message_id'], name='idx_deliveries_provider_message_id')),
        AddIndexConcurrently(model_name='NotificationDelivery', index=Index(fields=['failover_of_id'], name='idx_deliveries_failover_of')),
        ops.AddField(
            model_name='Profile',
            name='email_bounce_reason',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Profile',
            name='email_bounced_address',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Profile',
            name='email_bounced_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
