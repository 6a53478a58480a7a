"""The service's clock for time-based account rules (token and session expiry, reset
links, invitations, two-factor codes, throttling windows).

`now()` is the wall clock in UTC. Tests move it with `travel()` (a fixed offset that every
caller in the process sees) instead of sleeping: the rules under test read this clock, so
a test that jumps 31 minutes ahead sees a reset link expire exactly as a user would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta()


def now() -> datetime:
    return datetime.now(UTC) + _offset


def travel(by: timedelta) -> None:
    """Move the clock forward (or back) by `by`; cumulative."""
    global _offset
    _offset += by


def reset() -> None:
    global _offset
    _offset = timedelta()
