"""Serving picks up models from the registry: every API process polls the production aliases
(one small query) and hot-swaps a new version in without a restart or a failed request.

A new version is loaded (and verified) beside the one serving; requests keep using the old
object until the new one is ready, then a single reference assignment swaps them. A version
that fails to load (a tampered artifact) is logged and skipped: the previous one keeps serving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tastebud.background import Poller
from tastebud.errors import ArtifactInvalid, TastebudError
from tastebud.monitoring import get_logger, record_model_served
from tastebud.registry import Registry

__all__ = ["ModelServer", "Served"]

_log = get_logger(__name__)


@dataclass(frozen=True)
class Served:
    """A loaded production model and where it came from."""

    name: str
    version: int
    artifact_id: str
    kind: str
    obj: Any
    """What the kind's loader returned (a ``LoadedModel`` or ``PredictorArtifact``)."""
    loaded_at: float


class ModelServer:
    """The production version of every registered model, kept current.

    Args:
        registry: Where versions and aliases live.
        loaders: Per artifact kind (``recommender``, ``predictor``), a function from a verified
            artifact directory to the object serving uses.
        poll_seconds: How often to look for a new production version.
    """

    def __init__(
        self,
        registry: Registry,
        loaders: dict[str, Callable[[Path], Any]],
        *,
        poll_seconds: float = 2.0,
    ) -> None:
        self.registry = registry
        self.loaders = loaders
        self.poll_seconds = poll_seconds
        self._served: dict[str, Served] = {}
        self._extra: dict[tuple[str, int], Served] = {}
        self._failed: set[str] = set()
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._poller = Poller(
            self.refresh,
            lambda: self.poll_seconds,
            name="tastebud-models",
            failed=lambda exc: _log.warning(
                "model poll failed; serving the loaded versions", exc_info=exc
            ),
        )

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Load the current production versions, then keep polling in a daemon thread."""
        self.refresh()
        self._poller.start()

    def stop(self) -> None:
        """Stop polling."""
        self._poller.stop()

    # -- reading ----------------------------------------------------------------------------
    def get(self, name: str) -> Served | None:
        """The production version of ``name`` being served, or ``None``. Without the polling
        thread (CLI, tests) a stale view is refreshed inline."""
        if not self._poller.running and time.monotonic() - self._checked > self.poll_seconds:
            self.refresh()
        return self._served.get(name)

    def get_version(self, name: str, version: int) -> Served | None:
        """Version ``version`` of ``name`` if it is loaded: the production one, or one kept by
        :meth:`keep` (an experiment's variant)."""
        current = self._served.get(name)
        if current is not None and current.version == version:
            return current
        return self._extra.get((name, version))

    def keep(self, name: str, versions: set[int]) -> list[int]:
        """Keep exactly ``versions`` of ``name`` loaded besides production (the versions
        running experiments serve); loads the missing ones now, in the caller's thread.
        Returns the versions that could not be loaded (logged; serving them counts as an
        error and the production version answers)."""
        failed = []
        with self._lock:
            extra = {k: v for k, v in self._extra.items() if k[0] != name or k[1] in versions}
            for version in sorted(versions):
                if (name, version) in extra:
                    continue
                try:
                    mv = self.registry.get(name, version)
                    obj = self.loaders[mv.kind](self.registry.artifact_path(mv))
                except (ArtifactInvalid, TastebudError, OSError, ValueError, KeyError) as exc:
                    _log.error(
                        "could not load an experiment's model version",
                        model=name,
                        version=version,
                        error=str(exc),
                    )
                    failed.append(version)
                    continue
                extra[(name, version)] = Served(
                    name, version, mv.artifact_id, mv.kind, obj, time.time()
                )
                _log.info("serving model for an experiment", model=name, version=version)
            self._extra = extra  # one reference assignment
        return failed

    def served(self) -> dict[str, Served]:
        """Everything being served, by model name."""
        return dict(self._served)

    def refresh(self) -> list[str]:
        """Load any production version that changed; returns the names swapped."""
        with self._lock:  # one refresh at a time; readers never wait on it
            state = self.registry.alias_state("production")
            self._checked = time.monotonic()
            swapped = []
            for name, (version, aid, kind) in state.items():
                current = self._served.get(name)
                if current is not None and current.artifact_id == aid:
                    continue
                if aid in self._failed or kind not in self.loaders:
                    continue
                try:
                    mv = self.registry.get(name, version)
                    obj = self.loaders[kind](self.registry.artifact_path(mv))
                except (ArtifactInvalid, TastebudError, OSError, ValueError) as exc:
                    self._failed.add(aid)
                    _log.error(
                        "could not load a production model; keeping the previous one",
                        model=name,
                        version=version,
                        error=str(exc),
                    )
                    continue
                served = Served(name, version, aid, kind, obj, time.time())
                new = dict(self._served)
                new[name] = served
                self._served = new  # one reference assignment: readers see old or new
                swapped.append(name)
                record_model_served(name, version, served.loaded_at)
                _log.info("serving model", model=name, version=version, artifact_id=aid)
            gone = set(self._served) - set(state)
            if gone:
                self._served = {k: v for k, v in self._served.items() if k not in gone}
            return swapped
