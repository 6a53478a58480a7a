"""One typed settings object, read from the environment (and an optional `.env`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.models.enums import NotificationChannel

DEV_SECRET = "dev-secret-change-me-0123456789abcdef"  # the known default, refused in production


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite://./var/dev.sqlite3"
    redis_url: str = ""  # empty: in-memory broadcast, one process
    secret_key: str = DEV_SECRET
    access_token_ttl_minutes: int = 60
    # argon2id cost (RFC 9106's second recommended option by default)
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 65536
    public_app_url: str = "http://127.0.0.1:8000"
    public_api_url: str = "http://127.0.0.1:8000"
    storage_url: str = "file://./var/files"
    # S3-compatible storage (STORAGE_URL=s3://bucket/prefix): empty endpoint = AWS itself;
    # empty keys = boto3's usual credential chain (environment, profile, instance role).
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    download_url_ttl_seconds: int = 300  # signed file links; capped at 5 minutes
    # Request bodies are cut off while they arrive (413): uploads (multipart) and the rest.
    max_upload_body_mb: int = 101  # the largest document type limit (100 MB) + form overhead
    max_body_bytes: int = 2 * 1024 * 1024
    max_upload_files: int = 5  # file parts per multipart request

    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""  # override for local stand-ins (localstripe, test servers)
    stripe_webhook_tolerance_seconds: int = 300
    webhook_max_body_bytes: int = 256 * 1024
    payment_reminder_hours: list[int] = [1, 24, 72]
    checkout_reuse_minutes: int = 60
    payment_reminder_phone_channel: NotificationChannel = NotificationChannel.SMS

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_from: str = "Partners VRAI <no-reply@partners-vrai.test>"

    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
    twilio_whatsapp_from: str = ""
    twilio_api_base: str = "https://api.twilio.com"

    # Notifications and their delivery worker (app/services/notifications.py, delivery.py).
    notification_phone_channel: NotificationChannel = NotificationChannel.SMS  # or WHATSAPP
    message_notification_burst_minutes: int = 30  # one "new messages" notice per burst
    delivery_max_attempts: int = 6  # transient failures are retried up to this many sends
    delivery_backoff_seconds: float = 30.0  # first retry delay, doubled each time, jittered
    delivery_backoff_max_seconds: float = 3600.0
    delivery_claim_seconds: float = 120.0  # a claim lease: a dead worker's claims expire
    delivery_batch_size: int = 100
    delivery_concurrency: int = 10  # sends in flight per worker
    smtp_timeout_seconds: float = 20.0
    twilio_timeout_seconds: float = 15.0

    # Due dates, reminders for missing documents and escalation (app/services/deadlines.py,
    # chasing.py). Each reminder slot is "start+<n>h|d" (after the step starts), "due-<n>h|d"
    # (before its due date) or "due" (at the due date); as a JSON list in the environment.
    document_reminder_schedule: list[str] = ["start+2d", "due-1d", "due"]
    overdue_escalation_hours: int = 24  # agents are told once a step is this late
    chasing_batch_size: int = 100  # dossiers per worker pass

    # Chat and live updates (app/services/messages.py, app/subscriptions/).
    message_max_length: int = 10_000
    message_max_attachments: int = 10
    # Browser pages allowed to open the GraphQL WebSocket besides PUBLIC_APP_URL's origin
    # (same-origin pages and non-browser clients always may), as a JSON list.
    allowed_origins: list[str] = []
    broadcast_prefix: str = ""  # channel namespace; empty: derived from DATABASE_URL
    subscription_queue_size: int = 256  # a subscriber this far behind is dropped
    subscription_recheck_seconds: float = 30.0  # re-check the viewer's access while streaming
    redis_heartbeat_seconds: float = 1.0  # ping the pub/sub connection this often
    redis_dead_after_seconds: float = 3.0  # no answer for this long: the connection is dead

    graphiql: bool | None = None  # default: on in development, off in production
    introspection: bool | None = None
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    max_directives: int = 50
    max_nodes: int = 10_000
    # per viewer: this many cost points (nodes) per window, refilled continuously
    rate_limit_points: int = 20_000
    rate_limit_window_seconds: int = 60
    max_page_size: int = 100
    # Outbox dispatch (notifications, live updates) of an HTTP request's events: once the
    # response is sent (default), so the client waits only for the commit, or before it
    # (false). The event is committed with the change either way: the relay dispatches
    # what a crash left. See app/services/outbox.py and bench/RESULTS.md.
    dispatch_after_response: bool = True
    # The speed shortcuts that rely on library internals (app/compat: our executor, lean
    # resolvers, live events executed once for all subscribers, joined pages); false runs
    # the schema on strawberry's and graphql-core's own execution. Same answers both ways.
    fast_paths: bool = True
    log_level: str = "INFO"
    sql_echo: bool = False

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else not self.is_production

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else not self.is_production

    @property
    def payment_provider(self) -> Literal["stripe", "dummy"]:
        return "stripe" if self.stripe_secret_key else "dummy"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @field_validator("document_reminder_schedule")
    @classmethod
    def _valid_reminder_schedule(cls, value: list[str]) -> list[str]:
        from app.services.deadlines import parse_schedule

        parse_schedule(value)  # raises ValueError with the entry at fault
        return value

    @field_validator("overdue_escalation_hours")
    @classmethod
    def _valid_escalation_margin(cls, value: int) -> int:
        if value < 0:
            raise ValueError("OVERDUE_ESCALATION_HOURS must be 0 or more")
        return value

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.is_production:
            if self.secret_key == DEV_SECRET or len(self.secret_key) < 32:
                raise ValueError(
                    "SECRET_KEY must be set to a random value of 32+ characters in production"
                )
            if self.stripe_secret_key and not self.stripe_webhook_secret:
                raise ValueError("STRIPE_WEBHOOK_SECRET is required when STRIPE_SECRET_KEY is set")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
