"""One typed settings object, read from the environment (and an optional `.env`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import model_validator
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

    graphiql: bool | None = None  # default: on in development, off in production
    introspection: bool | None = None
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    max_page_size: int = 100
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
