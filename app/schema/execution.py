"""The executor the schema runs with: strawberry's, with the shortcuts of app.compat.

`Executor` answers exactly as graphql-core's own (tests/test_execution.py compares them):
values known never to be awaitable and plain scalar fields are answered directly
(`app.compat.graphql_core.PlainFieldExecution`), and a live event's selection is
executed once for all subscribers running the same operation (`SharedEventExecution`).
`FAST_PATHS=false` builds the schema without it (see `app.api.build_schema`).
"""

from __future__ import annotations

from app.compat.graphql_core import PlainFieldExecution, SharedEventExecution, is_awaitable
from app.compat.strawberry import ExecutionContextBase, lean_resolvers

__all__ = ["Executor", "is_awaitable", "lean_resolvers"]


class Executor(SharedEventExecution, PlainFieldExecution, ExecutionContextBase):
    """strawberry's execution context with the shortcuts above."""
