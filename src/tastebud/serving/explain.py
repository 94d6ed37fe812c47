"""Explanations: every recommended item gets a reason, in words and as data.

"Because you watched X" names the recent item (session first, then training history) the
model relates most to the recommended one; otherwise the session's category ("trending in" or
"more ..."); otherwise the list the item came from. A reason names only a list that was really
used, by the artifact's own key, and never copies text from the request.
"""

from __future__ import annotations

import math

import numpy as np

from tastebud.serving.bundle import RecommenderBundle
from tastebud.serving.catalog import Aligned, CatalogSnapshot
from tastebud.serving.coldstart import ChosenList, ListKind
from tastebud.serving.scorer import Scored
from tastebud.serving.types import Mode, Reason, ReasonType, RecommendedItem

__all__ = ["Explainer", "popular_reason"]

_RIGHT_NOW = Reason(ReasonType.POPULAR, "Popular right now")
_OVERALL = Reason(ReasonType.POPULAR, "Popular overall")


def popular_reason(chosen: ChosenList) -> Reason:
    """The reason of a cold-start item: it names the list that was really used, by the
    artifact's own key (never the text of the request), or says the list is the overall one.

    >>> popular_reason(ChosenList(ListKind.DAYPART, "night")).text
    'Popular at night'
    """
    kind, value = chosen.kind, chosen.key
    if kind is ListKind.SEGMENT:
        return Reason(
            ReasonType.POPULAR_IN_SEGMENT, f"Popular in your segment ({value})", segment=value
        )
    if kind is ListKind.DEVICE:
        return Reason(ReasonType.POPULAR_IN_CONTEXT, f"Popular on {value}", device=value)
    if kind is ListKind.LOCALE:
        return Reason(ReasonType.POPULAR_IN_CONTEXT, f"Popular in {value}", locale=value)
    if kind is ListKind.DAYPART:
        where = "at night" if value == "night" else f"in the {value}"
        return Reason(ReasonType.POPULAR_IN_CONTEXT, f"Popular {where}", daypart=value)
    return _OVERALL


class Explainer:
    """Turns the picked items of a list into scored, explained items."""

    def explain(
        self,
        scored: Scored,
        picked: list[tuple[int, float]],
        explore: tuple[str, ...],
        bundle: RecommenderBundle,
        snap: CatalogSnapshot,
        aligned: Aligned,
        k: int,
    ) -> tuple[RecommendedItem, ...]:
        """The list's items with a relevance in [0, 1] and a reason each.

        Args:
            scored: The user's scores and what went into them.
            picked: The best ``(item index, score)`` pairs, best first.
            explore: New items for the last slots (never displacing the top of the list).
            bundle: The served model and its cold-start lists.
            snap: The catalogue (titles, categories of new items).
            aligned: The catalogue aligned with the model's items.
            k: The list's length.
        """
        loaded = bundle.loaded
        ids = loaded.items.ids
        mode = scored.mode
        # "Because you watched X": X is the recent item (session first, then training
        # history) the model relates most to the recommended one.
        anchors = list(dict.fromkeys([*scored.session[:5], *sorted(scored.history)[-5:]]))[:6]
        targets = [j for j, _ in picked]
        strongest: list[float] = []  # per picked item: its relation to the nearest anchor
        nearest: list[int] = []  # and which anchor that is
        if anchors and picked and mode is not Mode.COLD_START:
            related = loaded.model.item_similarity(np.array(anchors), np.array(targets))
            strongest = related.max(axis=0).tolist()
            nearest = related.argmax(axis=0).tolist()
        share, names = scored.share, aligned.names
        cats = aligned.cats[targets].tolist()
        top_cats = set() if share is None else {names[i] for i in np.flatnonzero(share > 0)}
        trending = bundle.cold_start.trending
        popular = popular_reason(scored.chosen) if mode is Mode.COLD_START else _RIGHT_NOW
        finite = [s for _, s in picked if math.isfinite(s)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        out: list[RecommendedItem] = []
        # Items with the same reason share one object (rendered once: ``render_items``).
        made: dict[tuple[ReasonType, str], Reason] = {}
        for pos, (j, s) in enumerate(picked):
            if not math.isfinite(s):
                continue
            item = ids[j]
            c = cats[pos]
            cat = names[c] if c >= 0 else None
            reason: Reason | None
            if strongest and strongest[pos] > 0:
                anchor = ids[anchors[nearest[pos]]]
                reason = made.get((ReasonType.BECAUSE_YOU_WATCHED, anchor))
                if reason is None:
                    title = snap.titles.get(anchor, anchor)
                    reason = made[(ReasonType.BECAUSE_YOU_WATCHED, anchor)] = Reason(
                        ReasonType.BECAUSE_YOU_WATCHED,
                        f"Because you watched {title}",
                        item_id=anchor,
                    )
            elif cat is not None and cat in top_cats:
                kind = (
                    ReasonType.TRENDING_IN_CATEGORY
                    if item in trending.get(cat, ())
                    else ReasonType.SESSION_CATEGORY
                )
                reason = made.get((kind, cat))
                if reason is None:
                    text = (
                        f"Trending in {cat}"
                        if kind is ReasonType.TRENDING_IN_CATEGORY
                        else f"More {cat}, like your current session"
                    )
                    reason = made[(kind, cat)] = Reason(kind, text, category=cat)
            else:
                reason = popular
            score = 1.0 if hi == lo else (s - lo) / (hi - lo)
            out.append(RecommendedItem(item, round(float(score), 6), reason))
        if explore:
            # New items take the last slots (never displacing the top of the list).
            del out[max(0, k - len(explore)) :]
            for item in explore:
                cat = snap.category.get(item)
                out.append(
                    RecommendedItem(
                        item,
                        0.0,
                        Reason(
                            ReasonType.NEW_IN_CATEGORY,
                            f"New in {cat}, a category you like",
                            category=cat,
                        ),
                    )
                )
        return tuple(out[:k])
