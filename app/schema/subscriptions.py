"""The Subscription root (graphql-transport-ws only; SPEC §2.6).

Every subscription is authorised when it starts (the token of `connection_init` is
verified again; a client may only follow their own dossiers, and another client's dossier
answers exactly like a missing one), the channel name is built here from what was
authorised, and access is re-checked while it streams (app.subscriptions.streams). The
payloads come from the publisher ready to serve: no database query per subscriber.

A live event's root object is built once for all the subscribers it reaches and its
selection executed once per operation document and variables (app.subscriptions.sharing):
the fields of `DossierUpdatedEvent`, `DocumentReviewedEvent` and a live `Message` read
only the payload, never the viewer. `notificationAdded` is not shared (its `deliveries`
reads the database, per subscriber as before; a notification has one recipient anyway).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import strawberry
from starlette.websockets import WebSocket

from app.context import Info
from app.domain.viewer import Viewer
from app.errors import Unauthenticated
from app.models import Message
from app.schema.common import Edge, _decode, _encode, dossier_id_of, gid, row_as
from app.schema.enums import DossierStatus, EventType, ReviewStatus
from app.schema.messages import LiveMessage, MessageType
from app.schema.notifications import NotificationType
from app.security import bearer_token
from app.services import dossiers
from app.subscriptions import topics
from app.subscriptions.hub import Hub, hub_for
from app.subscriptions.sharing import SharedDelivery
from app.subscriptions.streams import AccessGuard, event_stream, message_stream


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _opt_id(value: Any) -> strawberry.ID | None:
    return gid(value) if value else None


@strawberry.type(description="A review recorded on one of a dossier's documents.")
class DocumentReviewedEvent:
    event_id: strawberry.ID
    dossier_id: strawberry.ID
    document_id: strawberry.ID | None
    document_version_id: strawberry.ID | None
    decision: ReviewStatus
    reason: str | None
    reviewer_id: strawberry.ID | None = strawberry.field(description="The reviewing agent.")
    occurred_at: datetime
    dossier_status: DossierStatus | None = strawberry.field(
        description="The dossier's status right after the review."
    )

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> DocumentReviewedEvent:
        return cls(
            event_id=gid(data["eventId"]),
            dossier_id=gid(data["dossierId"]),
            document_id=_opt_id(data.get("documentId")),
            document_version_id=_opt_id(data.get("documentVersionId")),
            decision=ReviewStatus(data["decision"]),
            reason=data.get("reason"),
            reviewer_id=_opt_id(data.get("reviewerId")),
            occurred_at=datetime.fromisoformat(data["occurredAt"]),
            dossier_status=DossierStatus(data["dossierStatus"])
            if data.get("dossierStatus")
            else None,
        )


@strawberry.type(description="A dossier's status or current step changed.")
class DossierUpdatedEvent:
    event_id: strawberry.ID
    dossier_id: strawberry.ID
    event_type: EventType = strawberry.field(
        description="DOSSIER_STATUS_CHANGED, DOSSIER_COMPLETED, DOSSIER_CANCELLED, "
        "STEP_STARTED, STEP_COMPLETED, STEP_SKIPPED or STEP_ASSIGNED."
    )
    occurred_at: datetime
    old_status: DossierStatus | None
    new_status: DossierStatus | None
    reason: str | None
    step_instance_id: strawberry.ID | None = strawberry.field(
        description="The step the event is about, for STEP_* events."
    )
    assigned_to_id: strawberry.ID | None = strawberry.field(description="For STEP_ASSIGNED.")
    status: DossierStatus | None = strawberry.field(description="The dossier's status now.")
    current_step_instance_id: strawberry.ID | None
    completed_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> DossierUpdatedEvent:
        def status(key: str) -> Any:
            return DossierStatus(data[key]) if data.get(key) else None

        return cls(
            event_id=gid(data["eventId"]),
            dossier_id=gid(data["dossierId"]),
            event_type=EventType(data["eventType"]),
            occurred_at=datetime.fromisoformat(data["occurredAt"]),
            old_status=status("oldStatus"),
            new_status=status("newStatus"),
            reason=data.get("reason"),
            step_instance_id=_opt_id(data.get("stepInstanceId")),
            assigned_to_id=_opt_id(data.get("assignedToId")),
            status=status("status"),
            current_step_instance_id=_opt_id(data.get("currentStepInstanceId")),
            completed_at=_dt(data.get("completedAt")),
            updated_at=_dt(data.get("updatedAt")),
        )


@dataclass
class LiveNotification:
    """A notification as published: the attributes NotificationType reads."""

    id: uuid.UUID
    title: str
    message: str
    template_code: str
    action_url: str | None
    read_at: datetime | None
    created_at: datetime
    dossier_id: uuid.UUID | None
    payload: dict[str, Any]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> LiveNotification:
        return cls(
            id=uuid.UUID(data["id"]),
            title=data["title"],
            message=data["message"],
            template_code=data["templateCode"],
            action_url=data.get("actionUrl"),
            read_at=_dt(data.get("readAt")),
            created_at=datetime.fromisoformat(data["createdAt"]),
            dossier_id=uuid.UUID(data["dossierId"]) if data.get("dossierId") else None,
            payload=data.get("payload") or {},
        )


async def _begin(info: Info) -> tuple[Viewer, AccessGuard, Hub]:
    """Who is subscribing (the token verified again: a socket outliving its token or its
    account starts nothing new), the guard that re-checks it, and the hub."""
    context = info.context
    request = context.request
    if not isinstance(request, WebSocket):
        raise Unauthenticated("Subscriptions run over WebSocket (graphql-transport-ws).")
    context.forget_viewer()
    viewer = await context.require_viewer()
    token = bearer_token(context._authorization())
    if token is None:  # pragma: no cover - require_viewer needed one
        raise Unauthenticated()
    state = request.app.state
    settings = state.settings
    hub: Hub = getattr(state, "hub", None) or hub_for(settings)
    guard = AccessGuard(token, recheck_seconds=settings.subscription_recheck_seconds)
    return viewer, guard, hub


def _message_edge(data: dict[str, Any]) -> Edge[MessageType]:
    node = LiveMessage.from_data(data)
    cursor = _encode([node.created_at, node.id])
    return Edge(cursor=cursor, node=row_as(MessageType, node))


async def _dossier_id(
    viewer: Viewer, value: strawberry.ID, guard: AccessGuard | None = None
) -> uuid.UUID:
    """A dossier the viewer may follow; else NOT_FOUND, for missing and foreign alike.
    With `guard`, a client's access is re-checked while the stream runs: a member removed
    from the dossier stops following it."""
    dossier = await dossiers.get_dossier(viewer, await dossier_id_of(value))
    member = viewer.profile is not None and dossier.user_id != viewer.profile.id
    if guard is not None and member:  # its client and agents cannot lose it

        async def still_visible() -> None:
            await dossiers.get_dossier(viewer, dossier.id)

        guard.also_check(still_visible)
    return dossier.id


async def _scope(
    viewer: Viewer,
    guard: AccessGuard,
    dossier_id: strawberry.ID | None,
    of_dossier: Callable[[uuid.UUID], str],
    of_agents: str,
    of_client: Callable[[uuid.UUID], str],
) -> str:
    """The channel of one dossier the viewer may follow, else all dossiers for agents and
    the client's own for clients."""
    if dossier_id is not None:
        return of_dossier(await _dossier_id(viewer, dossier_id, guard))
    return of_agents if viewer.is_agent else of_client(viewer.actor_id)


async def _shared(
    info: Info, stream: AsyncIterator[dict[str, Any]], build: Callable[[dict[str, Any]], Any]
) -> AsyncIterator[Any]:
    """Each event's root, built and executed once for every subscriber running the same
    operation (app.subscriptions.sharing); what was already sent directly is not yielded."""
    share = SharedDelivery(info)
    async for data in stream:
        root = share.root(data, build, build)
        if not await share.sent(root):
            yield root


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Messages of a dossier as they are sent. With `after` (a message "
        "cursor), first the messages sent since, then live ones: no gap, no duplicate."
    )
    async def message_added(
        self, info: Info, dossier_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[Edge[MessageType], None]:
        viewer, guard, hub = await _begin(info)
        key = None
        if after is not None:
            created_at, message_id = _decode(after, Message, ("created_at", "id"))
            key = (created_at, message_id)
        target = await _dossier_id(viewer, dossier_id, guard)
        stream = message_stream(hub, guard, target, key, from_now=after is None)
        async for root in _shared(info, stream, _message_edge):
            yield root

    @strawberry.subscription(
        description="Document reviews: in one dossier, or (without `dossierId`) in all "
        "dossiers for agents and in your own for clients."
    )
    async def document_reviewed(
        self, info: Info, dossier_id: strawberry.ID | None = None
    ) -> AsyncGenerator[DocumentReviewedEvent, None]:
        viewer, guard, hub = await _begin(info)
        channel = await _scope(
            viewer,
            guard,
            dossier_id,
            topics.dossier_reviews,
            topics.AGENT_REVIEWS,
            topics.client_reviews,
        )
        stream = event_stream(hub, guard, channel, kind="review")
        async for root in _shared(info, stream, DocumentReviewedEvent.from_data):
            yield root

    @strawberry.subscription(
        description="Status and current-step changes: of one dossier, or (without "
        "`dossierId`) of all dossiers for agents and of your own for clients."
    )
    async def dossier_updated(
        self, info: Info, dossier_id: strawberry.ID | None = None
    ) -> AsyncGenerator[DossierUpdatedEvent, None]:
        viewer, guard, hub = await _begin(info)
        channel = await _scope(
            viewer,
            guard,
            dossier_id,
            topics.dossier_updates,
            topics.AGENT_UPDATES,
            topics.client_updates,
        )
        stream = event_stream(hub, guard, channel, kind="update")
        async for root in _shared(info, stream, DossierUpdatedEvent.from_data):
            yield root

    @strawberry.subscription(description="Your notifications, as they are created.")
    async def notification_added(self, info: Info) -> AsyncGenerator[NotificationType, None]:
        viewer, guard, hub = await _begin(info)
        channel = topics.notifications(viewer.kind, viewer.actor_id)
        async for data in event_stream(hub, guard, channel, kind="n"):
            yield row_as(NotificationType, LiveNotification.from_data(data))
