"""Log lines that say which request and which GraphQL operation they belong to.

Two context variables hold the request id (set by the HTTP layer for the whole request or
WebSocket, echoed as `X-Request-ID`) and the GraphQL operation name (set by the schema
while an operation runs). A log record factory copies them onto every record created
while they are set, whatever the logger (ours, uvicorn's access log, a library's), as
`record.request_id` and `record.operation` ("-" when unset).

LOG_FORMAT=json writes one JSON object a line (`ts`, `level`, `logger`, `message`,
`request_id`, `operation`, `exc_info`), the production default; `text` the classic line
with `[request_id operation]`. What a line says is unchanged: the access log still has
its query strings redacted (app/http/access_log.py), and nothing here adds a header, a
variable or a token to a line.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "log_request_id", default=None
)
operation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "log_operation", default=None
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(operation)s]: %(message)s"
_installed = False


def install_record_factory() -> None:
    """Idempotent: every record created from now on carries `request_id` and `operation`."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = request_id.get() or "-"
        record.operation = operation.get() or "-"
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class TextFormatter(logging.Formatter):
    """The classic line, with `[request_id operation]`."""

    def __init__(self, fmt: str = TEXT_FORMAT, **kwargs: Any) -> None:
        install_record_factory()  # wherever the formatter is configured (uvicorn's workers)
        kwargs.setdefault("defaults", {"request_id": "-", "operation": "-"})
        super().__init__(fmt, **kwargs)


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        install_record_factory()
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or "-",
            "operation": getattr(record, "operation", None) or "-",
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level: str, log_format: str) -> None:
    """The process's logging: one stderr handler on the root logger in `log_format`."""
    install_record_factory()
    logging.basicConfig(level=level, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(log_format))


def uvicorn_log_config(level: str, log_format: str) -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers and the root one in `log_format`, applied by
    uvicorn in each process it starts (also the `--workers` ones)."""
    factory = "app.logs.JsonFormatter" if log_format == "json" else "app.logs.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": factory}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"level": "INFO"},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"level": "INFO"},
        },
    }
