"""The ASGI entry point for uvicorn: `uvicorn app.asgi:app`."""

from app.main import create_app
from app.runtime import tune_gc

app = create_app()
tune_gc()
