"""The dossier workflow (SPEC 2.2), in four parts:

- `machine`: the statuses and the moves allowed between them (`TRANSITIONS`, `transition`);
- `steps`: the step engine (starting and settling steps, due dates, opening a dossier);
- `actions`: what agents do to dossiers and steps (hold / release / cancel, complete,
  skip, assign, move a due date);
- `timeline`: the dossier's timeline, a read model.

Import from the module that defines a name; the names are also re-exported here.
"""

from app.services.workflow.actions import (
    StatusAction,
    assign_step,
    change_status,
    complete_step,
    move_due_date,
    skip_step,
)
from app.services.workflow.machine import (
    ACTIVE,
    TRANSITIONS,
    Cause,
    can_move,
    derived_status,
    lock_dossier,
    transition,
)
from app.services.workflow.steps import current_step, open_dossier, settle, start_step
from app.services.workflow.timeline import TimelineItem, TimelineKind, timelines

__all__ = [
    "ACTIVE",
    "TRANSITIONS",
    "Cause",
    "StatusAction",
    "TimelineItem",
    "TimelineKind",
    "assign_step",
    "can_move",
    "change_status",
    "complete_step",
    "current_step",
    "derived_status",
    "lock_dossier",
    "move_due_date",
    "open_dossier",
    "settle",
    "skip_step",
    "start_step",
    "timelines",
    "transition",
]
