"""The ERD's names for three foreign-key columns.

Tortoise names the column of a ForeignKeyField `<field>_id`; the ERD names these three
without the suffix, so the models now say `source_field=` (the Python attributes keep
their `_id` names):

    payment_links.created_by_id   -> payment_links.created_by
    payment_links.used_by_id      -> payment_links.used_by
    step_instances.assigned_to_id -> step_instances.assigned_to

Tortoise's own AlterField cannot do this: its autodetector does not see a changed
`source_field` on a foreign key, and on SQLite it would rebuild the table with both
columns. `RenameForeignKeyColumn` below is AlterField (the migration state) whose
database step is `ALTER TABLE … RENAME COLUMN`, the same statement on PostgreSQL and on
SQLite (3.25+). Both databases carry the column's indexes and foreign key along, in
place: `idx_step_instances_assigned_to` keeps its name and now covers `assigned_to`, so
the state's Index is rewritten the same way rather than dropped and rebuilt. On
PostgreSQL the foreign-key constraints were named after the old columns
(`payment_links_created_by_id_fkey`, …); they get the names PostgreSQL gives a new
column of that name (`payment_links_created_by_fkey`). SQLite's inline constraints have
no name.
"""

from copy import copy

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


def _rename_sql(table: str, old: str, new: str, *, postgres: bool) -> list[str]:
    statements = [f'ALTER TABLE "{table}" RENAME COLUMN "{old}" TO "{new}"']
    if postgres:
        statements.append(
            f'ALTER TABLE "{table}" RENAME CONSTRAINT "{table}_{old}_fkey" TO "{table}_{new}_fkey"'
        )
    return statements


class RenameForeignKeyColumn(ops.AlterField):
    def __init__(self, model_name: str, name: str, field, *, table: str, old_column: str) -> None:
        super().__init__(model_name=model_name, name=name, field=field)
        self.table = table
        self.old_column = old_column
        self.new_column = field.source_field

    def describe(self) -> str:
        return f"Rename column {self.table}.{self.old_column} to {self.new_column}"

    def state_forward(self, app_label, state) -> None:
        model_state = self.get_model_state(state, app_label, self.model_name)
        indexes = []
        for index in model_state.options.get("indexes", ()):
            if isinstance(index, Index) and self.old_column in index.fields:
                index = copy(index)
                index.fields = [self.new_column if f == self.old_column else f for f in index.fields]
            indexes.append(index)
        if indexes:
            model_state.options["indexes"] = tuple(indexes)
        super().state_forward(app_label, state)

    async def _rename(self, state_editor, old: str, new: str) -> None:
        if not state_editor:
            return
        postgres = state_editor.client.capabilities.dialect == "postgres"
        for sql in _rename_sql(self.table, old, new, postgres=postgres):
            await state_editor._run_sql(sql)  # what ops.RunSQL runs (and sqlmigrate prints)

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        await self._rename(state_editor, self.old_column, self.new_column)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        await self._rename(state_editor, self.new_column, self.old_column)


class Migration(migrations.Migration):
    dependencies = [('models', '0005_chasing_and_deadlines')]

    initial = False

    operations = [
        RenameForeignKeyColumn(
            model_name='PaymentLink',
            name='created_by',
            field=fields.ForeignKeyField('models.Agent', source_field='created_by', null=True, db_constraint=True, to_field='id', related_name='payment_links', on_delete=OnDelete.SET_NULL),
            table='payment_links',
            old_column='created_by_id',
        ),
        RenameForeignKeyColumn(
            model_name='PaymentLink',
            name='used_by',
            field=fields.ForeignKeyField('models.Profile', source_field='used_by', null=True, db_constraint=True, to_field='id', related_name='used_payment_links', on_delete=OnDelete.SET_NULL),
            table='payment_links',
            old_column='used_by_id',
        ),
        RenameForeignKeyColumn(
            model_name='StepInstance',
            name='assigned_to',
            field=fields.ForeignKeyField('models.Agent', source_field='assigned_to', null=True, db_constraint=True, to_field='id', related_name='step_instances', on_delete=OnDelete.SET_NULL),
            table='step_instances',
            old_column='assigned_to_id',
        ),
    ]
