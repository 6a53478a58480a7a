"""Issue 19: case numbers (`dossiers.reference`, numbered per year, and the per-year
counter `dossier_sequences`) and the search indexes (pg_trgm + unaccent GIN indexes on
PostgreSQL, an FTS5 trigram table on SQLite; see app/models/migration_ops.py)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

from app.models.migration_ops import AddCaseReference, CreateSearchIndexes


class Migration(migrations.Migration):
    dependencies = [('models', '0021_requests_and_shares')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DossierSequence',
            fields=[
                ('year', fields.IntField(primary_key=True, generated=False, unique=True, db_index=True)),
                ('last_value', fields.IntField()),
            ],
            options={'table': 'dossier_sequences', 'app': 'models', 'pk_attr': 'year', 'table_description': 'The last case number given in one year. One row per year, bumped by an upsert'},
            bases=['Model'],
        ),
        AddCaseReference(
            model_name='Dossier',
            name='reference',
            field=fields.CharField(unique=True, max_length=32),
        ),
        CreateSearchIndexes(),
    ]
