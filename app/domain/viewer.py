"""Who is asking: the viewer of a request or subscription (a client or an agent)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from app.models import Agent, Profile
from app.models.enums import ActorType, Locale


@dataclass(frozen=True)
class Viewer:
    credential_id: uuid.UUID
    email: str
    profile: Profile | None = None
    agent: Agent | None = None
    session_id: uuid.UUID | None = None  # the session its token belongs to

    @property
    def kind(self) -> Literal["profile", "agent"]:
        return "agent" if self.agent else "profile"

    @property
    def is_agent(self) -> bool:
        return self.agent is not None

    @property
    def is_admin(self) -> bool:
        return self.agent is not None and self.agent.is_admin

    @property
    def is_client(self) -> bool:
        return self.profile is not None

    @property
    def actor_type(self) -> ActorType:
        return ActorType.AGENT if self.agent else ActorType.USER

    @property
    def account(self) -> Agent | Profile:
        """The agent, else the profile: a viewer is always one of the two."""
        if self.agent is not None:
            return self.agent
        if self.profile is None:  # pragma: no cover - never built without one
            raise AssertionError("a viewer with neither a profile nor an agent")
        return self.profile

    @property
    def actor_id(self) -> uuid.UUID:
        return self.account.id

    @property
    def locale(self) -> Locale:
        owner = self.agent or self.profile
        return Locale(owner.locale) if owner else Locale.FR
