"""How a simulated user behaves in a session: the laws the traffic draws from (``_traffic``) and
the planted truth integrates (``_truth``), each constant defined once, here.

* A session has a geometric number of pages (mean ``pages_per_session - 1``, at least one).
* Each page is in a category drawn from the user's tastes or, :data:`EXPLORE` of the time, from
  the categories' popularity; its *match* is the user's taste for that category relative to
  their favourite's (1 on the favourite).
* A session starts at the user's preferred hour plus normal noise (:data:`HOUR_SD` hours),
  wrapped into its day.
* It converts with probability :func:`conversion_probability` of its best match, the user's
  skill level and its page count.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tastebud.simulator._world import SimConfig

__all__ = [
    "EXPLORE",
    "HOUR_SD",
    "category_law",
    "conversion_probability",
    "hour_cdf",
    "page_success",
]

EXPLORE = 0.15
"""Share of page views in a category drawn by popularity instead of by the user's tastes."""
HOUR_SD = 2.5
"""Standard deviation, in hours, of a session's start around the user's preferred hour."""
_LOGIT_BASE = -5.2
_LOGIT_MATCH = 3.0
_LOGIT_SKILL = 0.4
_LOGIT_PAGE = 0.15


def page_success(cfg: SimConfig) -> float:
    """Parameter ``p`` of the geometric law of a session's page count (``P(n) = p (1-p)^(n-1)``,
    ``n >= 1``)."""
    return 1.0 / max(cfg.pages_per_session - 1, 1.0)


def conversion_probability(
    best: NDArray[np.float64], skill: NDArray[np.int64], pages: NDArray[np.int64] | int
) -> NDArray[np.float64]:
    """Probability that a session converts (a logistic model, elementwise, broadcast).

    Args:
        best: The session's best match (the highest match over its pages), in ``[0, 1]``.
        skill: The user's skill level (0 beginner, 1 intermediate, 2 expert).
        pages: The session's page count.

    Returns:
        ``1 / (1 + exp(-(-5.2 + 3.0 best + 0.4 skill + 0.15 pages)))``.
    """
    logit = _LOGIT_BASE + _LOGIT_MATCH * best + _LOGIT_SKILL * skill + _LOGIT_PAGE * pages
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)


def category_law(taste: NDArray[np.float64], cat_pop: NDArray[np.float64]) -> NDArray[np.float64]:
    """Probability of each category for one page of each user (rows: users)."""
    return np.asarray((1.0 - EXPLORE) * taste + EXPLORE * cat_pop[None, :], dtype=np.float64)


def hour_cdf(preferred: NDArray[np.float64], hour: float) -> NDArray[np.float64]:
    """Probability that a session of each user starts before ``hour`` (0 to 24) of its day."""
    # Imported here: generating traffic never needs it (and scipy.special takes 0.7 s to load).
    from scipy.special import ndtr

    total = np.zeros_like(preferred)
    # Wrapped normal: the noise crosses midnight at most a couple of times (24 h is 9.6 SD).
    for k in (-2, -1, 0, 1, 2):
        total += ndtr((24.0 * k + hour - preferred) / HOUR_SD) - ndtr(
            (24.0 * k - preferred) / HOUR_SD
        )
    return total
