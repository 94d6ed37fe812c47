"""Exploration: a share of each list's slots for new items in the categories the user likes."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from tastebud.config import ServingConfig
from tastebud.ids import Vocabulary
from tastebud.realtime import UserState
from tastebud.serving.catalog import Aligned, CatalogSnapshot
from tastebud.serving.scorer import Scored
from tastebud.serving.signals import NEVER
from tastebud.serving.types import ListRequest, Mode

__all__ = ["Explorer"]


class Explorer:
    """Picks the new items of a list.

    Args:
        config: ``exploration_share`` (of the slots) and ``new_item_days`` (what is new).
        clock: Seconds since the epoch (tests pass a fake clock).
    """

    def __init__(self, config: ServingConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock

    def slots(self, scored: Scored, k: int) -> int:
        """How many of ``k`` slots go to new items: ``exploration_share`` of them, except in a
        cold-start list without a session (no category is known to be liked)."""
        if scored.mode is Mode.COLD_START and scored.share is None:
            return 0
        return int(k * self.config.exploration_share)

    def pick(
        self,
        scored: Scored,
        state: UserState,
        request: ListRequest,
        snap: CatalogSnapshot,
        aligned: Aligned,
        vocab: Vocabulary,
        taken: set[str],
    ) -> tuple[str, ...]:
        """Up to :meth:`slots` new items (newest first) in the categories of the session (or
        the requested one), none in ``taken``, consumed, suppressed, excluded or blocked."""
        n = self.slots(scored, request.k)
        if n <= 0:
            return ()
        share = scored.share
        liked = set() if share is None else {aligned.names[i] for i in np.flatnonzero(share > 0)}
        if request.category is not None:
            liked = {request.category}
        if not liked:
            return ()
        skip = (
            set(state.consumed)
            | set(request.exclude)
            | {i for i, kind in state.feedback.items() if kind in NEVER}
        )
        blocked = scored.blocked
        out: list[str] = []
        now_ms = int(self.clock() * 1000)
        for item, cat, _ in snap.new_items(now_ms, self.config.new_item_days):
            if cat not in liked or item in taken or item in skip:
                continue
            j = vocab.index(item)
            if j >= 0 and blocked[j]:
                continue
            out.append(item)
            if len(out) == n:
                break
        return tuple(out)
