from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0029_receipts_and_bounces')]

    initial = False

    operations = [
        ops.CreateModel(
            name='TrustedDocument',
            fields=[
                ('hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('document', fields.TextField(unique=False)),
                ('operation_name', fields.CharField(null=True, max_length=200)),
                ('created_by_id', fields.UUIDField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'trusted_documents', 'app': 'models', 'pk_attr': 'hash', 'table_description': 'One registered GraphQL document, keyed by the SHA-256 of its text (lower-case hex,'},
            bases=['Model'],
        ),
    ]
