"""Issue 20, messaging that reaches people: each client's consent per phone channel and
when they last wrote there (channel_consents), the SMS and WhatsApp messages Twilio brings
us (inbound_messages, once per MessageSid), the channel a chat message was written on
(messages.channel), and the index an inbound message finds its sender by (profiles.phone)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models.enums import ConsentSource, ConsentStatus, InboundOutcome, NotificationChannel
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index
from app.models.migration_ops import AddIndexConcurrently

class Migration(migrations.Migration):
    dependencies = [('models', '0027_search_speed')]

    initial = False
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    operations = [
        ops.CreateModel(
            name='ChannelConsent',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('profile', fields.ForeignKeyField('models.Profile', source_field='profile_id', db_constraint=True, to_field='id', related_name='channel_consents', on_delete=OnDelete.CASCADE)),
                ('channel', fields.CharEnumField(description='IN_APP: IN_APP\nEMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP', enum_type=NotificationChannel, max_length=16)),
                ('status', fields.CharEnumField(null=True, description='OPTED_IN: OPTED_IN\nOPTED_OUT: OPTED_OUT', enum_type=ConsentStatus, max_length=16)),
                ('opted_in_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('opted_in_via', fields.CharEnumField(null=True, description='APP: APP\nAGENT: AGENT\nINBOUND: INBOUND\nKEYWORD: KEYWORD', enum_type=ConsentSource, max_length=16)),
                ('opted_in_by', fields.UUIDField(null=True)),
                ('opted_out_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('opted_out_via', fields.CharEnumField(null=True, description='APP: APP\nAGENT: AGENT\nINBOUND: INBOUND\nKEYWORD: KEYWORD', enum_type=ConsentSource, max_length=16)),
                ('last_inbound_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'channel_consents', 'app': 'models', 'unique_together': (('profile', 'channel'),), 'pk_attr': 'id', 'table_description': "One client's state on one phone channel (SMS or WHATSAPP): their consent (when and"},
            bases=['TimestampedModel'],
        ),
        ops.CreateModel(
            name='InboundMessage',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('message_sid', fields.CharField(unique=True, max_length=64)),
                ('channel', fields.CharEnumField(description='IN_APP: IN_APP\nEMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP', enum_type=NotificationChannel, max_length=16)),
                ('from_number', fields.TextField(unique=False)),
                ('body', fields.TextField(unique=False)),
                ('media', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('outcome', fields.CharEnumField(description='ATTACHED: ATTACHED\nUNKNOWN_SENDER: UNKNOWN_SENDER\nAMBIGUOUS_SENDER: AMBIGUOUS_SENDER\nNO_DOSSIER: NO_DOSSIER\nOPTED_OUT: OPTED_OUT\nOPTED_IN: OPTED_IN', enum_type=InboundOutcome, max_length=32)),
                ('profile', fields.ForeignKeyField('models.Profile', source_field='profile_id', null=True, db_constraint=True, to_field='id', related_name='inbound_messages', on_delete=OnDelete.SET_NULL)),
                ('dossier', fields.ForeignKeyField('models.Dossier', source_field='dossier_id', null=True, db_constraint=True, to_field='id', related_name='inbound_messages', on_delete=OnDelete.SET_NULL)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', null=True, db_constraint=True, to_field='id', related_name='inbound', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'inbound_messages', 'app': 'models', 'indexes': [Index(fields=['outcome', 'created_at', 'id'], name='idx_inbound_outcome'), Index(fields=['profile_id'], name='idx_inbound_profile_id'), Index(fields=['dossier_id'], name='idx_inbound_dossier_id'), Index(fields=['message_id'], name='idx_inbound_message_id')], 'pk_attr': 'id', 'table_description': 'An SMS or WhatsApp message Twilio brought us, once per Twilio MessageSid (a retried'},
            bases=['CreatedModel'],
        ),
        ops.AddField(
            model_name='Message',
            name='channel',
            field=fields.CharEnumField(default=NotificationChannel.IN_APP, description='IN_APP: IN_APP\nEMAIL: EMAIL\nSMS: SMS\nWHATSAPP: WHATSAPP', db_default=NotificationChannel.IN_APP, enum_type=NotificationChannel, max_length=16),
        ),
        AddIndexConcurrently(model_name='Profile', index=Index(fields=['phone'], name='idx_profiles_phone')),
    ]
