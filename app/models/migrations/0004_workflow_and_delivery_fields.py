from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_payment_reminder_schedule')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Notification',
            name='group_key',
            field=fields.CharField(null=True, max_length=128),
        ),
        ops.AddIndex(
            model_name='Notification',
            index=Index(fields=['group_key'], name='idx_notifications_group_key'),
        ),
        ops.AddField(
            model_name='NotificationDelivery',
            name='last_error',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='StepInstance',
            name='due_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='StepInstance',
            name='skipped_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
