"""One typed settings object, read from the environment (and an optional `.env`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.domain.schedule import expiry_margins, parse_schedule
from app.models.enums import NotificationChannel

DEV_SECRET = "dev-secret-change-me-0123456789abcdef"  # the known default, refused in production

# SECRET_KEY in production: long, not a few characters repeated, and hard to guess by
# zxcvbn's estimate (which finds repeats, sequences, keyboard walks and dictionary words and
# counts a random character as 10 guesses: a random 32-character key scores ~10^32, so the
# bar leaves a random key room while "correcthorsebatterystaple" twice scores 10^14.7).
SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY_MIN_DISTINCT = 8  # a random 32-char hex key has fewer with probability 4e-8
SECRET_KEY_MIN_GUESSES_LOG10 = 24
_ZXCVBN_MAX_LENGTH = 72  # zxcvbn refuses longer input; the first 72 characters are scored
METRICS_TOKEN_MIN_LENGTH = 24
GENERATE_SECRET_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


class WhatsappContent(BaseModel):
    """One approved Twilio Content template (`HX…`) in one language, and the template
    context keys that fill its numbered variables: `variables[0]` fills `{{1}}`, …"""

    content_sid: str = Field(pattern=r"^HX[0-9a-fA-F]{32}$")
    variables: list[str] = []


def secret_key_weakness(key: str) -> str | None:
    """Why `key` is too weak to sign tokens and links in production, or None."""
    if key == DEV_SECRET:
        return "it is the development default"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"it has fewer than {SECRET_KEY_MIN_LENGTH} characters"
    if len(set(key)) < SECRET_KEY_MIN_DISTINCT:
        return f"it has fewer than {SECRET_KEY_MIN_DISTINCT} distinct characters"
    from zxcvbn import zxcvbn

    if zxcvbn(key[:_ZXCVBN_MAX_LENGTH])["guesses_log10"] < SECRET_KEY_MIN_GUESSES_LOG10:
        return "it is guessable (repeated, sequential or dictionary-like)"
    return None


class Settings(BaseSettings):
    """Every setting, read from the environment (upper case: `DATABASE_URL`) or `.env`.

    Each attribute's docstring is its documentation: `python -m app config-docs` writes
    docs/configuration.md from them (`make lint` fails when that file is stale). A line
    `# section: <title>` before a group starts a section of that file.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        use_attribute_docstrings=True,
        # A refusal must not print the values it was given (SECRET_KEY, STRIPE_SECRET_KEY…)
        hide_input_in_errors=True,
    )

    # section: Deployment
    env: Literal["development", "production", "test"] = "development"
    """`production` refuses the default secrets and turns GraphiQL and introspection off."""
    database_url: str = "sqlite://./var/dev.sqlite3"
    """`postgres://user:pass@host:5432/db` in production; SQLite (the embedded default) for a
    demo or one process."""
    redis_url: str = ""
    """`redis://host:6379/0`: live updates shared by every web process. Empty: in-memory
    broadcast, one process only."""
    log_level: str = "INFO"
    """Python logging level of the `app` loggers."""
    log_format: Literal["json", "text"] | None = None
    """`json`: one JSON object a line (`ts`, `level`, `logger`, `message`, `request_id`,
    `operation`, `exc_info`); `text`: the classic line with `[request_id operation]`. Unset:
    `json` in production, `text` otherwise."""
    sql_echo: bool = False
    """Log every SQL statement (development)."""
    host: str = "127.0.0.1"
    """The address `python -m app serve` (and `make run HOST=…`) listens on; the links'
    host when `PUBLIC_API_URL` is not set (`0.0.0.0` and `::` give the loopback address)."""
    port: int = Field(default=8000, ge=1, le=65535)
    """The port `python -m app serve` (and `make run PORT=…`) listens on; the links' port
    when `PUBLIC_API_URL` is not set."""
    public_app_url: str = ""
    """The client application's address: links in e-mails and messages, the WebSocket's
    allowed origin. Empty: this server (`PUBLIC_API_URL`), which then answers those links
    with plain pages of its own (what to do, the link's state)."""
    public_api_url: str = ""
    """This API's public address: signed download links, payment reminder links, the dummy
    provider's checkout pages. Empty: `http://HOST:PORT`."""

    # section: Accounts and tokens
    secret_key: str = DEV_SECRET
    """Signs access tokens (JWT) and links; required in production, where a key is refused
    unless it has 32+ characters, 8+ distinct ones and a zxcvbn estimate of 10^24+ guesses
    (repeats, sequences, keyboard walks and words score low). Generate one with
    `python -c "import secrets; print(secrets.token_urlsafe(48))"`."""
    access_token_ttl_minutes: int = Field(default=15, ge=1, le=24 * 60)
    """Access token lifetime: short, since a session's refresh token gets the next one
    (`refreshSession`) and a revoked session's access tokens live at most this long in
    other processes' caches (none today: every request checks the session)."""
    refresh_token_ttl_days: int = Field(default=30, ge=1, le=365)
    """A session ends this long after its last use (each refresh extends it)."""
    session_max_days: int = Field(default=90, ge=1, le=3650)
    """…and at the latest this long after its login, however often it is refreshed."""
    password_reset_minutes: int = Field(default=30, ge=5, le=24 * 60)
    """How long a password-reset link and code stay valid."""
    invitation_days: int = Field(default=7, ge=1, le=90)
    """How long an invitation to choose a password stays valid."""
    require_two_factor: Literal["none", "admins", "agents"] | None = None
    """Who must log in with a second factor (TOTP): `admins`, every agent (`agents`) or
    nobody (`none`; anyone may still enable it). Unset: `admins` in production, `none`
    otherwise. An account that must and has not enrolled enrols at its next login."""
    password_hash_time_cost: int = 3
    """argon2id time cost (RFC 9106's second recommended option by default)."""
    password_hash_memory_kib: int = 65536
    """argon2id memory cost, in KiB."""
    password_hash_workers: int = Field(default=2, ge=1, le=64)
    """Threads that hash and verify passwords, off the event loop (argon2 releases the
    GIL): at most this many hashes run at once per process, the others wait their turn
    while every other request and live update goes on."""

    # section: Files
    storage_url: str = "file://./var/files"
    """Where documents are kept: `file://path` or `s3://bucket/prefix`."""
    s3_endpoint_url: str = ""
    """S3-compatible endpoint (MinIO, moto); empty: AWS itself."""
    s3_region: str = "us-east-1"
    """S3 region."""
    s3_access_key_id: str = ""
    """S3 key id; empty: boto3's usual credential chain (environment, profile, role)."""
    s3_secret_access_key: str = ""
    """S3 secret key; empty: boto3's usual credential chain."""
    download_url_ttl_seconds: int = 300
    """Lifetime of a signed file link; capped at 5 minutes."""
    export_url_ttl_seconds: int = Field(default=900, ge=60, le=24 * 3600)
    """Lifetime of a signed CSV export link (`createCsvExport`, admins): the link also stops
    working when the admin who asked for it is disabled."""
    document_retention_days: int = Field(default=365, ge=0)
    """Days after a dossier ends (COMPLETED or CANCELLED) its uploaded files are deleted
    from storage by the worker (the rows stay, marked purged). 0: kept forever. The firm
    must not keep identity scans longer than needed: a year by default."""
    document_retention_notice_days: int = Field(default=30, ge=0)
    """Days before that deletion the client is told (once, in the app and by e-mail); 0:
    no notice. A dossier ending nearer its deadline than this is told at once, and its
    files wait this long after the notice."""
    retention_batch_size: int = Field(default=50, ge=1, le=1000)
    """Dossiers one retention pass notices or purges at most (each kind)."""
    access_audit_buffer_size: int = Field(default=500, ge=1, le=10_000)
    """Access events (downloads, dossier views by staff) a process holds before writing
    them in one INSERT; they are also written every ACCESS_AUDIT_FLUSH_SECONDS and at
    shutdown."""
    access_audit_flush_seconds: float = Field(default=2.0, gt=0)
    """Longest an access event waits in memory before it is written."""
    max_upload_body_mb: int = 101
    """Largest multipart (upload) request body, cut off while it arrives (413): the largest
    document type limit (100 MB) plus form overhead."""
    max_body_bytes: int = 2 * 1024 * 1024
    """Largest request body of any other request."""
    max_upload_files: int = 5
    """File parts per multipart request."""
    max_concurrent_uploads: int = Field(default=3, ge=1, le=100)
    """Upload bodies one account may be sending at once, per process; one more is answered
    429 before its body is read."""

    # section: Privacy (GDPR)
    data_export_ttl_days: int = Field(default=7, ge=1, le=30)
    """How long a data-export archive (`requestMyDataExport`, `requestDataExport`) and its
    e-mailed link stay valid; the worker deletes the archive then."""
    data_export_max_attempts: int = Field(default=3, ge=1, le=20)
    """Builds of one export the worker tries before it is FAILED (the client is told)."""
    file_deletion_retry_seconds: int = Field(default=300, ge=1)
    """A stored file an erasure (or an expired export) could not delete is tried again
    after this long, doubled each time (capped at a day), until it is gone."""

    # section: Payments (Stripe)
    stripe_secret_key: str = ""
    """Stripe API key; empty: a dummy provider whose checkout pages this server serves
    (refused in production unless `ALLOW_DUMMY_PAYMENTS=true`)."""
    allow_dummy_payments: bool = False
    """Let `ENV=production` run without `STRIPE_SECRET_KEY`, on the dummy provider (a demo):
    no money moves and anyone who opens a checkout page can mark its order paid. Start-up
    logs a warning saying so."""
    stripe_webhook_secret: str = ""
    """Verifies `Stripe-Signature`; required when `STRIPE_SECRET_KEY` is set in production."""
    stripe_api_base: str = ""
    """Override of Stripe's API address, for local stand-ins (localstripe, test servers)."""
    stripe_webhook_tolerance_seconds: int = 300
    """Oldest signature timestamp a webhook may carry (replays are refused)."""
    webhook_max_body_bytes: int = 256 * 1024
    """Largest Stripe webhook body."""
    payment_reminder_hours: list[int] = [1, 24, 72]
    """Hours after a prospect registers at which they are reminded of an unpaid order (JSON)."""
    checkout_reuse_minutes: int = 60
    """A checkout session this recent (and not expired or failed) is offered again instead
    of a new one."""
    payment_reminder_phone_channel: NotificationChannel = NotificationChannel.SMS
    """Phone channel of payment reminders: `SMS` or `WHATSAPP`."""

    # section: E-mail (SMTP)
    smtp_host: str = ""
    """SMTP server; empty: e-mails are logged and recorded as sent by provider `log`."""
    smtp_port: int = 587
    """SMTP port."""
    smtp_username: str = ""
    """SMTP login; empty: no authentication."""
    smtp_password: str = ""
    """SMTP password."""
    smtp_starttls: bool = False
    """Upgrade the connection with STARTTLS."""
    smtp_from: str = "Partners VRAI <no-reply@partners-vrai.test>"
    """Sender of every e-mail."""
    smtp_timeout_seconds: float = 20.0
    """One SMTP send gives up (and is retried) after this long."""
    email_bounce_address: str = ""
    """Envelope sender (MAIL FROM, the Return-Path) of every e-mail, made per delivery as a
    VERP address: `bounces@mail.example.com` sends as `bounces+<delivery token>@mail.example.com`
    (the token signed with SECRET_KEY). Bounces to it are read at `POST
    /webhooks/email/bounces`. Empty: the envelope sender is `SMTP_FROM`, bounces unread."""
    email_bounce_webhook_secret: str = ""
    """The password (HTTP basic auth, any user name) of `POST /webhooks/email/bounces`, which
    SendGrid's Inbound Parse (raw MIME) or a mail server's pipe posts bounces to. Empty: the
    endpoint refuses everything (403)."""
    allow_logged_email: bool = False
    """Production only: start without `SMTP_HOST`, e-mails going to the log (their links
    and codes redacted). Refused unless set: a misconfigured deployment would otherwise
    tell nobody anything."""

    # section: SMS and WhatsApp (Twilio)
    twilio_account_sid: str = ""
    """Twilio account; empty: SMS and WhatsApp are logged (provider `log`)."""
    twilio_auth_token: str = ""
    """Twilio auth token (authenticates our calls)."""
    twilio_from_number: str = ""
    """Sender number of SMS (E.164)."""
    twilio_whatsapp_from: str = ""
    """Sender number of WhatsApp messages (E.164); empty: `TWILIO_FROM_NUMBER`."""
    twilio_api_base: str = "https://api.twilio.com"
    """Twilio's API address (a local stand-in in tests)."""
    twilio_timeout_seconds: float = 15.0
    """One Twilio call gives up (and is retried) after this long."""
    allow_logged_texts: bool = False
    """Production only: start without Twilio, SMS and WhatsApp messages going to the log
    (redacted)."""
    whatsapp_templates: dict[str, dict[str, WhatsappContent]] = {}
    """The Twilio Content template of each notification template that may go by WhatsApp,
    per language (JSON): `{"document_reminder": {"fr": {"content_sid": "HX…",
    "variables": ["name", "reference", "action_url"]}}}`. Outside WhatsApp's 24-hour
    window a message goes by its template; a template or language missing here falls back
    to SMS (the reason recorded on the delivery)."""
    sms_reply_window_hours: int = Field(default=24, ge=0, le=720)
    """An agent's chat answer goes back to the client by SMS when the client last wrote
    by SMS within this many hours (WhatsApp: its own 24-hour window); 0: never by SMS."""
    twilio_status_callbacks: bool = True
    """Ask Twilio for delivery receipts: each message names `PUBLIC_API_URL` +
    `/webhooks/twilio/status?delivery=<id>` as its `StatusCallback`."""

    # section: Notifications and their delivery
    notification_phone_channel: NotificationChannel = NotificationChannel.SMS
    """Phone channel of notifications: `SMS` or `WHATSAPP`."""
    message_notification_burst_minutes: int = 30
    """One "new messages" notice per burst of chat messages this long."""
    delivery_max_attempts: int = 6
    """Transient failures are retried up to this many sends."""
    delivery_backoff_seconds: float = 30.0
    """First retry delay, doubled each time, jittered."""
    delivery_backoff_max_seconds: float = 3600.0
    """Longest retry delay."""
    delivery_claim_seconds: float = 120.0
    """A worker's claim on a delivery expires after this long (a dead worker's claims)."""
    delivery_batch_size: int = 100
    """Deliveries one worker pass claims."""
    delivery_concurrency: int = 10
    """Sends in flight per worker."""
    delivery_failover: dict[NotificationChannel, NotificationChannel] = {
        NotificationChannel.WHATSAPP: NotificationChannel.SMS,
        NotificationChannel.SMS: NotificationChannel.EMAIL,
        NotificationChannel.EMAIL: NotificationChannel.SMS,
    }
    """The client's next channel when one fails for good (an invalid number, not on
    WhatsApp, undeliverable, a hard e-mail bounce), as JSON: `{"SMS": "EMAIL", ...}`. Tried
    once per notification (a failover never fails over); a channel without an address (no
    phone, a bounced e-mail) passes to its own next one. `{}`: no failover."""

    # section: Dossiers
    dossier_reference_prefix: str = Field(default="PV", pattern=r"^[A-Z]{1,8}$")
    """The prefix of case numbers (`PV-2026-000123`: prefix, year of creation, sequence of
    the year). Existing references keep the prefix they were given."""

    # section: Due dates, reminders and escalation
    document_reminder_schedule: list[str] = ["start+2d", "due-1d", "due"]
    """Reminders of missing documents, as a JSON list of slots: `start+<n>h|d` (after the
    step starts), `due-<n>h|d` (before its due date) or `due` (at the due date)."""
    overdue_escalation_hours: int = 24
    """Agents are told once a step is this late."""
    chasing_batch_size: int = 100
    """Dossiers per reminder worker pass."""
    document_expiry_margins_days: str = "90,30"
    """Days before an approved document expires at which its client (and the step's
    agent) is reminded, comma-separated, once each; the first offers the renewal product."""

    # section: Chat and live updates
    message_max_length: int = 10_000
    """Longest chat message, in characters."""
    message_max_attachments: int = 10
    """Documents one chat message may attach."""
    allowed_origins: list[str] = []
    """Browser origins allowed to open the GraphQL WebSocket besides `PUBLIC_APP_URL`'s, as a
    JSON list (same-origin pages and non-browser clients always may; others get 403)."""
    broadcast_prefix: str = ""
    """Pub/sub topic namespace shared by one deployment's processes; empty: derived from
    `DATABASE_URL`."""
    max_websockets_per_account: int = Field(default=10, ge=1, le=10_000)
    """Open WebSockets one account may hold per process; one more is closed with 4429."""
    max_websockets_per_address: int = Field(default=100, ge=1, le=100_000)
    """Open WebSockets per client address per process (before any token: 4429)."""
    subscription_queue_size: int = 256
    """Live updates a subscriber may fall behind before it is dropped."""
    subscription_recheck_seconds: float = 30.0
    """How often a running subscription re-verifies its token and account."""
    redis_heartbeat_seconds: float = 1.0
    """The pub/sub connection is pinged this often."""
    redis_dead_after_seconds: float = 3.0
    """A pub/sub connection silent this long is dropped and reconnected."""

    # section: Authentication throttling
    auth_failures_per_account: int = Field(default=5, ge=1)
    """Failed login, reset, invitation or two-factor attempts one account may have within
    the window before it is locked (`RATE_LIMITED` with `retryAfter`): first for a minute,
    then each further failure doubles the delay, up to the window."""
    auth_failures_per_address: int = Field(default=20, ge=1)
    """The same, per client address (all the accounts tried from it)."""
    auth_failure_window_seconds: int = Field(default=900, ge=60)
    """How long a failure counts; also the longest lockout."""
    auth_fallback_share: float = Field(default=0.25, gt=0, le=1)
    """While Redis does not answer, each process counts failures alone with this share of
    each limit (at least 1), seeded with what Redis last said: up to 1/share processes
    together then allow no more than the full limit."""

    # section: GraphQL limits
    graphiql: bool | None = None
    """Serve GraphiQL; unset: on in development, off in production."""
    introspection: bool | None = None
    """Answer introspection queries; unset: on in development, off in production."""
    max_query_depth: int = 12
    """Deepest selection a document may have."""
    max_aliases: int = 30
    """Aliases per document."""
    max_tokens: int = 2000
    """Tokens per document."""
    max_directives: int = 50
    """Directives per document."""
    max_nodes: int = 10_000
    """Estimated result nodes (the cost) per document."""
    rate_limit_points: int = 20_000
    """Cost points (nodes) one viewer may spend per window, refilled continuously."""
    rate_limit_window_seconds: int = 60
    """The rate limit's window."""
    rate_limit_fallback_share: float = Field(default=0.25, gt=0, le=1)
    """While Redis does not answer, each process limits alone, to this share of what Redis
    last said was left (of a full bucket for a viewer it has not seen), refilled at this
    share of the rate: up to 1/share processes together never exceed one viewer's budget."""
    max_page_size: int = 100
    """Largest `first` of any list."""

    # section: Persisted queries
    persisted_queries: bool = True
    """Apollo's automatic persisted queries: a client may send `extensions.persistedQuery`
    with a document's SHA-256 instead of the document (over POST or GET), once the document
    was sent with its hash. Documents are kept in Redis (under the deployment's prefix) or,
    without `REDIS_URL`, in process memory."""
    persisted_query_ttl_seconds: int = Field(default=86_400, ge=60)
    """How long an automatically persisted document is kept after it was last sent."""
    persisted_query_cache_size: int = Field(default=10_000, ge=10)
    """Documents kept at most (the least recently registered are dropped first)."""
    persisted_query_max_bytes: int = Field(default=100_000, ge=1_000)
    """Longest document that is persisted (a longer one still runs, unpersisted)."""
    trusted_documents: bool = False
    """Production lock-down: only registered operations run (the manifest's and those an
    admin uploaded with `registerTrustedDocuments`); any other document is refused before
    it is parsed (`PERSISTED_QUERY_NOT_TRUSTED`), and automatic persisting is off."""
    trusted_documents_manifest: str = ""
    """A persisted-documents manifest to trust, read at start: JSON `{hash: document}`
    (GraphQL Codegen's client preset) or Apollo's `persisted-query-manifest.json`."""
    public_cache_max_age_seconds: int = Field(default=300, ge=0)
    """`Cache-Control: public, max-age=…` of a persisted query sent over GET without
    credentials that answered without errors (anything else is `private, no-store`)."""

    # section: Speed
    dispatch_after_response: bool = True
    """Run an HTTP request's outbox dispatch (notifications, live updates) once the answer
    is sent (`false`: before it). The event is committed with the change either way; the
    relay dispatches what a crash left (app/services/outbox.py, bench/RESULTS.md)."""
    fast_paths: bool = True
    """The speed shortcuts that rely on library internals (app/compat: our executor, lean
    resolvers, live events executed once for all subscribers, joined pages); `false` runs
    the schema on strawberry's and graphql-core's own execution. Same answers both ways."""

    # section: Operations (metrics, traces)
    metrics_token: str = ""
    """Bearer token a Prometheus scrape of `/metrics` must send (`Authorization: Bearer
    …`); 24+ characters in production. Empty: `/metrics` answers 404 in production and is
    open in development and tests."""
    metrics_max_operations: int = Field(default=100, ge=1, le=10_000)
    """Distinct GraphQL operation names a process labels its request metrics with; later
    new names count as `other` (anonymous ones as `anonymous`)."""
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """The `worker` process serves its own `/metrics` (same token) on this port; unset: not
    at all. (On the embedded default the worker runs in the web process: its `/metrics`.)"""
    worker_metrics_host: str = "127.0.0.1"
    """Address the worker's `/metrics` listens on (`0.0.0.0` for a scraper elsewhere)."""
    otel_enabled: bool = False
    """Export OpenTelemetry traces: a span per GraphQL operation (parse, validation, each
    resolver), per SQL statement on PostgreSQL (asyncpg) and per outgoing HTTP call (httpx).
    Needs the `otel` extra (`pip install 'dossier-api[otel]'`); the exporter is OTLP over
    HTTP, configured by the standard `OTEL_EXPORTER_OTLP_*` variables."""
    otel_service_name: str = "dossier-api"
    """`service.name` of the traces (the worker adds `-worker`)."""

    @property
    def log_format_used(self) -> Literal["json", "text"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "text"

    @property
    def metrics_open(self) -> bool:
        """`/metrics` served without a token (no METRICS_TOKEN, not in production)."""
        return not self.metrics_token and not self.is_production

    @model_validator(mode="after")
    def _links_follow_the_server(self) -> Settings:
        """Unset public addresses follow HOST and PORT: `make run PORT=9000` hands out
        links on port 9000."""
        if not self.public_api_url:
            self.public_api_url = own_url(self.host, self.port)
        if not self.public_app_url:
            self.public_app_url = self.public_api_url
        return self

    @property
    def serves_app_pages(self) -> bool:
        """No front end at PUBLIC_APP_URL (it is this server): the links that e-mails and
        notifications carry are answered by plain pages of ours (app.http.link_pages)."""
        return _origin(self.public_app_url) == _origin(self.public_api_url)

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
    def two_factor_policy(self) -> Literal["none", "admins", "agents"]:
        if self.require_two_factor is not None:
            return self.require_two_factor
        return "admins" if self.is_production else "none"

    @property
    def twilio_configured(self) -> bool:
        """SMS and WhatsApp go through Twilio (else to the log)."""
        return bool(
            self.twilio_account_sid
            and self.twilio_auth_token
            and (self.twilio_from_number or self.twilio_whatsapp_from)
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @field_validator("document_reminder_schedule")
    @classmethod
    def _valid_reminder_schedule(cls, value: list[str]) -> list[str]:
        parse_schedule(value)  # raises ValueError with the entry at fault
        return value

    @field_validator("document_expiry_margins_days")
    @classmethod
    def _valid_expiry_margins(cls, value: str) -> str:
        expiry_margins(value)  # raises ValueError when it is not a list of positive days
        return value

    @field_validator("overdue_escalation_hours")
    @classmethod
    def _valid_escalation_margin(cls, value: int) -> int:
        if value < 0:
            raise ValueError("OVERDUE_ESCALATION_HOURS must be 0 or more")
        return value

    @model_validator(mode="after")
    def _refuse_logged_messages(self) -> Settings:
        if self.is_production:
            if not self.smtp_host and not self.allow_logged_email:
                raise ValueError(
                    "SMTP_HOST is not set: in production e-mails would only be written to the"
                    " log. Set SMTP_HOST, or ALLOW_LOGGED_EMAIL=true to accept that."
                )
            if not self.twilio_configured and not self.allow_logged_texts:
                raise ValueError(
                    "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and a sender number are not set: in"
                    " production SMS"
                    " and WhatsApp would only be written to the log. Set them, or"
                    " ALLOW_LOGGED_TEXTS=true to accept that."
                )
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.is_production:
            weakness = secret_key_weakness(self.secret_key)
            if weakness:
                raise ValueError(
                    f"SECRET_KEY is refused in production: {weakness}. Set it to a random "
                    f"value of {SECRET_KEY_MIN_LENGTH}+ characters, e.g. the output of "
                    f"`{GENERATE_SECRET_KEY}`"
                )
            if not self.stripe_secret_key and not self.allow_dummy_payments:
                raise ValueError(
                    "STRIPE_SECRET_KEY is not set: production would run the dummy payment "
                    "provider, whose checkout page lets anyone mark an order paid without "
                    "payment. Set STRIPE_SECRET_KEY (and STRIPE_WEBHOOK_SECRET), or "
                    "ALLOW_DUMMY_PAYMENTS=true to run a demo on the dummy provider anyway"
                )
            if self.metrics_token and len(self.metrics_token) < METRICS_TOKEN_MIN_LENGTH:
                raise ValueError(
                    f"METRICS_TOKEN is refused in production: it has fewer than "
                    f"{METRICS_TOKEN_MIN_LENGTH} characters. Generate one with "
                    f"`{GENERATE_SECRET_KEY}`"
                )
            if self.stripe_secret_key and not self.stripe_webhook_secret:
                raise ValueError("STRIPE_WEBHOOK_SECRET is required when STRIPE_SECRET_KEY is set")
        return self


def own_url(host: str, port: int) -> str:
    """`http://host:port` of a listening address (a wildcard host: the loopback one)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower()


@lru_cache
def get_settings() -> Settings:
    return Settings()
