"""The quickstart's state between runs (``<data dir>/quickstart.json``, mode 0600): its API keys,
printed again while they are valid, and what traffic it has already sent."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from tastebud.cli.keys import KEY_SCOPES

if TYPE_CHECKING:
    from tastebud.services import Services

__all__ = ["STATE_FILE", "Sent", "State", "load_state", "save_state", "state_keys"]

STATE_FILE = "quickstart.json"
"""In the data directory, mode 0600: the quickstart's API keys and what it has sent."""


class Sent(TypedDict):
    """The simulated traffic already sent: with which settings, on which day, and how many
    events the store held after it."""

    config: dict[str, int]
    on: str
    events: int


class State(TypedDict, total=False):
    """``quickstart.json``."""

    keys: dict[str, str]
    """The API key of each scope."""
    sent: Sent


def load_state(path: Path) -> State:
    """``path``'s state; what is missing or malformed is left out (a hand-edited file)."""
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    state: State = {}
    if not isinstance(raw, dict):
        return state
    keys, sent = raw.get("keys"), raw.get("sent")
    if isinstance(keys, dict):
        state["keys"] = {k: v for k, v in keys.items() if isinstance(v, str)}
    if isinstance(sent, dict) and isinstance(sent.get("config"), dict):
        events = sent.get("events", 0)
        state["sent"] = {
            "config": sent["config"],
            "on": str(sent.get("on", "?")),
            "events": events if isinstance(events, int) else 0,
        }
    return state


def save_state(path: Path, state: State) -> None:
    """Replace ``path`` atomically with a file only its owner can read (it holds API keys)."""
    from tastebud.files import open_private, private_dir

    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open_private(tmp, "w") as fh:
        json.dump(state, fh, indent=2)
    os.replace(tmp, path)


def state_keys(services: Services, state: State) -> tuple[dict[str, str], list[str]]:
    """One valid key per scope: the kept one while it authenticates, else a new one (a revoked
    key is never printed again). Returns (keys, the scopes whose key is new)."""
    from tastebud.errors import Unauthenticated

    kept = state.get("keys", {})
    keys: dict[str, str] = {}
    created: list[str] = []
    for scope in KEY_SCOPES:
        key = kept.get(scope)
        if key is not None:
            try:
                if services.keys.authenticate(key).scope == scope:
                    keys[scope] = key
                    continue
            except Unauthenticated:
                pass
        keys[scope] = services.keys.create(f"quickstart-{scope}", scope)[1]
        created.append(scope)
    return keys, created
