"""The `worker` process: runs the periodic jobs until SIGTERM/SIGINT.

Jobs are plain coroutines registered in `JOBS` with their period; each runs in its own
loop so a slow one never delays the others, and an exception is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.db import database

logger = logging.getLogger("app.worker")


@dataclass(frozen=True)
class Job:
    name: str
    period_seconds: float
    run: Callable[[], Awaitable[object]]


# Filled by the domains that need background work (deliveries, reminders, outbox relay).
JOBS: list[Job] = []


async def _loop(job: Job, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await job.run()
        except Exception:
            logger.exception("job %s failed; retrying in %.0fs", job.name, job.period_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=job.period_seconds)


async def run_jobs(stop: asyncio.Event, jobs: list[Job] | None = None) -> None:
    jobs = JOBS if jobs is None else jobs
    logger.info("worker running %d job(s): %s", len(jobs), ", ".join(j.name for j in jobs))
    await asyncio.gather(*(_loop(job, stop) for job in jobs), stop.wait())


async def run_worker() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with database():
        await run_jobs(stop)
    logger.info("worker stopped")
