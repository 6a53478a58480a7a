"""The reminder schedule's grammar: "start+2d", "due-1d", "due" (a value, no database).

Settings validates `DOCUMENT_REMINDER_SCHEDULE` with it at start-up; `app.services.deadlines`
plans each step's reminders from the parsed slots.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_SLOT = re.compile(r"^(start|due)(?:([+-])(\d{1,4})([hd]))?$")


@dataclass(frozen=True, order=True)
class Slot:
    """One entry of the reminder schedule: an anchor and an offset in hours."""

    anchor: str  # "start" or "due"
    hours: int  # signed

    @property
    def name(self) -> str:
        if self.hours == 0:
            return self.anchor
        return f"{self.anchor}{'+' if self.hours > 0 else '-'}{abs(self.hours)}h"


def parse_schedule(entries: Sequence[str]) -> list[Slot]:
    """["start+2d", "due-1d", "due"] -> slots, in a canonical form (hours), deduplicated.

    Raises ValueError naming the entry at fault."""
    slots: set[Slot] = set()
    for raw in entries:
        match = _SLOT.match(str(raw).strip().lower())
        if match is None:
            raise ValueError(
                f"reminder slot {raw!r}: expected start+<n>h|d, due-<n>h|d, due+<n>h|d or due"
            )
        anchor, sign, number, unit = match.groups()
        hours = int(number or 0) * (24 if unit == "d" else 1) * (-1 if sign == "-" else 1)
        if anchor == "start" and hours <= 0:
            raise ValueError(f"reminder slot {raw!r}: a start slot comes after the start")
        slots.add(Slot(anchor, hours))
    return sorted(slots)


def expiry_margins(value: str) -> list[int]:
    """DOCUMENT_EXPIRY_MARGINS_DAYS ("90,30"): distinct positive day counts, largest
    first (the order reminders go out in); ValueError for anything else."""
    margins: set[int] = set()
    for part in value.split(","):
        text = part.strip()
        if not text:
            continue
        if not text.isdigit() or int(text) < 1 or int(text) > 3660:
            raise ValueError(f"expiry margin {text!r}: days between 1 and 3660")
        margins.add(int(text))
    return sorted(margins, reverse=True)
