from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models.enums import ReminderKind, ReminderStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_workflow_and_delivery_fields')]

    initial = False

    operations = [
        ops.CreateModel(
            name='StepReminder',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('dossier', fields.ForeignKeyField('models.Dossier', source_field='dossier_id', db_constraint=True, to_field='id', related_name='step_reminders', on_delete=OnDelete.CASCADE)),
                ('step_instance', fields.ForeignKeyField('models.StepInstance', source_field='step_instance_id', db_constraint=True, to_field='id', related_name='reminders', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='DOCUMENTS: DOCUMENTS\nESCALATION: ESCALATION', enum_type=ReminderKind, max_length=16)),
                ('slot', fields.CharField(max_length=96)),
                ('scheduled_for', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=ReminderStatus.PENDING, description='PENDING: PENDING\nSENT: SENT\nSKIPPED: SKIPPED', enum_type=ReminderStatus, max_length=16)),
                ('processed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('skip_reason', fields.CharField(null=True, max_length=32)),
                ('event_id', fields.UUIDField(null=True)),
            ],
            options={'table': 'step_reminders', 'app': 'models', 'unique_together': (('step_instance', 'slot'),), 'indexes': [Index(fields=['status', 'scheduled_for'], name='idx_step_reminders_due'), Index(fields=['dossier_id'], name='idx_step_reminders_dossier_id')], 'pk_attr': 'id', 'table_description': 'A planned notice about one step (beyond the ERD): a reminder to the client of the'},
            bases=['CreatedModel'],
        ),
        ops.AddField(
            model_name='StepInstance',
            name='estimated_duration_hours',
            field=fields.IntField(null=True),
        ),
        # Running dossiers keep the estimate their product had (copied from now on).
        ops.RunSQL(
            "UPDATE step_instances SET estimated_duration_hours = ("
            "SELECT ps.estimated_duration_hours FROM product_steps ps "
            "JOIN dossiers d ON d.product_id = ps.product_id "
            "WHERE d.id = step_instances.dossier_id AND ps.step_id = step_instances.step_id)",
            reverse_sql="",
        ),
    ]
