"""Schema extensions: the three error tiers, per-operation loaders."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from graphql import FragmentDefinitionNode, GraphQLError, OperationDefinitionNode
from starlette.background import BackgroundTasks
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.extensions import MaskErrors, SchemaExtension

from app.dataloaders import Loaders
from app.errors import AccessError
from app.schema.limits import selected_fields
from app.services import outbox

logger = logging.getLogger("app.graphql")
MASKED_MESSAGE = "Unexpected error."
SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class ErrorTiers(MaskErrors):
    """Access errors get `extensions.code`; unexpected ones are logged and masked.

    Parse and validation errors (no original exception) pass through as they are.
    """

    def __init__(self, *, hide_suggestions: bool = False) -> None:
        super().__init__(error_message=MASKED_MESSAGE)
        self.hide_suggestions = hide_suggestions

    def _process_result(self, result: object) -> None:
        # MaskErrors checks `isinstance(result, <runtime_checkable Protocol>)`: ~30 us on
        # every result (every live-update delivery), for what is one attribute read.
        if hasattr(result, "errors") and result.errors:
            result.errors = self._process_errors(result.errors)

    def _request_id(self) -> str | None:
        context = self.execution_context.context
        return getattr(context, "request_id", None)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = []
        for error in errors:
            original = error.original_error
            if original is None or isinstance(original, GraphQLError):
                if self.hide_suggestions and SUGGESTION.search(error.message):
                    # "Did you mean …?" would reveal the schema with introspection off
                    error = GraphQLError(
                        SUGGESTION.sub("", error.message),
                        nodes=error.nodes,
                        source=error.source,
                        positions=error.positions,
                        path=error.path,
                        extensions=error.extensions,
                    )
                processed.append(error)
            elif isinstance(original, AccessError):
                processed.append(
                    GraphQLError(
                        original.message,
                        nodes=error.nodes,
                        source=error.source,
                        positions=error.positions,
                        path=error.path,
                        extensions={"code": original.code},
                    )
                )
            else:
                request_id = self._request_id()
                logger.error(
                    "unexpected error in %s (request %s)",
                    ".".join(str(p) for p in error.path or []),
                    request_id,
                    exc_info=original,
                )
                processed.append(
                    GraphQLError(
                        MASKED_MESSAGE,
                        nodes=error.nodes,
                        source=error.source,
                        positions=error.positions,
                        path=error.path,
                        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
                    )
                )
        return processed


class FreshLoaders(SchemaExtension):
    """A WebSocket keeps one context for all its operations: give each operation new loaders,
    so nothing cached by one operation is served stale to the next."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(getattr(context, "request", None), WebSocket):
            context.loaders = Loaders()
        yield


class DispatchEvents(SchemaExtension):
    """Hands the events an operation recorded to the outbox once it is over (committed).
    With `after_response` (DISPATCH_AFTER_RESPONSE, on by default), over HTTP the dispatch
    (notifications, live updates) runs once the response is sent: the answer waits only for
    the commit. The ASGI call still ends with the dispatch (a server's graceful shutdown
    waits for it); a crash in between leaves the committed event to the relay."""

    def __init__(self, *, after_response: bool = False) -> None:
        self.after_response = after_response

    async def on_operation(self) -> AsyncIterator[None]:
        response = getattr(self.execution_context.context, "response", None)
        defer = None
        if self.after_response and isinstance(response, Response):
            defer = after_response(response)
        async with outbox.collecting(defer=defer):
            yield


def after_response(response: Response) -> Callable[[Callable[[], Awaitable[None]]], None]:
    """Run a coroutine function once `response` has been sent (a Starlette background
    task; strawberry hands the sub-response's background to the response it sends)."""

    def defer(job: Callable[[], Awaitable[None]]) -> None:
        tasks = response.background
        if not isinstance(tasks, BackgroundTasks):
            tasks = BackgroundTasks([tasks] if tasks is not None else [])
            response.background = tasks
        tasks.add_task(job)

    return defer


# What a client whose account is not active (PENDING: never paid; SUSPENDED: a payment
# failed) may do: log in and manage its session and security, see and pay its own orders
# (and the notifications about them), edit its profile. Anything else is FORBIDDEN.
INACTIVE_CLIENT_FIELDS = frozenset(
    {
        "__typename",
        # queries
        "me",
        "mySessions",
        "orders",
        "order",
        "paymentLink",
        "notifications",
        "unreadNotificationCount",
        # mutations
        "login",
        "completeTwoFactorLogin",
        "refreshSession",
        "logout",
        "logoutEverywhere",
        "revokeSession",
        "requestPasswordReset",
        "resetPassword",
        "acceptInvitation",
        "registerWithPaymentLink",
        "beginTwoFactorEnrolment",
        "confirmTwoFactorEnrolment",
        "disableTwoFactor",
        "updateMyProfile",
        "changePassword",
        "resumeCheckout",
        "redeemPaymentLink",  # paying: a renewal or a second service
        "markNotificationsRead",
        # subscriptions
        "notificationAdded",
    }
)


def _root_fields(context: Any) -> set[str] | None:
    """The operation's root field names (through fragments); None when unknown."""
    document = context.graphql_document
    if document is None:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if context.operation_name:
        operations = [o for o in operations if o.name and o.name.value == context.operation_name]
    if len(operations) != 1:
        return None
    return {
        node.name.value
        for node, _ in selected_fields(operations[0].selection_set, fragments, frozenset())
    }


class AccountState(SchemaExtension):
    """Marks each operation the restricted clients may run (`Context.inactive_allowed`):
    only root fields of INACTIVE_CLIENT_FIELDS. The gate itself is in
    `Context.require_viewer`, so what this extension does not look at (an operation it
    could not read) is refused to them by default."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if hasattr(context, "inactive_allowed"):
            context.inactive_allowed = False  # a WebSocket's context serves many operations
        yield

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        if hasattr(context, "inactive_allowed"):
            fields = _root_fields(self.execution_context)
            context.inactive_allowed = fields is not None and fields <= INACTIVE_CLIENT_FIELDS
        yield
