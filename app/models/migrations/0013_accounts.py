"""Accounts (issue 15): sessions with rotating refresh tokens, single-use account tokens
(password resets, invitations), two-factor fields on credentials, the account event types.
"""

from tortoise import migrations
from app.models.migration_ops import AlterEnumMembers
from tortoise.migrations import operations as ops
from app.models.enums import AccountTokenPurpose, EventType
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0012_step_stopped')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AccountSession',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('credential', fields.ForeignKeyField('models.Credential', source_field='credential_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('refresh_token_hash', fields.CharField(max_length=64)),
                ('last_used_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ip_address', fields.CharField(null=True, max_length=64)),
                ('user_agent', fields.CharField(null=True, max_length=512)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_reason', fields.CharField(null=True, max_length=32)),
            ],
            options={'table': 'sessions', 'app': 'models', 'indexes': [Index(fields=['credential_id', 'created_at', 'id'], name='idx_sessions_credential'), Index(fields=['expires_at'], name='idx_sessions_expires')], 'pk_attr': 'id', 'table_description': 'One login: the refresh token that gets its access tokens, where it came from, and'},
            bases=['TimestampedModel'],
        ),
        ops.CreateModel(
            name='AccountToken',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('credential', fields.ForeignKeyField('models.Credential', source_field='credential_id', db_constraint=True, to_field='id', related_name='account_tokens', on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharEnumField(description='PASSWORD_RESET: PASSWORD_RESET\nINVITATION: INVITATION', enum_type=AccountTokenPurpose, max_length=16)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('code_hash', fields.CharField(null=True, max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('failed_attempts', fields.IntField(default=0)),
                ('created_by', fields.ForeignKeyField('models.Agent', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='account_tokens_created', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'account_tokens', 'app': 'models', 'indexes': [Index(fields=['credential_id', 'purpose', 'created_at'], name='idx_account_tokens_owner'), Index(fields=['created_by_id'], name='idx_account_tokens_created_by'), Index(fields=['expires_at'], name='idx_account_tokens_expires')], 'pk_attr': 'id', 'table_description': 'A single-use secret sent by e-mail: a password reset or an invitation to choose a'},
            bases=['CreatedModel'],
        ),
        ops.AddField(
            model_name='Credential',
            name='recovery_code_hashes',
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Credential',
            name='totp_last_step',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='Credential',
            name='totp_secret',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Credential',
            name='two_factor_enabled_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        AlterEnumMembers(
            model_name='Event',
            name='event_type',
            field=fields.CharEnumField(description='PROFILE_CREATED: PROFILE_CREATED\nPROFILE_UPDATED: PROFILE_UPDATED\nPASSWORD_CHANGED: PASSWORD_CHANGED\nAGENT_CREATED: AGENT_CREATED\nAGENT_UPDATED: AGENT_UPDATED\nPRODUCT_CREATED: PRODUCT_CREATED\nPRODUCT_UPDATED: PRODUCT_UPDATED\nSTEP_CREATED: STEP_CREATED\nPRODUCT_STEPS_SET: PRODUCT_STEPS_SET\nDOCUMENT_TYPE_CREATED: DOCUMENT_TYPE_CREATED\nDOCUMENT_TYPE_UPDATED: DOCUMENT_TYPE_UPDATED\nLOGIN_SUCCEEDED: LOGIN_SUCCEEDED\nLOGIN_FAILED: LOGIN_FAILED\nSESSION_REVOKED: SESSION_REVOKED\nPASSWORD_RESET_REQUESTED: PASSWORD_RESET_REQUESTED\nPASSWORD_RESET: PASSWORD_RESET\nTWO_FACTOR_ENABLED: TWO_FACTOR_ENABLED\nTWO_FACTOR_DISABLED: TWO_FACTOR_DISABLED\nRECOVERY_CODE_USED: RECOVERY_CODE_USED\nINVITATION_SENT: INVITATION_SENT\nINVITATION_ACCEPTED: INVITATION_ACCEPTED\nPAYMENT_LINK_CREATED: PAYMENT_LINK_CREATED\nPAYMENT_LINK_USED: PAYMENT_LINK_USED\nORDER_CREATED: ORDER_CREATED\nCHECKOUT_STARTED: CHECKOUT_STARTED\nPAYMENT_SUCCEEDED: PAYMENT_SUCCEEDED\nPAYMENT_FAILED: PAYMENT_FAILED\nPAYMENT_REMINDER_SENT: PAYMENT_REMINDER_SENT\nPAYMENT_REMINDER_CLICKED: PAYMENT_REMINDER_CLICKED\nORDER_REFUNDED: ORDER_REFUNDED\nDOSSIER_CREATED: DOSSIER_CREATED\nDOSSIER_STATUS_CHANGED: DOSSIER_STATUS_CHANGED\nDOSSIER_COMPLETED: DOSSIER_COMPLETED\nDOSSIER_CANCELLED: DOSSIER_CANCELLED\nSTEP_STARTED: STEP_STARTED\nSTEP_COMPLETED: STEP_COMPLETED\nSTEP_SKIPPED: STEP_SKIPPED\nSTEP_ASSIGNED: STEP_ASSIGNED\nSTEP_DUE_DATE_CHANGED: STEP_DUE_DATE_CHANGED\nSTEP_OVERDUE: STEP_OVERDUE\nDOCUMENT_REMINDER_SENT: DOCUMENT_REMINDER_SENT\nDOCUMENT_UPLOADED: DOCUMENT_UPLOADED\nDOCUMENT_APPROVED: DOCUMENT_APPROVED\nDOCUMENT_CHANGES_REQUESTED: DOCUMENT_CHANGES_REQUESTED\nDOCUMENT_REJECTED: DOCUMENT_REJECTED\nMESSAGE_SENT: MESSAGE_SENT\nMESSAGES_READ: MESSAGES_READ', enum_type=EventType, max_length=64),
        ),
    ]
