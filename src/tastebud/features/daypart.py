"""Times of day: the context that cold-start lists and reasons are kept for."""

from __future__ import annotations

__all__ = [
    "DAYPARTS",
    "daypart",
]

DAYPARTS = ("night", "morning", "afternoon", "evening")
"""Times of day (UTC hours 0-5, 6-11, 12-17, 18-23) the lists are kept for."""


def daypart(hour: int) -> str:
    """The time of day an hour (0-23) falls in."""
    return DAYPARTS[(hour % 24) // 6]
