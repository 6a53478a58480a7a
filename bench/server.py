"""The bench's server process: the API exactly as `create_app()` builds it, mounted beside
the baselines (bench/raw.py) in ONE Starlette app, served by uvicorn on loopback.

Production code carries nothing of this: the combination exists only here. Run by
bench/run.py as `python -m bench.server --port N` with the bench's environment.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from app.main import create_app
from app.settings import get_settings
from app.subscriptions.hub import namespace_for
from bench.raw import Raw


class GcPauses:
    """Garbage-collector pauses of the server process, per generation (bench insight)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.pauses[info["generation"]].append(time.perf_counter() - self.started)

    async def report(self, request: Request) -> JSONResponse:
        if request.query_params.get("reset"):
            self.pauses = {0: [], 1: [], 2: []}
        figures: dict[str, Any] = {
            str(gen): {
                "count": len(p),
                "total_ms": round(sum(p) * 1000, 1),
                "max_ms": round(max(p, default=0) * 1000, 1),
            }
            for gen, p in self.pauses.items()
        }
        if request.query_params.get("objects"):
            kinds = Counter(type(o).__qualname__ for o in gc.get_objects())
            figures["tracked_objects"] = sum(kinds.values())
            figures["top_types"] = kinds.most_common(25)
        return JSONResponse(figures)


def build_app() -> Starlette:
    settings = get_settings()
    api = create_app(settings)
    raw = Raw(settings, namespace_for(settings.database_url, settings.broadcast_prefix))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        profile = os.environ.get("BENCH_PROFILE")  # a pyinstrument profile of the run
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled", interval=0.001)
            profiler.start()
        async with api.router.lifespan_context(api):
            await raw.open()
            try:
                yield
            finally:
                await raw.close()
                if profiler is not None:
                    session = profiler.stop()
                    session.save(profile + ".pyisession")  # pyinstrument --load=… to explore
                    with open(profile, "w") as out:
                        out.write(profiler.output_text(unicode=False, color=False))

    pauses = GcPauses()
    routes = [*raw.routes(), Route("/bench/raw/gc", pauses.report), Mount("", app=api)]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build_app()
    try:  # as app/asgi.py does in production (absent from checkouts older than it)
        from app.runtime import tune_gc
    except ImportError:
        pass
    else:
        tune_gc()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
        backlog=4096,
        ws_per_message_deflate=False,  # as `python -m app serve` and the Procfile run it
    )


if __name__ == "__main__":
    main()
