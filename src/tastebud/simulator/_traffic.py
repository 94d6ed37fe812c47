"""The simulated traffic: every event of a chunk of users, drawn from the world and the
behaviour laws (``_behaviour``) with the chunk's own child seed, in time order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import NotRequired

import numpy as np
from pydantic import JsonValue
from typing_extensions import TypedDict

from tastebud.simulator._behaviour import (
    EXPLORE,
    HOUR_SD,
    conversion_probability,
    page_success,
)
from tastebud.simulator._world import (
    CATEGORIES,
    DEVICES,
    FEATURES,
    GOALS,
    KEYWORDS,
    LOCALES,
    NETWORK,
    SETTINGS,
    SimConfig,
    World,
    day_starts,
    item_id,
    user_id,
)

__all__ = [
    "SimContext",
    "SimEvent",
    "SimNetwork",
    "chunk_events",
]


class SimNetwork(TypedDict):
    """The network part of an event's context."""

    effective_type: str


class SimContext(TypedDict):
    """The context every simulated event carries."""

    device_type: str
    locale: str
    network: SimNetwork


class _Draft(TypedDict):
    """An event before it is numbered (keys in the order they are written)."""

    event_type: str
    timestamp: str
    """ISO-8601, UTC, in milliseconds."""
    user_id: str
    session_id: str
    context: SimContext
    data: NotRequired[dict[str, JsonValue]]
    """The payload of the event type (see ``tastebud.events.data``)."""
    item_id: NotRequired[str]


class SimEvent(_Draft):
    """One simulated event, as sent to ``POST /v1/events`` (a JSON payload for ingest)."""

    event_id: str


def chunk_events(cfg: SimConfig, w: World, chunk: int, lo: int, hi: int) -> Iterator[SimEvent]:
    """Every event of users ``lo`` to ``hi - 1`` (chunk number ``chunk``), in time order.

    Per-event Python work is limited to building the final dicts: every draw is vectorised.
    """
    rng = np.random.default_rng([cfg.seed, 1, chunk])
    users = np.arange(lo, hi)
    end = np.minimum(w.churn[users], cfg.days)
    active = np.maximum(end - w.signup[users], 0)
    n_sess = rng.poisson(w.rate[users] * active)
    s_user = np.repeat(users, n_sess)
    if s_user.size == 0:
        return
    s_day = w.signup[s_user] + (
        rng.random(s_user.size) * np.maximum(active, 1)[s_user - lo]
    ).astype(np.int64)
    s_hour = np.mod(w.hour[s_user] + rng.normal(0, HOUR_SD, s_user.size), 24.0)
    s_start = day_starts(cfg)[s_day] + s_hour * 3600
    cum_dev = np.cumsum(w.device[s_user], axis=1)
    s_device = (rng.random(s_user.size)[:, None] > cum_dev).sum(axis=1).clip(0, 2)
    s_net = np.where(
        s_device == 0,
        rng.choice(4, s_user.size, p=[0.02, 0.55, 0.4, 0.03]),
        rng.choice(4, s_user.size, p=[0.5, 0.42, 0.0, 0.08]),
    )
    n_pages = 1 + rng.geometric(page_success(cfg), s_user.size) - 1
    n_pages = np.maximum(n_pages, 1)

    # Page steps, flattened over sessions.
    p_sess = np.repeat(np.arange(s_user.size), n_pages)
    p_user = s_user[p_sess]
    explore = rng.random(p_sess.size) < EXPLORE
    cum_taste = np.cumsum(w.taste[p_user], axis=1)
    p_cat = (rng.random(p_sess.size)[:, None] > cum_taste).sum(axis=1).clip(0, len(CATEGORIES) - 1)
    p_cat = np.where(explore, rng.choice(len(CATEGORIES), p_sess.size, p=w.cat_pop), p_cat)
    p_item = np.empty(p_sess.size, dtype=np.int64)
    draws = rng.random(p_sess.size)
    for c in range(len(CATEGORIES)):
        sel = p_cat == c
        pos = np.searchsorted(w.cat_cdf[c], draws[sel]).clip(0, len(w.cat_items[c]) - 1)
        p_item[sel] = w.cat_items[c][pos]
    unpublished = w.item_day[p_item] > s_day[p_sess]
    p_item[unpublished] = np.array([w.cat_items[c][-1] for c in range(len(CATEGORIES))])[
        p_cat[unpublished]
    ]
    p_match = w.taste[p_user, p_cat] / w.taste[p_user].max(axis=1)
    gaps = rng.exponential(40.0, p_sess.size) + 5.0
    first = np.concatenate(([0], np.cumsum(n_pages)[:-1]))
    offsets = np.cumsum(gaps)
    offsets -= np.repeat(offsets[first] - gaps[first], n_pages)
    p_time = s_start[p_sess] + offsets
    dwell = rng.lognormal(np.log(20_000) + 1.2 * p_match, 0.7)
    u = rng.random((p_sess.size, 6))
    session_best = np.maximum.reduceat(p_match, first)

    ev_rows: list[tuple[float, int, _Draft]] = []
    device_names = [DEVICES[d] for d in s_device]
    user_names = [user_id(x) for x in s_user.tolist()]
    locales = [LOCALES[c] for c in w.country[s_user].tolist()]
    session_ids = [f"s{cfg.seed}-{chunk}-{i}" for i in range(s_user.size)]
    net_names = [NETWORK[n] for n in s_net]
    # Plain Python numbers from here on: faster to index and JSON-serializable.
    slow_net = (s_net == 3).tolist()
    mobile = (s_device == 1).tolist()
    p_sess_l, p_time_l, p_item_l = p_sess.tolist(), p_time.tolist(), p_item.tolist()
    p_match_l, p_cat_l, dwell_l, u_l = (
        p_match.tolist(),
        p_cat.tolist(),
        dwell.tolist(),
        u.tolist(),
    )
    quality_l = np.tanh(w.item_quality / 2).tolist()

    def base(sess: int, ts: float, event_type: str) -> _Draft:
        return {
            "event_type": event_type,
            "timestamp": datetime.fromtimestamp(round(ts, 3), tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "user_id": user_names[sess],
            "session_id": session_ids[sess],
            "context": {
                "device_type": device_names[sess],
                "locale": locales[sess],
                "network": {"effective_type": net_names[sess]},
            },
        }

    for k in range(len(p_sess_l)):
        sess, ts = p_sess_l[k], p_time_l[k]
        item = item_id(p_item_l[k])
        match, uk, dw = p_match_l[k], u_l[k], dwell_l[k]
        cat = CATEGORIES[p_cat_l[k]]
        e = base(sess, ts, "page_view")
        e["data"] = {"url": f"/{cat}/{item}", "title": f"{cat} guide", "duration_ms": int(dw)}
        e["item_id"] = item
        ev_rows.append((ts, 0, e))
        if uk[0] < 0.6:
            slow = 1.0 + slow_net[sess] * 3.0 + mobile[sess] * 0.6
            e = base(sess, ts + 0.4, "page_load")
            e["data"] = {
                "load_time_ms": round(400 + 900 * slow * (0.5 + uk[5]), 1),
                "url": f"/{cat}/{item}",
            }
            ev_rows.append((ts + 0.4, 1, e))
        if uk[1] < 0.15 + 0.45 * match:
            e = base(sess, ts + 3, "click")
            e["data"] = {"element_id": "content-card", "item_id": item}
            ev_rows.append((ts + 3, 2, e))
        if uk[2] < 0.2 + 0.55 * match:
            t2 = ts + dw / 1000.0
            e = base(sess, t2, "content_engagement")
            e["item_id"] = item
            e["data"] = {
                "time_spent_ms": int(dw),
                "scroll_depth": round(min(1.0, 0.1 + 0.9 * match * uk[5] + 0.1), 2),
                "shared": uk[3] < 0.03 * match,
            }
            ev_rows.append((t2, 3, e))
        if uk[3] < 0.04 + 0.08 * match:
            quality = quality_l[p_item_l[k]]
            value = min(5, max(1, round(1.2 + 3.0 * match + quality + (uk[4] - 0.5) * 1.5)))
            t3 = ts + dw / 1000.0 + 2
            e = base(sess, t3, "rating")
            e["item_id"] = item
            e["data"] = {"value": value}
            ev_rows.append((t3, 4, e))
        if uk[4] < 0.07:
            e = base(sess, ts - 2, "search")
            e["data"] = {
                "query": KEYWORDS[cat][int(uk[5] * 4) % 4],
                "results_count": int(3 + 40 * uk[0]),
            }
            ev_rows.append((ts - 2, 5, e))
        if uk[5] < 0.01:
            e = base(sess, ts + 1, "error")
            e["data"] = {
                "kind": "api" if uk[0] < 0.5 else "javascript",
                "message": "request timed out",
                "status_code": 504,
            }
            ev_rows.append((ts + 1, 6, e))

    s_u = rng.random((s_user.size, 8)).tolist()
    first_session = np.concatenate(([True], s_user[1:] != s_user[:-1])).tolist()
    late_signup = (w.signup[s_user] > 0).tolist()
    s_start_l = s_start.tolist()
    last_l = p_time[first + n_pages - 1].tolist()
    convert_l = conversion_probability(session_best, w.skill[s_user], n_pages).tolist()
    for sess in range(len(s_u)):
        t0 = s_start_l[sess] - 5
        uu = s_u[sess]
        if first_session[sess] and late_signup[sess] and uu[0] < 0.8:
            e = base(sess, t0, "account")
            e["data"] = {"action": "signup", "method": "email"}
            ev_rows.append((t0, 0, e))
        elif uu[0] < 0.3:
            e = base(sess, t0, "account")
            e["data"] = {"action": "login", "method": "password" if uu[1] < 0.7 else "sso"}
            ev_rows.append((t0, 0, e))
        if uu[2] < 0.6:
            slow = 1.0 + slow_net[sess] * 4.0
            e = base(sess, t0 + 1, "network_quality")
            e["data"] = {
                "downlink_mbps": round(50 * uu[3] / slow + 0.5, 2),
                "rtt_ms": round(20 + 150 * slow * uu[4], 1),
                "effective_type": net_names[sess],
            }
            ev_rows.append((t0 + 1, 1, e))
        last = last_l[sess]
        if uu[5] < 0.25:
            e = base(sess, last + 10, "feature_usage")
            e["data"] = {"feature": FEATURES[int(uu[6] * len(FEATURES))], "action": "open"}
            ev_rows.append((last + 10, 7, e))
        if uu[6] < 0.02:
            e = base(sess, last + 15, "settings_change")
            e["data"] = {
                "setting": SETTINGS[int(uu[7] * 5)],
                "old_value": "default",
                "new_value": "custom",
            }
            ev_rows.append((last + 15, 8, e))
        if uu[7] < 0.04:
            e = base(sess, last + 20, "resource_usage")
            e["data"] = {
                "memory_mb": round(150 + 400 * uu[3], 1),
                "cpu_percent": round(5 + 60 * uu[4], 1),
            }
            ev_rows.append((last + 20, 9, e))
        if uu[1] < convert_l[sess]:
            goal = GOALS[int(uu[4] * len(GOALS))]
            e = base(sess, last + 30, "conversion")
            e["data"] = {
                "goal": goal,
                "value": 9.99 if goal == "subscribe_pro" else 0.0,
                "currency": "EUR",
            }
            ev_rows.append((last + 30, 10, e))

    ev_rows.sort(key=lambda r: (r[0], r[1]))
    for n, (_, _, e) in enumerate(ev_rows):
        yield {"event_id": f"sim{cfg.seed}-{chunk}-{n}", **e}
