"""The bench's server process: the API exactly as `create_app()` builds it, mounted beside
the baselines (bench/raw.py) in ONE Starlette app, served by uvicorn on loopback.

Production code carries nothing of this: the combination exists only here. Run by
bench/run.py as `python -m bench.server --port N` with the bench's environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount

from app.main import create_app
from app.settings import get_settings
from app.subscriptions.hub import namespace_for
from bench.raw import Raw


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

    return Starlette(routes=[*raw.routes(), Mount("", app=api)], lifespan=lifespan)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        build_app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
