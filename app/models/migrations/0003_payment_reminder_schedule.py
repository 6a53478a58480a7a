from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0002_cyclic_foreign_keys')]

    initial = False

    operations = [
        ops.AddField(
            model_name='PaymentReminder',
            name='cancelled_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='PaymentReminder',
            name='scheduled_for',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='PaymentReminder',
            name='slot',
            field=fields.IntField(default=0),
        ),
        ops.AddIndex(
            model_name='PaymentReminder',
            index=Index(fields=['scheduled_for'], name='idx_payment_reminders_due'),
        ),
        ops.AddConstraint(
            model_name='PaymentReminder',
            constraint=UniqueConstraint(fields=('order', 'slot', 'sent_via'), name=None),
        ),
    ]
