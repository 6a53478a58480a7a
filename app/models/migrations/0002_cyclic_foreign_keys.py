"""Foreign keys on the two sides of the ERD's reference cycles.

Tortoise cannot declare a foreign-key cycle (`generate_schemas` refuses it and
`makemigrations` silently drops the columns), so `dossiers.current_step_instance_id` and
`documents.current_version_id` are plain UUID columns in the models. This step adds their
FOREIGN KEY constraints on PostgreSQL. SQLite cannot add a constraint to an existing
table; there the application keeps them consistent (both are written in the same
transaction as the row they point to).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

CONSTRAINTS = (
    (
        "dossiers",
        "fk_dossiers_current_step_instance",
        "current_step_instance_id",
        "step_instances",
    ),
    ("documents", "fk_documents_current_version", "current_version_id", "document_versions"),
)


def _is_postgres(schema_editor) -> bool:
    return schema_editor.client.capabilities.dialect == "postgres"


async def add_constraints(_apps, schema_editor) -> None:
    if not _is_postgres(schema_editor):
        return
    for table, name, column, target in CONSTRAINTS:
        await schema_editor.client.execute_script(
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" FOREIGN KEY ("{column}") '
            f'REFERENCES "{target}" ("id") ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;'
            f'CREATE INDEX IF NOT EXISTS "idx_{table}_{column}" ON "{table}" ("{column}");'
        )


async def drop_constraints(_apps, schema_editor) -> None:
    if not _is_postgres(schema_editor):
        return
    for table, name, column, _target in CONSTRAINTS:
        await schema_editor.client.execute_script(
            f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{name}";'
            f'DROP INDEX IF EXISTS "idx_{table}_{column}";'
        )


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [ops.RunPython(add_constraints, drop_constraints)]
