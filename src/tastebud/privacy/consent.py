"""Consent purposes and the policy that decides whether an event may be processed."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ConsentPolicy",
    "PURPOSES",
    "Purpose",
]

Purpose = Literal["analytics", "personalization"]
PURPOSES: tuple[Purpose, ...] = ("analytics", "personalization")


class ConsentPolicy:
    """Decides from a stored consent state (``True``, ``False`` or never set: ``None``).

    In ``opt-out`` mode processing is allowed unless consent was explicitly withdrawn; in
    ``opt-in`` mode only after it was explicitly granted.

    >>> ConsentPolicy("opt-out").allows(None), ConsentPolicy("opt-in").allows(None)
    (True, False)
    """

    __slots__ = ("mode",)

    def __init__(self, mode: Literal["opt-out", "opt-in"]) -> None:
        self.mode = mode

    def allows(self, state: bool | None) -> bool:
        """Whether processing is allowed given the stored state."""
        if state is None:
            return self.mode == "opt-out"
        return state

    def effective(self, state: bool | None) -> bool:
        """The consent a user effectively has (same as :meth:`allows`, named for reads)."""
        return self.allows(state)
