"""The `worker` process: runs the periodic jobs until SIGTERM/SIGINT.

Jobs are plain coroutines registered in `JOBS` with their period; each runs in its own
loop so a slow one never delays the others, and an exception is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import uvicorn

from app import logs, metrics, tracing
from app.consumers import install_consumers
from app.db import database
from app.http.metrics import metrics_app
from app.services import (
    chasing,
    delivery,
    document_expiry,
    outbox,
    reminders,
    retention,
    sessions,
)
from app.services.privacy import exports
from app.settings import Settings, get_settings

logger = logging.getLogger("app.worker")


@dataclass(frozen=True)
class Job:
    name: str
    period_seconds: float
    run: Callable[[], Awaitable[object]]


# Filled by the domains that need background work (deliveries, reminders, outbox relay).
JOBS: list[Job] = []


def _notification_jobs() -> list[Job]:
    return [
        Job("deliveries", 2.0, delivery.run),  # email/SMS/WhatsApp sends and their retries
        Job("outbox-relay", 5.0, outbox.dispatch),  # events no request managed to dispatch
        Job("payment-reminders", 30.0, reminders.send_due_reminders),  # their schedule
    ]


JOBS += _notification_jobs()


def _chasing_jobs() -> list[Job]:
    return [
        Job("document-reminders", 60.0, chasing.send_document_reminders),  # missing documents
        Job("overdue-escalation", 60.0, chasing.escalate_overdue_steps),  # agents, once a step
        Job("reminder-planning", 600.0, chasing.plan_missing),  # steps started before plans
        # approved documents nearing their expiry: reminders and renewal offers
        Job("document-expiry", 600.0, document_expiry.send_expiry_reminders),
    ]


JOBS += _chasing_jobs()
# Sessions and reset/invitation tokens long over (app/services/sessions.py).
JOBS.append(Job("account-housekeeping", 3600.0, sessions.purge_ended))
# The GDPR (issue 19): data-export archives built and expired, stored files an erasure or
# an expiry could not delete yet retried (app/services/privacy/).
JOBS.append(Job("data-exports", 30.0, exports.run))
# Uploaded files of ended dossiers: the notice, then the deletion (app/services/retention.py).
JOBS.append(Job("document-retention", 3600.0, retention.run_pass))


async def run_pass(job: Job) -> bool:
    """One pass of a job, timed (`dossier_worker_pass_duration_seconds`); False when it
    failed (logged, never raised)."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        await job.run()
    except Exception:
        outcome = "failed"
        logger.exception("job %s failed; retrying in %.0fs", job.name, job.period_seconds)
    metrics.WORKER_PASS.labels(job.name, outcome).observe(time.perf_counter() - started)
    return outcome == "ok"


async def _loop(job: Job, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await run_pass(job)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=job.period_seconds)


async def run_jobs(stop: asyncio.Event, jobs: list[Job] | None = None) -> None:
    jobs = JOBS if jobs is None else jobs
    logger.info("worker running %d job(s): %s", len(jobs), ", ".join(j.name for j in jobs))
    await asyncio.gather(*(_loop(job, stop) for job in jobs), stop.wait())


@contextlib.asynccontextmanager
async def in_process(enabled: bool = True) -> AsyncIterator[None]:
    """Run the jobs inside another process's event loop (the web app on the embedded
    default) for the duration of the block; stop them gracefully at its end."""
    if not enabled:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(run_jobs(stop), name="in-process-worker")
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:  # wait_for cancelled it: claims in flight are handed back
            logger.warning("in-process worker did not stop within 10s; cancelled")


class _MetricsServer(uvicorn.Server):
    """uvicorn without its signal handlers: the worker's own stop it (run_worker)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def metrics_server(settings: Settings) -> AsyncIterator[uvicorn.Server | None]:
    """The worker's own `/metrics` on WORKER_METRICS_PORT (same token as the web's), for
    the duration of the block; nothing when the port is unset."""
    if settings.worker_metrics_port is None:
        yield None
        return
    config = uvicorn.Config(
        metrics_app(settings),
        host=settings.worker_metrics_host,
        port=settings.worker_metrics_port,
        lifespan="off",
        access_log=False,
        log_config=None,
    )
    server = _MetricsServer(config)
    task = asyncio.create_task(server.serve(), name="worker-metrics")
    try:
        yield server
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=5)


async def run_worker() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    install_consumers()
    settings = get_settings()
    logs.install_record_factory()
    if settings.otel_enabled:
        tracing.configure(settings.otel_service_name + "-worker")
    async with database(), metrics_server(settings):
        await run_jobs(stop)
    logger.info("worker stopped")
