"""The NetworkBuster traffic simulator: realistic, seeded behaviour events for demos, tests and
scale runs, with the planted truth so that later stages can be measured against it.

The world: items (articles, videos, tools, tutorials) in twelve categories with a skewed
popularity; users with planted **tastes** over categories (a sparse Dirichlet draw: most users
care about one to three), a device mix, a preferred hour of day, a skill level, an activity rate
and a daily **churn hazard**, plus what they declare at sign-up (an age band, interests). Each
active day a user opens sessions (Poisson); a session is a walk over items chosen by taste (with
some exploration of what is popular), emitting page views, page loads, clicks, engagement,
ratings and searches, plus session-level logins, network quality, feature usage, settings
changes, errors and resource reports, and a conversion whose probability grows with how well
the session matched the user's taste.

Everything is drawn with NumPy from one seed, chunk by chunk (each chunk of users has its own
child seed), so the same arguments give byte-identical output, and per-event Python work is
limited to building the final dicts.

Example::

    >>> sim = Simulator(SimConfig(users=20, items=50, days=3, seed=7))
    >>> events = list(sim.events())
    >>> events == list(Simulator(SimConfig(users=20, items=50, days=3, seed=7)).events())
    True
    >>> sorted({e["event_type"] for e in events}) [:3]
    ['account', 'click', 'content_engagement']
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import numpy as np
import orjson
from numpy.typing import NDArray

__all__ = ["AGE_BUCKETS", "CATEGORIES", "SimConfig", "Simulator", "write_ndjson"]

CATEGORIES: tuple[str, ...] = (
    "security",
    "vpn",
    "wifi",
    "routers",
    "speed",
    "cloud",
    "gaming",
    "streaming",
    "smart-home",
    "mobile",
    "developer",
    "basics",
)
_KEYWORDS: dict[str, tuple[str, ...]] = {
    "security": ("firewall", "malware scan", "2fa setup", "phishing"),
    "vpn": ("vpn setup", "vpn speed", "wireguard", "split tunnel"),
    "wifi": ("wifi extender", "mesh wifi", "wifi channel", "5ghz band"),
    "routers": ("port forwarding", "router login", "firmware update", "dhcp"),
    "speed": ("speed test", "latency", "bufferbloat", "upload speed"),
    "cloud": ("cloud backup", "nas", "sync folders", "object storage"),
    "gaming": ("nat type", "ping gaming", "game lag", "upnp"),
    "streaming": ("4k streaming", "buffering", "smart tv", "bitrate"),
    "smart-home": ("smart plug", "zigbee", "home assistant", "iot security"),
    "mobile": ("5g coverage", "esim", "hotspot", "mobile data"),
    "developer": ("dns api", "curl", "ipv6", "websocket"),
    "basics": ("what is ip", "modem vs router", "ethernet cable", "reset router"),
}
_FEATURES = (
    "speed_test",
    "vpn_toggle",
    "device_scan",
    "parental_controls",
    "dns_switch",
    "bandwidth_monitor",
    "port_checker",
    "wifi_analyzer",
)
_SETTINGS = ("theme", "language", "notifications", "units", "autoplay")
_DEVICES = ("desktop", "mobile", "tablet")
_NETWORK = ("4g", "wifi", "ethernet", "3g")
_TYPES = ("article", "video", "tool", "tutorial")
_SKILLS = ("beginner", "intermediate", "expert")
_COUNTRIES = ("us", "gb", "de", "fr", "in", "br", "jp", "ca", "es", "nl")
_LOCALES = (
    "en-US",
    "en-GB",
    "de-DE",
    "fr-FR",
    "en-IN",
    "pt-BR",
    "ja-JP",
    "en-CA",
    "es-ES",
    "nl-NL",
)
_GOALS = ("subscribe_pro", "buy_router", "trial_start", "newsletter")
AGE_BUCKETS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_AGE_P = (0.14, 0.30, 0.24, 0.16, 0.10, 0.06)
_INTEREST_MIN_TASTE = 0.15
"""A category the user's planted taste gives at least this share is one they could declare."""


@dataclass(frozen=True)
class SimConfig:
    """What to simulate."""

    users: int = 1000
    """Number of users (some sign up during the window, some churn)."""
    items: int = 2000
    """Catalogue size (10 % of items are published during the window)."""
    days: int = 30
    """Length of the simulated window."""
    seed: int = 0
    """Same seed, same output."""
    start: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    """First simulated day (UTC midnight)."""
    sessions_per_day: float = 0.35
    """Mean sessions per active user per day (individual rates vary log-normally)."""
    pages_per_session: float = 6.0
    """Mean page views per session."""
    chunk_users: int = 2000
    """Users generated together (memory versus vectorisation)."""


@dataclass
class _World:
    item_cat: NDArray[np.int64]
    item_type: NDArray[np.int64]
    item_day: NDArray[np.int64]
    item_quality: NDArray[np.float64]
    cat_items: list[NDArray[np.int64]]
    cat_cdf: list[NDArray[np.float64]]
    cat_pop: NDArray[np.float64]
    taste: NDArray[np.float64]
    device: NDArray[np.float64]
    hour: NDArray[np.float64]
    skill: NDArray[np.int64]
    rate: NDArray[np.float64]
    hazard: NDArray[np.float64]
    signup: NDArray[np.int64]
    churn: NDArray[np.int64]
    country: NDArray[np.int64]


class Simulator:
    """Generates the world once, then events chunk by chunk."""

    def __init__(self, config: SimConfig) -> None:
        if config.users < 1 or config.items < len(CATEGORIES) or config.days < 1:
            raise ValueError(f"need users >= 1, items >= {len(CATEGORIES)} and days >= 1")
        self.config = config
        self.world = self._build_world()

    # -- the world ------------------------------------------------------------------------------
    def _build_world(self) -> _World:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 0])
        n_cat = len(CATEGORIES)
        cat_pop = rng.dirichlet(np.full(n_cat, 3.0))
        item_cat = rng.choice(n_cat, size=cfg.items, p=cat_pop)
        item_cat[:n_cat] = np.arange(n_cat)  # every category has at least one item
        item_type = rng.choice(len(_TYPES), size=cfg.items, p=[0.5, 0.2, 0.15, 0.15])
        quality = rng.lognormal(0.0, 1.0, size=cfg.items)
        new = rng.random(cfg.items) < 0.1
        item_day = np.where(
            new, rng.integers(0, cfg.days, size=cfg.items), -rng.integers(1, 720, size=cfg.items)
        )
        cat_items, cat_cdf = [], []
        for c in range(n_cat):
            idx = np.flatnonzero(item_cat == c)
            w = quality[idx] ** 1.5
            cat_items.append(idx)
            cat_cdf.append(np.cumsum(w) / w.sum())
        n = cfg.users
        # Sparse tastes: most mass on one to three categories.
        taste = rng.dirichlet(np.full(n_cat, 0.25), size=n)
        taste = 0.9 * taste + 0.1 * cat_pop  # everybody browses a little of everything
        device = rng.dirichlet([4.0, 3.0, 1.0], size=n)
        hour = np.mod(rng.normal(19.0, 4.0, size=n), 24.0)
        skill = rng.choice(3, size=n, p=[0.45, 0.4, 0.15])
        rate = cfg.sessions_per_day * rng.lognormal(-0.3, 0.8, size=n)
        hazard = np.clip(rng.lognormal(np.log(0.01), 1.0, size=n), 0.0005, 0.25)
        joined_late = rng.random(n) < 0.2
        signup = np.where(joined_late, rng.integers(0, cfg.days, size=n), 0)
        # Day of churn: geometric waiting time from signup with the user's hazard.
        churn = signup + rng.geometric(hazard)
        country = rng.choice(len(_COUNTRIES), size=n, p=np.full(len(_COUNTRIES), 0.1))
        return _World(
            item_cat,
            item_type,
            item_day,
            quality,
            cat_items,
            cat_cdf,
            cat_pop,
            taste,
            device,
            hour,
            skill,
            rate,
            hazard,
            signup,
            churn,
            country,
        )

    # -- ids ------------------------------------------------------------------------------------
    @staticmethod
    def user_id(u: int) -> str:
        """External id of user ``u``."""
        return f"nb-user-{u:07d}"

    @staticmethod
    def item_id(i: int) -> str:
        """External id of item ``i``."""
        return f"nb-item-{i:06d}"

    def _day_start(self, day: int) -> float:
        return (self.config.start + timedelta(days=int(day))).timestamp()

    # -- catalogue, attributes, truth ------------------------------------------------------------
    def items(self) -> Iterator[dict[str, Any]]:
        """The catalogue as ``POST /v1/items/batch`` entries."""
        w = self.world
        for i in range(self.config.items):
            created = self.config.start + timedelta(days=int(w.item_day[i]), hours=9)
            cat = CATEGORIES[int(w.item_cat[i])]
            yield {
                "item_id": self.item_id(i),
                "title": f"{_KEYWORDS[cat][i % 4].title()} #{i}",
                "categories": [cat],
                "type": _TYPES[int(w.item_type[i])],
                "created_at": created.isoformat(),
                "attributes": {"level": _SKILLS[i % 3]},
            }

    def users(self) -> Iterator[dict[str, Any]]:
        """User attributes (what an app would know from sign-up), as ``tastebud import users``
        rows and ``PUT /v1/users/{user_id}`` bodies: segment, skill level, country, locale, an
        age band and declared interests (see :meth:`_sign_up`)."""
        w = self.world
        ages, interests = self._sign_up()
        for u in range(self.config.users):
            yield {
                "user_id": self.user_id(u),
                "skill_level": _SKILLS[int(w.skill[u])],
                "country": _COUNTRIES[int(w.country[u])],
                "locale": _LOCALES[int(w.country[u])],
                "segment": "pro" if w.rate[u] > 2 * self.config.sessions_per_day else "standard",
                "age_bucket": ages[u],
                "interests": interests[u],
            }

    def _sign_up(self) -> tuple[list[str], list[list[str]]]:
        """Each user's age band and declared interests, from a random stream of their own (so
        the world and the events of a seed are the same with or without them).

        The age band is drawn independently of behaviour (a fair model shows no disparity by
        age beyond noise: a known answer for the bias analysis). Declared interests are the
        planted favourite categories (taste share at least 0.15), each forgotten with
        probability 0.25, plus with probability 0.3 a category drawn by popularity that the
        user does not act on; 10 % of users skip the question (no interests).
        """
        cfg, w = self.config, self.world
        rng = np.random.default_rng([cfg.seed, 2])
        n = cfg.users
        ages = rng.choice(len(AGE_BUCKETS), size=n, p=_AGE_P)
        keep = rng.random((n, len(CATEGORIES))) >= 0.25
        noisy = rng.random(n) < 0.3
        noise = rng.choice(len(CATEGORIES), size=n, p=w.cat_pop)
        skipped = rng.random(n) < 0.1
        interests: list[list[str]] = []
        for u in range(n):
            order = np.argsort(-w.taste[u], kind="stable")
            chosen = [int(c) for c in order if w.taste[u, c] >= _INTEREST_MIN_TASTE and keep[u, c]]
            if noisy[u] and int(noise[u]) not in chosen:
                chosen.append(int(noise[u]))
            interests.append([] if skipped[u] else [CATEGORIES[c] for c in chosen])
        return [AGE_BUCKETS[int(a)] for a in ages], interests

    def truth(self) -> dict[str, Any]:
        """The planted parameters per user, to measure how well they are recovered, and what
        each declared at sign-up (age band, interests)."""
        w, cfg = self.world, self.config
        users: dict[str, Any] = {}
        ages, interests = self._sign_up()
        for u in range(cfg.users):
            order = np.argsort(-w.taste[u])
            churn_day = int(w.churn[u])
            users[self.user_id(u)] = {
                "tastes": {CATEGORIES[c]: round(float(w.taste[u, c]), 4) for c in order},
                "top_categories": [CATEGORIES[c] for c in order[:3]],
                "device_mix": dict(zip(_DEVICES, np.round(w.device[u], 4).tolist(), strict=True)),
                "preferred_hour": round(float(w.hour[u]), 2),
                "skill_level": _SKILLS[int(w.skill[u])],
                "sessions_per_day": round(float(w.rate[u]), 4),
                "churn_hazard": round(float(w.hazard[u]), 5),
                "signup": (cfg.start + timedelta(days=int(w.signup[u]))).date().isoformat(),
                # The first day on which the user starts no session (None: still active).
                "churned_on": (cfg.start + timedelta(days=churn_day)).date().isoformat()
                if churn_day < cfg.days
                else None,
                # What the user declared at sign-up (imperfect: compare with ``tastes``).
                "age_bucket": ages[u],
                "declared_interests": interests[u],
            }
        return {
            "config": {
                "users": cfg.users,
                "items": cfg.items,
                "days": cfg.days,
                "seed": cfg.seed,
                "start": cfg.start.isoformat(),
            },
            "categories": list(CATEGORIES),
            "users": users,
        }

    # -- events ---------------------------------------------------------------------------------
    def events(self) -> Iterator[dict[str, Any]]:
        """Every event, user chunk by user chunk, each chunk in time order."""
        cfg = self.config
        for chunk, lo in enumerate(range(0, cfg.users, cfg.chunk_users)):
            hi = min(cfg.users, lo + cfg.chunk_users)
            yield from self._chunk(chunk, lo, hi)

    def _chunk(self, chunk: int, lo: int, hi: int) -> Iterator[dict[str, Any]]:
        cfg, w = self.config, self.world
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
        s_hour = np.mod(w.hour[s_user] + rng.normal(0, 2.5, s_user.size), 24.0)
        s_start = np.array([self._day_start(d) for d in range(cfg.days + 1)])[s_day] + s_hour * 3600
        cum_dev = np.cumsum(w.device[s_user], axis=1)
        s_device = (rng.random(s_user.size)[:, None] > cum_dev).sum(axis=1).clip(0, 2)
        s_net = np.where(
            s_device == 0,
            rng.choice(4, s_user.size, p=[0.02, 0.55, 0.4, 0.03]),
            rng.choice(4, s_user.size, p=[0.5, 0.42, 0.0, 0.08]),
        )
        n_pages = 1 + rng.geometric(1.0 / max(cfg.pages_per_session - 1, 1.0), s_user.size) - 1
        n_pages = np.maximum(n_pages, 1)

        # Page steps, flattened over sessions.
        p_sess = np.repeat(np.arange(s_user.size), n_pages)
        p_user = s_user[p_sess]
        explore = rng.random(p_sess.size) < 0.15
        cum_taste = np.cumsum(w.taste[p_user], axis=1)
        p_cat = (
            (rng.random(p_sess.size)[:, None] > cum_taste).sum(axis=1).clip(0, len(CATEGORIES) - 1)
        )
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

        ev_rows: list[tuple[float, int, dict[str, Any]]] = []
        device_names = [_DEVICES[d] for d in s_device]
        user_names = [self.user_id(x) for x in s_user.tolist()]
        locales = [_LOCALES[c] for c in w.country[s_user].tolist()]
        session_ids = [f"s{cfg.seed}-{chunk}-{i}" for i in range(s_user.size)]
        net_names = [_NETWORK[n] for n in s_net]
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

        def base(sess: int, ts: float, event_type: str) -> dict[str, Any]:
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
            item = self.item_id(p_item_l[k])
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
                    "query": _KEYWORDS[cat][int(uk[5] * 4) % 4],
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
        s_start_l, n_pages_l = s_start.tolist(), n_pages.tolist()
        last_l = p_time[first + n_pages - 1].tolist()
        skill_l = w.skill[s_user].tolist()
        best_l = session_best.tolist()
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
                e["data"] = {"feature": _FEATURES[int(uu[6] * len(_FEATURES))], "action": "open"}
                ev_rows.append((last + 10, 7, e))
            if uu[6] < 0.02:
                e = base(sess, last + 15, "settings_change")
                e["data"] = {
                    "setting": _SETTINGS[int(uu[7] * 5)],
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
            logit = -5.2 + 3.0 * best_l[sess] + 0.4 * skill_l[sess] + 0.15 * n_pages_l[sess]
            if uu[1] < 1.0 / (1.0 + math.exp(-logit)):
                goal = _GOALS[int(uu[4] * len(_GOALS))]
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


_POOL_SIM: Simulator | None = None


def _chunk_bytes(args: tuple[int, int, int]) -> tuple[int, bytes]:
    assert _POOL_SIM is not None
    chunk, lo, hi = args
    events = list(_POOL_SIM._chunk(chunk, lo, hi))
    return len(events), b"".join(orjson.dumps(e) + b"\n" for e in events)


def write_ndjson(
    sim: Simulator,
    fh: IO[bytes],
    *,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write every event as NDJSON, generating chunks in ``workers`` processes; the output is the
    same whatever the number of workers. Returns the number of events."""
    global _POOL_SIM
    cfg = sim.config
    jobs = [
        (c, lo, min(cfg.users, lo + cfg.chunk_users))
        for c, lo in enumerate(range(0, cfg.users, cfg.chunk_users))
    ]
    total = 0
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            _POOL_SIM = sim
            n, blob = _chunk_bytes(job)
            fh.write(blob)
            total += n
            if progress is not None:
                progress(n)
        return total
    _POOL_SIM = sim  # inherited by the forked workers
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        for n, blob in pool.imap(_chunk_bytes, jobs):
            fh.write(blob)
            total += n
            if progress is not None:
                progress(n)
    return total
