from __future__ import annotations

import strawberry

from app.context import Info
from app.errors import DomainError, NotFound
from app.models import Dossier, StepInstance
from app.schema.chasing import MoveStepDueDateInput
from app.schema.common import dossier_id_of, parse_id, row_as, user_errors
from app.schema.dossiers import DossierType
from app.schema.steps import StepInstanceType
from app.schema.workflow import (
    AssignStepInput,
    ChangeDossierStatusInput,
    ChangeDossierStatusPayload,
    CompleteStepInput,
    SkipStepInput,
    StepInstancePayload,
    WorkflowErrorCode,
    WorkflowUserError,
)
from app.services.codes import WorkflowErrorCode as Code
from app.services.workflow import actions


def _errors(error: DomainError) -> list[WorkflowUserError]:
    return user_errors(error, WorkflowUserError, WorkflowErrorCode)


async def _step_payload(dossier: Dossier, step: StepInstance) -> StepInstancePayload:
    # re-read: the engine may have moved both past what the caller holds
    return StepInstancePayload(
        step_instance=row_as(StepInstanceType, await StepInstance.get(id=step.id)),
        dossier=row_as(DossierType, await Dossier.get(id=dossier.id)),
    )


@strawberry.type
class WorkflowMutation:
    @strawberry.mutation(
        description="Agents: put a dossier on hold, release the hold, or cancel it (with a "
        "reason, kept in the status history)."
    )
    async def change_dossier_status(
        self, info: Info, input: ChangeDossierStatusInput
    ) -> ChangeDossierStatusPayload:
        viewer = await info.context.require_agent()
        try:
            dossier = await actions.change_status(
                viewer,
                await dossier_id_of(input.dossier_id),
                actions.StatusAction(input.action),
                input.reason,
            )
        except DomainError as error:
            return ChangeDossierStatusPayload(user_errors=_errors(error))
        return ChangeDossierStatusPayload(dossier=row_as(DossierType, dossier))

    @strawberry.mutation(
        description="Agents: complete the dossier's current step (one with no document, "
        "or all approved); the next step starts."
    )
    async def complete_step(self, info: Info, input: CompleteStepInput) -> StepInstancePayload:
        viewer = await info.context.require_agent()
        try:
            dossier, step = await actions.complete_step(
                viewer, parse_id(input.step_instance_id, what="step")
            )
        except DomainError as error:
            return StepInstancePayload(user_errors=_errors(error))
        return await _step_payload(dossier, step)

    @strawberry.mutation(description="Agents: skip an optional step (is_required false).")
    async def skip_step(self, info: Info, input: SkipStepInput) -> StepInstancePayload:
        viewer = await info.context.require_agent()
        try:
            dossier, step = await actions.skip_step(
                viewer, parse_id(input.step_instance_id, what="step"), input.reason
            )
        except DomainError as error:
            return StepInstancePayload(user_errors=_errors(error))
        return await _step_payload(dossier, step)

    @strawberry.mutation(
        description="Agents: move the due date of a dossier's current step (with a reason, "
        "told to the client); its reminders follow the new date."
    )
    async def move_step_due_date(
        self, info: Info, input: MoveStepDueDateInput
    ) -> StepInstancePayload:
        viewer = await info.context.require_agent()
        try:
            dossier, step = await actions.move_due_date(
                viewer, parse_id(input.step_instance_id, what="step"), input.due_at, input.reason
            )
        except DomainError as error:
            return StepInstancePayload(user_errors=_errors(error))
        return await _step_payload(dossier, step)

    @strawberry.mutation(description="Agents: assign a step to an active agent (null: unassign).")
    async def assign_step(self, info: Info, input: AssignStepInput) -> StepInstancePayload:
        viewer = await info.context.require_agent()
        try:
            agent_id = parse_id(input.agent_id, what="agent") if input.agent_id else None
        except NotFound:
            return StepInstancePayload(
                user_errors=_errors(DomainError(Code.UNKNOWN_AGENT, "No such agent.", "agentId"))
            )
        try:
            dossier, step = await actions.assign_step(
                viewer, parse_id(input.step_instance_id, what="step"), agent_id
            )
        except DomainError as error:
            return StepInstancePayload(user_errors=_errors(error))
        return await _step_payload(dossier, step)
