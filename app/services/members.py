"""The members of a dossier besides its client (issue 18): a spouse, children, the
associates of a company. The owner client and agents add and remove them; each is a client
profile, reused by e-mail or created with an invitation to choose a password. A member
sees the dossier, chats, gets its notifications and sends their own documents: the
per-member document types of the running step are asked of a member who joins."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from app.db import Writes
from app.domain.viewer import Viewer
from app.errors import DomainError, NotFound
from app.models import (
    Document,
    DocumentType,
    Dossier,
    DossierMember,
    StepInstance,
)
from app.models.enums import DocumentStatus, EventType
from app.models.members import DEFAULT_MEMBER_ROLES
from app.services import events
from app.services.codes import MemberErrorCode
from app.services.dossiers import get_dossier
from app.services.recovery import client_by_email, invite_client
from app.services.validation import check_code, check_name, normalise_email
from app.services.workflow.machine import ACTIVE, lock_dossier
from app.services.workflow.steps import asked_documents

MAX_MEMBERS = 20  # a family or a company's associates; the node budget counts by it


async def member_roles() -> list[str]:
    """The roles the catalogue defines: the defaults and those of per-member types."""
    named = await DocumentType.filter(per_member_role__not_isnull=True).values_list(
        "per_member_role", flat=True
    )
    return sorted({*DEFAULT_MEMBER_ROLES, *(str(r) for r in named)})


async def _managed(viewer: Viewer, dossier_id: uuid.UUID) -> Dossier:
    """The dossier, if the viewer may manage its members: an agent or its owner client.
    A member is refused; anyone else gets NotFound, as for a missing dossier."""
    dossier = await get_dossier(viewer, dossier_id)
    if not viewer.is_agent and (viewer.profile is None or dossier.user_id != viewer.profile.id):
        raise DomainError(
            MemberErrorCode.NOT_ALLOWED, "Only the dossier's client or an agent manages members."
        )
    return dossier


async def add_member(
    viewer: Viewer, dossier_id: uuid.UUID, *, email: str, full_name: str, role: str
) -> tuple[DossierMember, bool]:
    """The new member, and whether they were invited (a new account)."""
    email = normalise_email(email, "email")
    full_name = check_name(full_name, "fullName")
    role = check_code(role, "role")
    if role not in await member_roles():
        raise DomainError(MemberErrorCode.UNKNOWN_ROLE, f"No member role {role}.", "role")
    dossier = await _managed(viewer, dossier_id)
    async with in_transaction():
        dossier = await lock_dossier(dossier.id)
        existing = await client_by_email(email)
        if existing is not None and existing.id == dossier.user_id:
            raise DomainError(MemberErrorCode.IS_OWNER, "This is the dossier's client.", "email")
        active = await DossierMember.filter(dossier_id=dossier.id, removed_at=None)
        if existing is not None and any(m.profile_id == existing.id for m in active):
            raise DomainError(
                MemberErrorCode.ALREADY_MEMBER, "This person is already a member.", "email"
            )
        if len(active) >= MAX_MEMBERS:
            raise DomainError(
                MemberErrorCode.TOO_MANY_MEMBERS, f"A dossier has at most {MAX_MEMBERS} members."
            )
        invited = existing is None
        profile = existing or await invite_client(viewer, email=email, full_name=full_name)
        member = await DossierMember.create(dossier_id=dossier.id, profile_id=profile.id, role=role)
        await events.record(
            "dossier",
            dossier.id,
            EventType.DOSSIER_MEMBER_ADDED,
            actor=viewer,
            payload={"memberId": str(member.id), "profileId": str(profile.id), "role": role},
        )
        await _ask_of_new_member(dossier, member)
    return member, invited


async def _ask_of_new_member(dossier: Dossier, member: DossierMember) -> None:
    """A member who joins while a step runs is asked for that step's per-member types."""
    if dossier.status not in ACTIVE or dossier.current_step_instance_id is None:
        return
    step = await StepInstance.get(id=dossier.current_step_instance_id)
    wanted = [t for t, m in await asked_documents(dossier, step) if m == member.id]
    if wanted:
        batch = Writes()
        batch.insert(
            *(
                Document(
                    dossier_id=dossier.id,
                    document_type_id=type_id,
                    step_instance_id=step.id,
                    member_id=member.id,
                    status=DocumentStatus.PENDING,
                )
                for type_id in wanted
            )
        )
        await batch.run()


async def remove_member(viewer: Viewer, member_id: uuid.UUID) -> DossierMember:
    """End a member's access (their documents stay); removing twice is a no-op."""
    member = await DossierMember.filter(id=member_id).first()
    if member is None:
        raise NotFound("No such member.")
    try:
        dossier = await _managed(viewer, member.dossier_id)
    except NotFound:
        raise NotFound("No such member.") from None
    async with in_transaction():
        member = await DossierMember.filter(id=member_id).select_for_update().get()
        if member.removed_at is None:
            member.removed_at = datetime.now(UTC)
            await member.save(update_fields=["removed_at"])
            await events.record(
                "dossier",
                dossier.id,
                EventType.DOSSIER_MEMBER_REMOVED,
                actor=viewer,
                payload={"memberId": str(member.id), "profileId": str(member.profile_id)},
            )
    return member
