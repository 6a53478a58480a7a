"""Issue 17, item 6: the range of amounts a payment link may charge for a product, and
whether its Stripe Checkout takes promotion codes."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0015_payments')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Product',
            name='allow_promotion_codes',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='Product',
            name='link_amount_max',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Product',
            name='link_amount_min',
            field=fields.IntField(null=True),
        ),
    ]
