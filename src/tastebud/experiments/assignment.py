"""Who sees which variant: a deterministic hash, the same in every process, in memory.

A user's **unit** is their pseudonym, or, once an anonymous visitor identified, the anonymous
pseudonym they first came with (so the variant seen before signing in is kept after). Three
buckets in ``[0, 10000)`` decide (docs/experiments.md, *Assignment*, has test vectors):

- the **layer bucket** ``h("layer:<layer>", unit)``: an experiment owns a range of its layer's
  buckets, and experiments of one layer own disjoint ranges, so they never share a user;
- the **traffic bucket** (first 8 bytes of ``h(salt, unit)``): the user is exposed when it is
  below ``traffic × 10000``, so raising the traffic only adds users;
- the **variant bucket** (last 8 bytes of ``h(salt, unit)``): the variant whose cumulative
  weight range holds it; it does not depend on the traffic, so a ramp never moves anyone.

``h(key, unit)`` is BLAKE2b-128 of ``"<key>:<unit>"`` (UTF-8); a bucket is the big-endian
integer of 8 bytes modulo 10,000. A process keeps the running experiments and the aliases in
memory (:class:`ExperimentsView`, refreshed by a background thread), so assigning a user
costs a couple of hashes and never touches the database on a request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tastebud.background import Poller
from tastebud.experiments.definitions import (
    BUCKETS,
    Experiment,
    ModelPin,
    Population,
    ServingParams,
    Surface,
)
from tastebud.monitoring import get_logger

__all__ = [
    "ALIAS_OVERLAP_MS",
    "Assignment",
    "Audience",
    "CompiledExperiment",
    "ExperimentsView",
    "UNITS_REBUILD_S",
    "buckets",
    "layer_bucket",
]

_log = get_logger(__name__)

ALIAS_OVERLAP_MS = 300_000
"""Identified visitors are re-read this far back at every poll."""
UNITS_REBUILD_S = 600.0
"""The identified visitors' units are read anew this often (an erased one is forgotten by
every process within this time; by the one that erased at once)."""


_PREFIXES: dict[str, Any] = {}
"""BLAKE2b states that have absorbed ``"<key>:"``: copying one and adding the unit costs half
of hashing the whole string again (assignment runs on every request)."""


def _h(key: str, unit: bytes) -> bytes:
    state = _PREFIXES.get(key)
    if state is None:
        if len(_PREFIXES) > 10_000:  # keys are layers and running experiments: few
            _PREFIXES.clear()
        state = _PREFIXES[key] = hashlib.blake2b(f"{key}:".encode(), digest_size=16)
    h = state.copy()
    h.update(unit)
    digest: bytes = h.digest()
    return digest


def layer_bucket(layer: str, unit: str | bytes) -> int:
    """The unit's bucket in ``layer`` (the first 8 bytes of ``h("layer:<layer>", unit)``)."""
    u = unit.encode() if isinstance(unit, str) else unit
    return int.from_bytes(_h(f"layer:{layer}", u)[:8], "big") % BUCKETS


def buckets(salt: str, unit: str | bytes) -> tuple[int, int]:
    """The unit's (traffic, variant) buckets in the experiment with ``salt``."""
    d = _h(salt, unit.encode() if isinstance(unit, str) else unit)
    return int.from_bytes(d[:8], "big") % BUCKETS, int.from_bytes(d[8:], "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Audience:
    """What a request says about who is asking (checked against a population)."""

    device: str | None = None
    locale: str | None = None
    segment: str | None = None
    returning: bool = False
    """The production model knows the user."""

    def within(self, population: Population) -> bool:
        """Whether this audience is in ``population``."""
        if population.devices and self.device not in population.devices:
            return False
        if population.locales and self.locale not in population.locales:
            return False
        if population.segments and self.segment not in population.segments:
            return False
        if population.visitors == "new":
            return not self.returning
        if population.visitors == "returning":
            return self.returning
        return True


@dataclass(frozen=True, slots=True)
class Assignment:
    """A user's exposure to one experiment: what to serve and what to record."""

    experiment: str
    variant: str
    kind: str
    """``ab`` or ``interleaving``."""
    version: int | None
    """The recommendations model version to serve (``None``: production)."""
    params: ServingParams
    other: tuple[str, int | None, ServingParams] | None = None
    """Interleaving: the other variant (name, version, params), whose list is drafted in."""
    unresolved: bool = False
    """The variant pins a model by an alias that points nowhere now: production answers and
    the answer counts as an error."""


@dataclass(frozen=True)
class CompiledExperiment:
    """A running experiment ready to assign users (cut points precomputed)."""

    experiment: Experiment
    layer_lo: int
    layer_hi: int
    traffic_cut: int
    cuts: tuple[int, ...]
    """Cumulative variant upper bounds in buckets (the last is ``BUCKETS``)."""
    versions: tuple[int | None, ...]
    """Per variant, the resolved model version (``None``: production)."""
    assignments: tuple[Assignment, ...] = ()
    """Per variant, its (immutable) assignment: built once, handed to every request."""
    open_to_all: bool = True
    """The population is everyone (nothing to check per request)."""
    layer: str = "default"
    prefix: str = ""
    """The salt (the key of the experiment's hash)."""

    @classmethod
    def of(cls, exp: Experiment, resolve: Callable[[ModelPin], int | None]) -> CompiledExperiment:
        """Compile ``exp``; ``resolve`` turns a variant's pin into a version."""
        spec = exp.spec
        total = sum(v.weight for v in spec.variants)
        acc, cuts = 0.0, []
        for v in spec.variants:
            acc += v.weight
            cuts.append(round(acc / total * BUCKETS))
        cuts[-1] = BUCKETS
        versions = tuple(None if v.model is None else resolve(v.model) for v in spec.variants)
        made = []
        for i, v in enumerate(spec.variants):
            other = None
            if spec.kind == "interleaving":
                j = 1 - i
                other = (spec.variants[j].name, versions[j], spec.variants[j].params)
            missing = v.model is not None and versions[i] is None
            made.append(
                Assignment(spec.name, v.name, spec.kind, versions[i], v.params, other, missing)
            )
        pop = spec.population
        return cls(
            exp,
            exp.layer_lo if exp.layer_lo is not None else 0,
            exp.layer_hi if exp.layer_hi is not None else 0,
            round(spec.traffic * BUCKETS),
            tuple(cuts),
            versions,
            tuple(made),
            not (pop.devices or pop.locales or pop.segments) and pop.visitors == "all",
            spec.layer,
            exp.salt,
        )

    def variant_index(self, unit: str | bytes, layer_b: int | None = None) -> int | None:
        """The index of the unit's variant, or ``None`` when it is outside the experiment's
        layer range or traffic."""
        lb = layer_bucket(self.layer, unit) if layer_b is None else layer_b
        if not self.layer_lo <= lb < self.layer_hi:
            return None
        d = _h(self.prefix, unit.encode() if isinstance(unit, str) else unit)
        if int.from_bytes(d[:8], "big") % BUCKETS >= self.traffic_cut:
            return None
        vb = int.from_bytes(d[8:], "big") % BUCKETS
        for i, cut in enumerate(self.cuts):
            if vb < cut:
                return i
        return len(self.cuts) - 1

    def assign(self, unit: str | bytes, layer_b: int | None = None) -> Assignment | None:
        """The unit's :class:`Assignment`, or ``None`` (not exposed)."""
        i = self.variant_index(unit, layer_b)
        return None if i is None else self.assignments[i]


_Population = tuple[frozenset[str], frozenset[str], frozenset[str], str]
_Entry = tuple[int, int, Any, int, tuple[int, ...], tuple[Assignment, ...], _Population | None]
_Layer = tuple[Any, tuple[_Entry, ...]]


def _state(key: str) -> Any:
    """A BLAKE2b state that has absorbed ``"<key>:"`` (copied per unit)."""
    return hashlib.blake2b(f"{key}:".encode(), digest_size=16)


def _plan(compiled: list[CompiledExperiment]) -> tuple[_Layer, ...]:
    """The experiments of one surface grouped by layer, as flat tuples for
    :meth:`ExperimentsView.assign`."""
    layers: dict[str, list[_Entry]] = {}
    for c in compiled:
        p = c.experiment.spec.population
        pop = (
            None
            if c.open_to_all
            else (frozenset(p.devices), frozenset(p.locales), frozenset(p.segments), p.visitors)
        )
        layers.setdefault(c.layer, []).append(
            (c.layer_lo, c.layer_hi, _state(c.prefix), c.traffic_cut, c.cuts, c.assignments, pop)
        )
    return tuple((_state(f"layer:{name}"), tuple(entries)) for name, entries in layers.items())


class ExperimentsView:
    """The running experiments and the identified visitors' units, kept in memory and
    refreshed in a daemon thread (one small query per poll when nothing changed).

    Args:
        running: The running experiments, read from the database.
        state: ``{name: revision}`` of the running experiments (the cheap poll).
        resolve: A variant's model pin to a version (``None`` when it cannot be resolved:
            the variant is then served by the production version and counted as an error).
        aliases_since: Identified visitors ``(anon_key, user_key, created_ms)`` created at or
            after a time.
        prepare: Called with the model versions the running variants serve before they are
            assigned (serving loads them first, so no request finds its variant's model
            missing).
        poll_seconds: How often to look for changes.
    """

    def __init__(
        self,
        running: Callable[[], list[Experiment]],
        state: Callable[[], dict[str, int]],
        resolve: Callable[[ModelPin], int | None],
        aliases_since: Callable[[int], Iterable[tuple[str, str, int]]],
        *,
        prepare: Callable[[set[int]], object] | None = None,
        poll_seconds: float = 5.0,
    ) -> None:
        self._prepare = prepare
        self._running = running
        self._state = state
        self._resolve = resolve
        self._aliases_since = aliases_since
        self.poll_seconds = poll_seconds
        self._compiled: dict[Surface, tuple[CompiledExperiment, ...]] = {}
        self._plans: dict[Surface, tuple[_Layer, ...]] = {}
        self._revisions: dict[str, int] = {}
        self._units: dict[str, tuple[str, int]] = {}
        self._alias_ms = 0
        self._rebuilt = time.monotonic()
        self._pins: dict[str, tuple[int | None, ...]] = {}
        self._lock = threading.Lock()
        self._poller = Poller(
            self.refresh,
            lambda: self.poll_seconds,
            name="tastebud-experiments",
            failed=lambda exc: _log.warning(
                "experiment poll failed; keeping the loaded ones", exc_info=exc
            ),
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Read everything now, then keep polling in a daemon thread (a failed poll keeps
        assigning with what was loaded)."""
        self.refresh(force=True)
        self._poller.start()

    def stop(self) -> None:
        """Stop polling."""
        self._poller.stop()

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the running experiments when they changed (or when ``force``), and the
        aliases created since the last read; returns whether the experiments changed."""
        with self._lock:
            state = self._state()
            if state or self._compiled:  # aliases only matter while experiments run
                self._read_aliases()
            pins_moved = self._pins_moved()
            if not force and state == self._revisions and not pins_moved:
                return False
            compiled = [CompiledExperiment.of(e, self._resolve) for e in self._running()]
            if self._prepare is not None:
                self._prepare({v for c in compiled for v in c.versions if v is not None})
            by_surface: dict[Surface, list[CompiledExperiment]] = {}
            for c in sorted(compiled, key=lambda c: (c.experiment.spec.layer, c.experiment.name)):
                for s in c.experiment.spec.surfaces:
                    by_surface.setdefault(s, []).append(c)
            self._compiled = {s: tuple(v) for s, v in by_surface.items()}
            self._plans = {s: _plan(v) for s, v in by_surface.items()}
            self._revisions = {c.experiment.name: c.experiment.revision for c in compiled}
            self._pins = {c.experiment.name: c.versions for c in compiled}
            return True

    def _pins_moved(self) -> bool:
        """An alias a running variant follows moved to another version."""
        unique = {c.experiment.name: c for cs in self._compiled.values() for c in cs}
        for comp in unique.values():
            for v, version in zip(comp.experiment.spec.variants, comp.versions, strict=True):
                if v.model is not None and v.model.alias is not None:
                    if self._resolve(v.model) != version:
                        return True
        return False

    def _read_aliases(self) -> None:
        now = time.monotonic()
        if now - self._rebuilt > UNITS_REBUILD_S:
            # From scratch now and then: an erasure in another process removed its alias rows,
            # which an incremental read never sees.
            self._units, self._alias_ms, self._rebuilt = {}, 0, now
        # Overlapping reads: an alias stamped before a slow transaction committed (or by a
        # host whose clock lags) is still read on a later poll.
        since = max(0, self._alias_ms - ALIAS_OVERLAP_MS)
        for anon, user, created in self._aliases_since(since):
            known = self._units.get(user)
            if known is None or created < known[1]:  # the first anonymous id is the unit
                self._units[user] = (anon, created)
            self._alias_ms = max(self._alias_ms, created)

    def forget(self, user_key: str) -> None:
        """Drop what is kept of an erased user (their anonymous unit)."""
        with self._lock:
            self._units.pop(user_key, None)

    # -- reading ------------------------------------------------------------------------------
    def unit(self, user_key: str) -> str:
        """The key the user is assigned by: their first anonymous pseudonym once identified."""
        known = self._units.get(user_key)
        return user_key if known is None else known[0]

    def active(self, surface: Surface) -> bool:
        """Whether any experiment runs on ``surface`` (the common answer is no: nothing else
        is computed)."""
        return bool(self._compiled.get(surface))

    def assign(self, user_key: str, surface: Surface, audience: Audience) -> tuple[Assignment, ...]:
        """The user's assignments on ``surface`` (one per layer at most; none when outside
        every experiment's population, layer range or traffic)."""
        plan = self._plans.get(surface)
        if not plan:
            return ()
        known = self._units.get(user_key)
        unit = (user_key if known is None else known[0]).encode()
        device, locale, segment = audience.device, audience.locale, audience.segment
        visitor = "returning" if audience.returning else "new"
        out: list[Assignment] = []
        # Inlined (a request pays for it): per layer one hash, then only the experiment whose
        # range holds the layer bucket hashes again. Same arithmetic as CompiledExperiment.
        for layer_state, experiments in plan:
            h = layer_state.copy()
            h.update(unit)
            lb = int.from_bytes(h.digest()[:8], "big") % BUCKETS
            for lo, hi, salt_state, traffic_cut, cuts, made, pop in experiments:
                if not lo <= lb < hi:
                    continue
                if pop is not None:
                    devices, locales, segments, visitors = pop
                    if (
                        (devices and device not in devices)
                        or (locales and locale not in locales)
                        or (segments and segment not in segments)
                        or (visitors != "all" and visitors != visitor)
                    ):
                        continue
                h = salt_state.copy()
                h.update(unit)
                d = h.digest()
                if int.from_bytes(d[:8], "big") % BUCKETS >= traffic_cut:
                    continue
                vb = int.from_bytes(d[8:], "big") % BUCKETS
                for i, cut in enumerate(cuts):
                    if vb < cut:
                        out.append(made[i])
                        break
        return tuple(out)

    def versions(self) -> set[int]:
        """Model versions the running variants serve (kept loaded by every serving process)."""
        return {v for vs in self._pins.values() for v in vs if v is not None}
