"""The simulated world: its configuration, vocabularies, catalogue and users' planted traits.

Everything here is drawn once per seed, before any event: the traffic (``_traffic``) and the
planted truth (``_truth``) both read the same :class:`World`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AGE_BUCKETS",
    "CATEGORIES",
    "COUNTRIES",
    "DEVICES",
    "FEATURES",
    "GOALS",
    "KEYWORDS",
    "LOCALES",
    "NETWORK",
    "SETTINGS",
    "SKILLS",
    "SimConfig",
    "TYPES",
    "World",
    "build_world",
    "day_starts",
    "item_id",
    "sign_up",
    "user_id",
]

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
KEYWORDS: dict[str, tuple[str, ...]] = {
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
FEATURES = (
    "speed_test",
    "vpn_toggle",
    "device_scan",
    "parental_controls",
    "dns_switch",
    "bandwidth_monitor",
    "port_checker",
    "wifi_analyzer",
)
SETTINGS = ("theme", "language", "notifications", "units", "autoplay")
DEVICES = ("desktop", "mobile", "tablet")
NETWORK = ("4g", "wifi", "ethernet", "3g")
TYPES = ("article", "video", "tool", "tutorial")
SKILLS = ("beginner", "intermediate", "expert")
COUNTRIES = ("us", "gb", "de", "fr", "in", "br", "jp", "ca", "es", "nl")
LOCALES = (
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
GOALS = ("subscribe_pro", "buy_router", "trial_start", "newsletter")
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


@dataclass(frozen=True)
class World:
    """The catalogue and the users' planted traits (arrays indexed by item or user)."""

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
    """Day of churn: the first day on which the user starts no session (may be after the
    simulated window)."""
    country: NDArray[np.int64]


def build_world(cfg: SimConfig) -> World:
    """Draw the catalogue and the users from the seed's world stream."""
    rng = np.random.default_rng([cfg.seed, 0])
    n_cat = len(CATEGORIES)
    cat_pop = rng.dirichlet(np.full(n_cat, 3.0))
    item_cat = rng.choice(n_cat, size=cfg.items, p=cat_pop)
    item_cat[:n_cat] = np.arange(n_cat)  # every category has at least one item
    item_type = rng.choice(len(TYPES), size=cfg.items, p=[0.5, 0.2, 0.15, 0.15])
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
    country = rng.choice(len(COUNTRIES), size=n, p=np.full(len(COUNTRIES), 0.1))
    return World(
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


def user_id(u: int) -> str:
    """External id of user ``u``."""
    return f"nb-user-{u:07d}"


def item_id(i: int) -> str:
    """External id of item ``i``."""
    return f"nb-item-{i:06d}"


def day_starts(cfg: SimConfig) -> NDArray[np.float64]:
    """Start of each simulated day ``0 .. days`` (inclusive: the last is the window's end), in
    seconds since the epoch; every session of day ``d`` starts in ``[day d, day d + 1)``."""
    return np.array(
        [(cfg.start + timedelta(days=d)).timestamp() for d in range(cfg.days + 1)],
        dtype=np.float64,
    )


def sign_up(cfg: SimConfig, world: World) -> tuple[list[str], list[list[str]]]:
    """Each user's age band and declared interests, from a random stream of their own (so the
    world and the events of a seed are the same with or without them).

    The age band is drawn independently of behaviour (a fair model shows no disparity by age
    beyond noise: a known answer for the bias analysis). Declared interests are the planted
    favourite categories (taste share at least 0.15), each forgotten with probability 0.25,
    plus with probability 0.3 a category drawn by popularity that the user does not act on;
    10 % of users skip the question (no interests).
    """
    rng = np.random.default_rng([cfg.seed, 2])
    n = cfg.users
    ages = rng.choice(len(AGE_BUCKETS), size=n, p=_AGE_P)
    keep = rng.random((n, len(CATEGORIES))) >= 0.25
    noisy = rng.random(n) < 0.3
    noise = rng.choice(len(CATEGORIES), size=n, p=world.cat_pop)
    skipped = rng.random(n) < 0.1
    interests: list[list[str]] = []
    for u in range(n):
        order = np.argsort(-world.taste[u], kind="stable")
        chosen = [int(c) for c in order if world.taste[u, c] >= _INTEREST_MIN_TASTE and keep[u, c]]
        if noisy[u] and int(noise[u]) not in chosen:
            chosen.append(int(noise[u]))
        interests.append([] if skipped[u] else [CATEGORIES[c] for c in chosen])
    return [AGE_BUCKETS[int(a)] for a in ages], interests
