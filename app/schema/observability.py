"""The schema's part of the operator's view: each operation counted and timed by name and
outcome (app.metrics), running subscriptions counted, and the operation's name given to
every log line while it runs (app.logs)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from graphql import OperationDefinitionNode
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app import logs, metrics

# Top-level error codes that mean "not for you" (deny by default, throttling).
REFUSALS = frozenset({"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "RATE_LIMITED"})


def outcome_of(result: Any) -> str:
    """ok, user_error, refused or error, from an operation's (masked) result."""
    if result is None:
        return "error"
    errors = getattr(result, "errors", None)
    if errors:
        codes = [(getattr(e, "extensions", None) or {}).get("code") for e in errors]
        return "refused" if all(code in REFUSALS for code in codes) else "error"
    data = getattr(result, "data", None)
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, dict) and value.get("userErrors"):
                return "user_error"
    return "ok"


def _name_in_document(context: Any) -> str | None:
    """The operation's name as the document has it; `metrics.UNKNOWN` when the document
    could not be read or has no such operation."""
    document = context.graphql_document
    if document is None:
        return metrics.UNKNOWN
    wanted = context.operation_name
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    for op in operations:
        name = op.name.value if op.name else None
        if wanted is None or name == wanted:
            return name
    return metrics.UNKNOWN


class OperationMetrics(SchemaExtension):
    """Outermost extension: its end runs after the errors are masked (ErrorTiers), so the
    outcome is read from what the client gets."""

    def __init__(self, names: metrics.OperationNames) -> None:
        self.names = names
        self.subscription = False

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        context = self.execution_context
        previous = logs.operation.get()
        logs.operation.set(context.operation_name)
        try:
            yield
        finally:
            # not reset(token): a subscription's stream may be closed from another task
            # (another context), where a token of this one is refused
            logs.operation.set(previous)
            if self.subscription:
                metrics.OPEN_SUBSCRIPTIONS.dec()
            else:
                label = self.names.label(_name_in_document(context))
                outcome = outcome_of(context.result)
                metrics.record_operation(label, outcome, time.perf_counter() - started)

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        name = context.operation_name
        if name is not None and logs.operation.get() != name:
            logs.operation.set(name)  # the document's own name, until the operation ends
        if context.operation_type is OperationType.SUBSCRIPTION:
            self.subscription = True
            metrics.OPEN_SUBSCRIPTIONS.inc()
        yield


def operation_metrics(max_names: int) -> Callable[[], OperationMetrics]:
    """The extension's factory: one name registry per schema (so per process)."""
    names = metrics.OperationNames(max_names)
    return lambda: OperationMetrics(names)
