"""Issue 19, the search's speed: on PostgreSQL the folded name is a stored generated
column (`profiles.full_name_folded`) with its GIN trigram index, in place of the
expression index of 0022 (see app/models/migration_ops.py StoreFoldedNames and
app/services/search.py). Nothing changes on SQLite."""

from tortoise import migrations

from app.models.migration_ops import StoreFoldedNames


class Migration(migrations.Migration):
    dependencies = [('models', '0026_data_exports_erasure')]

    initial = False

    operations = [
        StoreFoldedNames(),
    ]
