"""Issue 17: orders recorded by an agent (method, who, reference, note) and refunded in
part; payment links revocable, with a price of their own, and their secrets hashed: every
existing link's `token` becomes the SHA-256 of the secret the prospect holds, which keeps
working (app.services.payments.links looks links up by that hash)."""

import hashlib

from tortoise import migrations
from tortoise.migrations import operations as ops
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
    dependencies = [('models', '0013_accounts')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Order',
            name='note',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Order',
            name='payment_method',
            field=fields.CharEnumField(default=PaymentMethod.CHECKOUT, description='CHECKOUT: CHECKOUT\nBANK_TRANSFER: BANK_TRANSFER\nCASH: CASH\nWAIVED: WAIVED', enum_type=PaymentMethod, max_length=16),
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
            field=fields.IntField(default=0),
        ),
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['recorded_by_id'], name='idx_orders_recorded_by_id'),
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
