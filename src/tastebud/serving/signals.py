"""What serving reads from a user's real-time state: the live session, explicit feedback, the
session's categories, and what changes the answer (the cache fingerprint)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tastebud.ids import Vocabulary
from tastebud.realtime import UserState

__all__ = [
    "NEVER",
    "StateFingerprint",
    "category_share",
    "consent_view",
    "fingerprint",
    "liked_items",
    "session_items",
    "suppressed_items",
]

NEVER = frozenset({"not_interested", "dislike"})
"""Feedback after which an item is never shown to the user again."""


def liked_items(state: UserState) -> list[str]:
    """Items the user said they like (explicit feedback), in a stable order."""
    return sorted(i for i, kind in state.feedback.items() if kind == "like")


def suppressed_items(state: UserState) -> set[str]:
    """Items the user said never to show again (``not_interested`` or ``dislike``)."""
    return {i for i, kind in state.feedback.items() if kind in NEVER}


def consent_view(state: UserState) -> UserState:
    """The state of a user who withdrew personalization consent, as serving may use it:
    nothing but the items they asked never to see."""
    return UserState([], {}, {}, [], None, {i: k for i, k in state.feedback.items() if k in NEVER})


def session_items(state: UserState, vocab: Vocabulary) -> list[int]:
    """The model's indices of the live session's items, newest first, then of the items the
    user liked (duplicates kept; items the model does not know left out): what the model
    relates to them counts as if they were in the user's history."""
    index = vocab.index
    out = [index(i) for a in state.actions if (i := a.get("i"))]
    out += [index(i) for i in liked_items(state)]
    return [i for i in out if i >= 0]


def category_share(
    state: UserState, names: list[str], decay: float = 0.8
) -> NDArray[np.float32] | None:
    """Each category's share of the live session's actions, newest weighing most (``None``
    without a session or categories)."""
    if not state.actions or not names:
        return None
    index = {c: i for i, c in enumerate(names)}
    share = np.zeros(len(names), np.float32)
    w = 1.0
    for a in state.actions:
        c = a.get("c")
        if c in index:
            share[index[c]] += w
        w *= decay
    total = float(share.sum())
    return None if total == 0 else share / total


@dataclass(frozen=True, slots=True)
class StateFingerprint:
    """What of a user's state changes their list: any new action, counter, consumed item,
    feedback or segment gives a new fingerprint."""

    newest: tuple[int | None, str | None, str | None] | None
    """Time, item and type of the newest action."""
    actions: int
    counted: int
    consumed: int
    feedback: tuple[tuple[str, str], ...]
    segment: object


def fingerprint(state: UserState) -> StateFingerprint:
    """The state's :class:`StateFingerprint`."""
    newest = state.actions[0] if state.actions else None
    return StateFingerprint(
        None if newest is None else (newest.get("ts"), newest.get("i"), newest.get("t")),
        len(state.actions),
        sum(state.items.values()),
        len(state.consumed),
        tuple(sorted(state.feedback.items())),
        _segment(state),
    )


def _segment(state: UserState) -> str | None:
    """The user's segment from the online features (a string, or nothing)."""
    segment = None if state.features is None else state.features.get("segment")
    return segment if isinstance(segment, str) else None
