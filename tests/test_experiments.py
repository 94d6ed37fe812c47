"""Experiments (issue 17): specs, lifecycle and audit log, assignment (the documented test
vectors, determinism, ramps, layers, aliases), outcomes attribution and the analysis."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tastebud.errors import Conflict, ExperimentNotFound, InvalidInput, ModelNotFound
from tastebud.experiments import (
    BUCKETS,
    Audience,
    Experiment,
    Experiments,
    ExperimentSpec,
    ExperimentsView,
    ModelPin,
    Population,
    ServingParams,
    Status,
    Surface,
    buckets,
    layer_bucket,
)
from tastebud.experiments.analysis import analyse
from tastebud.experiments.assignment import CompiledExperiment
from tastebud.experiments.outcomes import USER_COLUMNS, Outcomes, load_outcomes
from tastebud.experiments.repository import free_range
from tastebud.services import Services

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "experiments.md"


def spec(name: str = "exp", **kw: object) -> ExperimentSpec:
    base: dict[str, object] = {
        "name": name,
        "hypothesis": "b is better",
        "variants": [{"name": "a"}, {"name": "b"}],
    }
    base.update(kw)
    return ExperimentSpec.model_validate(base)


def experiment(
    s: ExperimentSpec, salt: str = "s" * 32, lo: int = 0, hi: int = BUCKETS, **kw: object
) -> Experiment:
    fields: dict[str, object] = {
        "spec": s,
        "status": Status.RUNNING,
        "salt": salt,
        "layer_lo": lo,
        "layer_hi": hi,
        "created_ms": 0,
        "started_ms": 0,
        "stopped_ms": None,
        "concluded_ms": None,
        "winner": None,
        "revision": 1,
    }
    fields.update(kw)
    return Experiment(**fields)  # type: ignore[arg-type]


def no_pin(_pin: object) -> int | None:
    return None


# -- specs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "unique"),
        ({"control": "zz"}, "control"),
        ({"name": "Bad Name"}, "name"),
        ({"variants": [{"name": "a"}]}, "variants"),
        (
            {"kind": "interleaving", "variants": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
            "two",
        ),
        ({"traffic": 1.5}, "traffic"),
        ({"variants": [{"name": "a", "weight": 0}, {"name": "b"}]}, "weight"),
        ({"variants": [{"name": "a", "model": {}}, {"name": "b"}]}, "version, alias"),
        (
            {"variants": [{"name": "a", "params": {"exploration_share": 0.9}}, {"name": "b"}]},
            "exploration_share",
        ),
        ({"surprise": 1}, "surprise"),
        ({"salt": "x" * 33}, "salt"),
        ({"min_users_per_variant": 2**64}, "min_users_per_variant"),
        (
            {"variants": [{"name": "a", "params": {"session_item_weight": "inf"}}, {"name": "b"}]},
            "session_item_weight",
        ),
        (
            {"variants": [{"name": "a", "params": {"cold_start": "popular"}}, {"name": "b"}]},
            "cold_start",
        ),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        spec(**change)


def test_serving_params_reach_the_serving_config() -> None:
    from tastebud.config import ServingConfig

    params = ServingParams(cold_start_policy="popular", exploration_share=0.3)
    cfg = params.apply(ServingConfig())
    assert (cfg.cold_start_policy, cfg.exploration_share) == ("popular", 0.3)
    assert ServingParams().apply(cfg) is cfg


def test_spec_round_trips_through_json() -> None:
    s = spec(
        variants=[
            {"name": "a"},
            {"name": "b", "weight": 2, "model": {"version": 3}, "params": {"session_decay": 0.5}},
        ],
        population={"devices": ["mobile"], "visitors": "returning"},
    )
    assert ExperimentSpec.model_validate_json(s.model_dump_json()) == s
    assert s.changes() == {"model", "session_decay"}
    assert s.control_name == "a"


# -- assignment --------------------------------------------------------------------------------
def doc_vectors() -> list[tuple[str, int, int, int, str]]:
    section = DOC.read_text().split("**Test vectors**", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| (\d+) \| (\d+) \| (.+?) \|$", section, re.M)
    return [(u, int(a), int(b), int(c), served.strip("`")) for u, a, b, c, served in rows]


def test_the_documented_test_vectors() -> None:
    vectors = doc_vectors()
    assert len(vectors) == 5
    s = spec(
        "vectors",
        layer="home",
        traffic=0.5,
        variants=[{"name": "a"}, {"name": "b"}, {"name": "c", "weight": 2}],
    )
    comp = CompiledExperiment.of(
        experiment(s, salt="5f1c0a9e3d7b4c2a8e6f1b0d9c7a5e3f", lo=0, hi=5000), no_pin
    )
    assert comp.cuts == (2500, 5000, 10000)
    for unit, lb, tb, vb, served in vectors:
        assert layer_bucket("home", unit) == lb
        assert buckets("5f1c0a9e3d7b4c2a8e6f1b0d9c7a5e3f", unit) == (tb, vb)
        got = comp.assign(unit)
        assert (got.variant if got else served) == served, unit
        assert (got is None) == served.startswith("not")


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0.1, 10), min_size=2, max_size=5),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.text(min_size=4, max_size=12),
)
def test_ramping_up_never_moves_an_assigned_user(
    weights: list[float], t1: float, t2: float, salt: str
) -> None:
    low, high = sorted((t1, t2))
    variants = [{"name": f"v{i}", "weight": w} for i, w in enumerate(weights)]
    before = CompiledExperiment.of(experiment(spec(variants=variants, traffic=low), salt), no_pin)
    after = CompiledExperiment.of(experiment(spec(variants=variants, traffic=high), salt), no_pin)
    for u in range(300):
        a = before.assign(f"user-{u}")
        if a is not None:
            b = after.assign(f"user-{u}")
            assert b is not None and b.variant == a.variant


def test_weights_split_users_in_proportion() -> None:
    s = spec(variants=[{"name": "a"}, {"name": "b", "weight": 3}])
    comp = CompiledExperiment.of(experiment(s), no_pin)
    got = [comp.assign(f"u{i}") for i in range(20_000)]
    share_b = sum(1 for a in got if a is not None and a.variant == "b") / len(got)
    assert all(a is not None for a in got)
    assert abs(share_b - 0.75) < 0.015  # ±4.9 standard errors


def test_experiments_of_one_layer_never_share_a_user() -> None:
    one = CompiledExperiment.of(experiment(spec("one", layer="x"), "a" * 8, 0, 3000), no_pin)
    two = CompiledExperiment.of(experiment(spec("two", layer="x"), "b" * 8, 3000, 10000), no_pin)
    both = [(one.assign(f"u{i}"), two.assign(f"u{i}")) for i in range(5000)]
    assert not any(a is not None and b is not None for a, b in both)
    assert all(a is not None or b is not None for a, b in both)  # the layer is fully used
    share_one = sum(a is not None for a, _ in both) / len(both)
    assert abs(share_one - 0.3) < 0.03


def test_population_filters() -> None:
    pop = Population(devices=["mobile"], visitors="new")
    assert Audience("mobile", None, None, False).within(pop)
    assert not Audience("desktop", None, None, False).within(pop)
    assert not Audience("mobile", None, None, True).within(pop)
    assert Audience(None, "de-DE", "pro", True).within(Population())


def test_free_range_finds_the_first_gap() -> None:
    assert free_range([], 10_000) == (0, 10_000)
    assert free_range([(0, 3000), (5000, 6000)], 2000) == (3000, 5000)
    assert free_range([(0, 3000), (5000, 6000)], 3000) == (6000, 9000)
    assert free_range([(0, 3000), (5000, 6000)], 5000) is None


def test_an_assignment_costs_microseconds() -> None:
    """Not a timing target (bench/experiments.py prints ``assignment_us``): a sanity check
    that assigning does no I/O, counted in calls, not seconds."""
    calls = []
    view = ExperimentsView(
        lambda: [experiment(spec())],
        lambda: calls.append(1) or {"exp": 1},
        no_pin,
        lambda _ms: [],
    )
    view.refresh(force=True)
    before = len(calls)
    for i in range(1000):
        assert view.assign(f"u{i}", Surface.RECOMMENDATIONS, Audience())
    assert len(calls) == before  # no database poll per assignment


# -- the repository and the view, on SQLite and PostgreSQL --------------------------------------
def test_lifecycle_and_audit_log(any_services: Services) -> None:
    exps = any_services.experiments
    with pytest.raises(ExperimentNotFound):
        exps.get("nope")
    created = exps.create(spec("life", layer="home", allocation=0.6), actor="test")
    assert created.status is Status.DRAFT and created.layer_lo is None
    with pytest.raises(Conflict, match="exists"):
        exps.create(spec("life"), actor="test")
    exps.update(spec("life", layer="home", allocation=0.6, hypothesis="edited"), actor="t")
    started = exps.start("life", actor="test")
    assert (started.status, started.layer_lo, started.layer_hi) == (Status.RUNNING, 0, 6000)
    with pytest.raises(Conflict, match="only a draft"):
        exps.update(spec("life"), actor="t")
    with pytest.raises(Conflict, match="only a draft starts"):
        exps.start("life", actor="test")
    # The layer has 4,000 buckets left: 0.5 does not fit, 0.4 does, in the next range.
    exps.create(spec("big", layer="home", allocation=0.5), actor="test")
    with pytest.raises(Conflict, match="4000 of 10000 buckets free"):
        exps.start("big", actor="test")
    exps.create(spec("small", layer="home", allocation=0.4), actor="test")
    assert (exps.start("small", actor="t").layer_lo, exps.get("small").layer_hi) == (6000, 10000)
    assert exps.ramp("life", 0.25, actor="test").spec.traffic == 0.25
    with pytest.raises(InvalidInput):
        exps.ramp("life", 2.0, actor="test")
    assert exps.state() == {"life": exps.get("life").revision, "small": 2}
    stopped = exps.stop("life", actor="test", reason="enough")
    assert stopped.status is Status.STOPPED and stopped.stopped_ms is not None
    with pytest.raises(Conflict, match="only a running one stops"):
        exps.stop("life", actor="test")
    with pytest.raises(InvalidInput, match="not one of the variants"):
        exps.conclude("life", "zz", actor="test")
    done = exps.conclude("life", "b", actor="test")
    assert (done.status, done.winner) == (Status.CONCLUDED, "b")
    actions = [e["action"] for e in exps.log("life")]
    assert actions == ["create", "update", "start", "ramp", "stop", "conclude"]
    assert {e.name for e in exps.running()} == {"small"}
    # A stopped experiment frees its range: "big" (5,000 buckets) now fits at 0.
    assert exps.start("big", actor="t").layer_lo == 0


def test_overlapping_changes_in_other_layers_are_refused(any_services: Services) -> None:
    exps = any_services.experiments
    explore = [{"name": "a"}, {"name": "b", "params": {"exploration_share": 0.3}}]
    exps.create(spec("one", layer="l1", variants=explore), actor="t")
    exps.create(spec("two", layer="l2", variants=explore), actor="t")
    decay = [{"name": "a"}, {"name": "b", "params": {"session_decay": 0.5}}]
    exps.create(spec("three", layer="l2", variants=decay), actor="t")
    exps.start("one", actor="t")
    with pytest.raises(Conflict, match="exploration_share"):
        exps.start("two", actor="t")
    assert exps.start("three", actor="t").status is Status.RUNNING  # different settings


def test_a_missing_model_version_is_refused_at_start(any_services: Services) -> None:
    exps = any_services.experiments
    exps.create(
        spec("pinned", variants=[{"name": "a"}, {"name": "b", "model": {"version": 99}}]),
        actor="t",
    )
    with pytest.raises(ModelNotFound):
        exps.start("pinned", actor="t")
    exps.create(
        spec("aliased", variants=[{"name": "a"}, {"name": "b", "model": {"alias": "candidate"}}]),
        actor="t",
    )
    with pytest.raises(ModelNotFound, match="candidate"):
        exps.start("aliased", actor="t")


def test_an_identified_visitor_keeps_the_anonymous_variant(services: Services) -> None:
    exps = services.experiments
    exps.create(spec("sticky", variants=[{"name": f"v{i}"} for i in range(8)]), actor="t")
    exps.start("sticky", actor="t")
    view = services.engine.experiments
    assert view is not None
    view.refresh(force=True)
    p = services.pseudonymizer
    moved = 0
    for i in range(40):
        anon, user = p.anonymous(f"device-{i}"), p.user(f"person-{i}")
        before = view.assign(anon, Surface.RECOMMENDATIONS, Audience())[0].variant
        as_user = view.assign(user, Surface.RECOMMENDATIONS, Audience())[0].variant
        services.store.merge_alias(anon, user, int(time.time() * 1000))
        view.refresh()
        after = view.assign(user, Surface.RECOMMENDATIONS, Audience())[0].variant
        assert after == before
        moved += as_user != before
    assert moved > 20  # without the alias, most would have changed variant (7 in 8)
    services.engine.forget(p.user("person-0"))  # erasure forgets the unit
    assert view.unit(p.user("person-0")) == p.user("person-0")


# -- outcomes and analysis -------------------------------------------------------------------------
def _ingest(services: Services, events: list[dict[str, object]]) -> None:
    result = services.ingestor.ingest(events, source="import")
    assert result.rejected == 0, result.results


def test_outcomes_are_attributed_per_user_within_the_window(services: Services) -> None:
    three_days_ago = int(time.time() * 1000) - 3 * 86_400_000
    exps = Experiments(services.store, services.registry, now_ms=lambda: three_days_ago)
    exps.create(spec("attr", attribution_window_hours=1, pre_period_days=1), actor="t")
    exp = exps.start("attr", actor="t")
    assert exp.started_ms is not None
    t0 = exp.started_ms / 1000 + 60
    h = 3600.0

    def imp(user: str, at: float, variant: str, items: list[str], n: int) -> dict[str, object]:
        return {
            "event_id": f"imp-{user}-{n}",
            "event_type": "impression",
            "user_id": user,
            "timestamp": at,
            "data": {
                "item_ids": items,
                "list_id": f"l{user}{n}",
                "model_version": "recommendations/v1",
                "mode": "personalized",
                "latency_ms": 2.0,
                "experiments": {"attr": variant},
            },
        }

    def ev(etype: str, user: str, at: float, n: int, **data: object) -> dict[str, object]:
        return {
            "event_id": f"{etype}-{user}-{n}",
            "event_type": etype,
            "user_id": user,
            "timestamp": at,
            "data": data,
        }

    _ingest(
        services,
        [
            ev("click", "u1", t0 - 0.5 * 86400, 0, item_id="x9"),  # pre-period
            imp("u1", t0, "a", ["i1", "i2", "i3"], 1),
            ev("click", "u1", t0 + 60, 1, item_id="i2"),  # counts
            ev("click", "u1", t0 + 120, 2, item_id="zz"),  # not shown: no
            ev("click", "u1", t0 + 2 * h, 3, item_id="i3"),  # after the window: no
            ev("conversion", "u1", t0 + 600, 4, goal="pro", value=9.5),
            ev("page_view", "u1", t0 + 1.5 * 86400, 5, url="/back"),  # a return
            imp("u2", t0, "b", ["i1", "i2"], 1),
            imp("u2", t0 + 3 * h, "b", ["i4"], 2),
            ev("click", "u2", t0 + 3 * h + 30, 1, item_id="i4"),  # after the second exposure
            ev("feedback", "u2", t0 + 3 * h + 40, 2, item_id="i4", kind="not_interested"),
            ev("conversion", "u2", t0 + 2 * h, 3, goal="pro", value=5.0),  # outside: no
        ],
    )
    now = int((t0 + 2 * 86400) * 1000)
    got = load_outcomes(services.store, exps.get("attr"), now_ms=now)
    rows = {r["user_key"]: r for r in got.users.to_dicts()}
    u1, u2 = rows[services.pseudonymizer.user("u1")], rows[services.pseudonymizer.user("u2")]
    assert set(got.users.columns) == {"user_key", *USER_COLUMNS}
    assert (u1["variant"], u1["answers"], u1["shown"], u1["clicks"]) == ("a", 1, 3, 1)
    assert (u1["converted"], u1["revenue"], u1["returned"], u1["pre_clicks"]) == (1, 9.5, 1, 1)
    assert (u2["variant"], u2["answers"], u2["shown"], u2["clicks"]) == ("b", 2, 3, 1)
    assert (u2["converted"], u2["not_interested"], u2["returned"]) == (0, 1, 0)
    assert got.mixed_users == 0


def _frame(rng: np.random.Generator, variants: dict[str, float], n: int) -> pl.DataFrame:
    """Users with ``shown`` items and clicks at each variant's CTR."""
    rows: dict[str, list[object]] = {c: [] for c in ("user_key", *USER_COLUMNS)}
    for v, ctr in variants.items():
        shown = rng.poisson(20, n) + 1
        clicks = rng.binomial(shown, ctr)
        for i in range(n):
            values: dict[str, object] = dict.fromkeys(USER_COLUMNS, 0)
            values.update(
                variant=v, answers=2, shown=int(shown[i]), clicks=int(clicks[i]), latency_ms=4.0
            )
            values["revenue"] = values["engagement_s"] = values["pre_revenue"] = 0.0
            values["pre_engagement_s"] = 0.0
            values["latency_ms"] = 4.0 + float(rng.normal(0, 0.1))
            rows["user_key"].append(f"{v}{i}")
            for c in USER_COLUMNS:
                rows[c].append(values[c])
    return pl.DataFrame(rows)


def test_a_better_variant_wins_and_the_decision_says_so() -> None:
    rng = np.random.default_rng(1)
    exp = experiment(spec("dec", guardrails=["latency_ms"], min_duration_days=0))
    frame = _frame(rng, {"a": 0.05, "b": 0.065}, 4000)
    res = analyse(exp, Outcomes(frame, 0, 0, 1), now_ms=86_400_000)
    (cmp,) = res.primary.comparisons
    assert cmp.verdict == "better" and cmp.lift is not None and 0.15 < cmp.lift < 0.45
    assert res.decision.winner == "b" and res.decision.ready
    assert res.decision.text.startswith("b beats a on CTR by +")
    assert "no guardrail harmed; SRM fine" in res.decision.text
    assert res.srm.p_value is not None and not res.srm.flagged


def test_an_a_a_test_finds_nothing_and_a_skewed_split_is_flagged() -> None:
    rng = np.random.default_rng(2)
    exp = experiment(spec("aa", guardrails=[], min_users_per_variant=5000))
    frame = _frame(rng, {"a": 0.05, "b": 0.05}, 3000)
    res = analyse(exp, Outcomes(frame, 0, 0, 1), now_ms=1000)
    assert res.primary.comparisons[0].verdict == "inconclusive"
    assert res.decision.winner is None and not res.decision.ready
    assert res.decision.text.startswith("No variant differs from a on CTR yet")
    skewed = pl.concat([frame, frame.filter(pl.col("variant") == "b").head(400)])
    res = analyse(exp, Outcomes(skewed, 0, 0, 1), now_ms=1000)
    assert res.srm.flagged and "SRM detected" in res.decision.text


def test_a_harmed_guardrail_blocks_the_winner() -> None:
    rng = np.random.default_rng(3)
    exp = experiment(spec("guard", guardrails=["latency_ms"], min_duration_days=0))
    frame = _frame(rng, {"a": 0.05, "b": 0.07}, 4000).with_columns(
        pl.when(pl.col("variant") == "b")
        .then(pl.col("latency_ms") * 1.5)
        .otherwise(pl.col("latency_ms"))
        .alias("latency_ms")
    )
    res = analyse(exp, Outcomes(frame, 0, 0, 1), now_ms=1000)
    assert res.primary.comparisons[0].verdict == "better"
    assert res.guardrails[0].comparisons[0].verdict == "worse"
    assert res.decision.winner is None and "guardrail harmed: latency_ms" in res.decision.text


def test_no_exposures_give_empty_results(services: Services) -> None:
    exps = services.experiments
    exps.create(spec("empty"), actor="t")
    exps.start("empty", actor="t")
    res = analyse(exps.get("empty"), load_outcomes(services.store, exps.get("empty")))
    assert res.users == {"a": 0, "b": 0}
    assert res.primary.comparisons[0].lift is None
    assert res.decision.winner is None


# -- the CLI, with the documented example -------------------------------------------------------
@pytest.mark.slow
def test_the_documented_cli_session(tmp_path: Path) -> None:
    """docs/experiments.md's TOML example and its command lines run as written."""
    from test_cli import run

    text = DOC.read_text()
    toml = re.search(r"```toml\n(.*?)```", text, re.S)
    assert toml is not None
    spec_file = tmp_path / "more-exploration.toml"
    spec_file.write_text(toml.group(1))
    data = tmp_path / "data"
    commands = re.search(r"```\n(tastebud experiments create.*?)```", text, re.S)
    assert commands is not None
    lines = [line.split("#")[0].split() for line in commands.group(1).splitlines()]
    for words in lines:
        assert words[0] == "tastebud"
        args = [str(spec_file) if w == "more-exploration.toml" else w for w in words[1:]]
        r = run(args, data)
        assert r.returncode == 0, (words, r.stdout, r.stderr)
        if words[2] == "results":
            assert r.stdout.startswith("more-exploration (ab, running")
            assert "No variant differs from control on CTR yet" in r.stdout
        if words[2] == "sample-size":
            assert "users per variant to detect a 5.0% relative lift" in r.stdout
    r = run(["experiments", "show", "more-exploration", "--json"], data)
    assert r.returncode == 0
    shown = orjson.loads(r.stdout)
    actions = ["create", "update", "start", "ramp", "stop", "conclude"]
    assert [e["action"] for e in shown["log"]] == actions
    assert shown["winner"] == "explore" and shown["status"] == "concluded"
    # Bad input: a clear message and exit code 1, nothing stored.
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nhypothesis = "h"\n[[variants]]\nname = "a"\n')
    r = run(["experiments", "create", str(bad)], data)
    assert r.returncode == 1 and "variants" in r.stderr, r.stderr
    r = run(["experiments", "sample-size", "--baseline", "0", "--mde", "0.05"], data)
    assert r.returncode == 1 and "rate" in r.stderr.lower(), r.stderr


def test_the_worker_analyses_running_experiments_hourly(services: Services, tmp_path: Path) -> None:
    from tastebud.config import Schedule
    from tastebud.worker import job_context
    from tastebud.worker.schedule import Worker

    exps = services.experiments
    exps.create(spec("hourly"), actor="t")
    exps.start("hourly", actor="t")
    exps.create(spec("idle"), actor="t")  # a draft: not analysed
    worker = Worker(job_context(services, "test"), Schedule(), tmp_path, owner="w1")
    assert worker.interval_ms("experiments") == 3_600_000
    run = worker.run_job("experiments")
    assert run is not None and run.status == "succeeded", run
    assert list(run.details["analysed"]) == ["hourly"]  # type: ignore[typeddict-item]
    history = exps.results_history("hourly")
    assert len(history) == 1
    stored = history[0]["results"]
    assert isinstance(stored, dict) and stored["experiment"] == "hourly"
    assert exps.results_history("idle") == []
    assert worker.due("experiments") is None  # done for the hour


def test_the_view_assigns_as_the_compiled_experiments_do() -> None:
    """The request path is inlined for speed: it must give exactly what
    ``CompiledExperiment.assign`` and ``Audience.within`` give."""
    exps = [
        experiment(spec("one", layer="home", traffic=0.7), "salt-one", 0, 4000),
        experiment(
            spec("two", layer="home", population={"devices": ["mobile"], "visitors": "new"}),
            "salt-two",
            4000,
            10_000,
        ),
        experiment(
            spec(
                "three",
                layer="rank",
                variants=[{"name": "a"}, {"name": "b", "weight": 3}, {"name": "c"}],
                population={"locales": ["de-DE"], "segments": ["pro", "free"]},
            ),
            "salt-three",
            1000,
            9000,
        ),
    ]
    view = ExperimentsView(lambda: exps, lambda: {"x": 1}, no_pin, lambda _ms: [])
    view.refresh(force=True)
    compiled = [CompiledExperiment.of(e, no_pin) for e in exps]
    audiences = [
        Audience("mobile", "de-DE", "pro", False),
        Audience("desktop", "de-DE", "free", True),
        Audience(None, None, None, False),
        Audience("mobile", "en-GB", "pro", True),
    ]
    seen: set[tuple[str, ...]] = set()
    for i in range(3000):
        unit = f"user-{i}"
        audience = audiences[i % len(audiences)]
        got = view.assign(unit, Surface.RECOMMENDATIONS, audience)
        want = [
            a
            for c in compiled
            if audience.within(c.experiment.spec.population)
            for a in [c.assign(unit)]
            if a is not None
        ]
        assert list(got) == want, (unit, audience)
        seen.add(tuple(a.experiment for a in got))
    assert {(), ("one",), ("two",), ("three",), ("one", "three")} <= seen


def test_an_existing_user_on_a_new_device_keeps_their_own_variant(services: Services) -> None:
    exps = services.experiments
    exps.create(spec("own", variants=[{"name": f"v{i}"} for i in range(8)]), actor="t")
    exps.start("own", actor="t")
    view = services.engine.experiments
    assert view is not None
    p = services.pseudonymizer
    kept = 0
    for i in range(20):
        user = p.user(f"member-{i}")
        _ingest(services, [{"event_type": "page_view", "user_id": f"member-{i}",
                            "timestamp": time.time(), "data": {"url": "/"}}])  # fmt: skip
        view.refresh(force=True)
        before = view.assign(user, Surface.RECOMMENDATIONS, Audience())[0].variant
        services.store.merge_alias(p.anonymous(f"phone-{i}"), user, int(time.time() * 1000))
        view.refresh()
        kept += view.assign(user, Surface.RECOMMENDATIONS, Audience())[0].variant == before
    assert kept == 20


def test_an_alias_pin_that_points_nowhere_is_an_error() -> None:
    s = spec(variants=[{"name": "a"}, {"name": "b", "model": {"alias": "candidate"}}])
    comp = CompiledExperiment.of(experiment(s), no_pin)
    b = comp.assignments[1]
    assert (b.variant, b.version, b.unresolved) == ("b", None, True)
    assert not comp.assignments[0].unresolved
    resolved = CompiledExperiment.of(experiment(s), lambda pin: 7 if pin.alias else None)
    assert (resolved.assignments[1].version, resolved.assignments[1].unresolved) == (7, False)
    assert ModelPin(alias="candidate").label() == "@candidate"


def test_interleaving_sides_share_the_other_layers_settings() -> None:
    from tastebud.config import ServingConfig
    from tastebud.experiments import Assignment
    from tastebud.serving.arms import Arms
    from tastebud.serving.coldstart import ColdStartScores
    from tastebud.serving.hotswap import Served

    production = Served("recommendations", 1, "aid", "recommender", object(), 0.0)
    arms = Arms(None, ServingConfig(), ColdStartScores())  # type: ignore[arg-type]
    inter = Assignment(
        "il", "new", "interleaving", None, ServingParams(session_decay=0.5),
        ("old", None, ServingParams(session_decay=0.9)),
    )  # fmt: skip
    other_layer = Assignment("more", "explore", "ab", None, ServingParams(exploration_share=0.3))
    for order in ((inter, other_layer), (other_layer, inter)):
        mine, theirs = arms.merged(production, order)
        assert theirs is not None
        assert (mine.variant, theirs.variant) == ("new", "old")
        assert mine.scorer.config.session_decay == 0.5
        assert theirs.scorer.config.session_decay == 0.9
        assert mine.explorer.config.exploration_share == 0.3
        assert theirs.explorer.config.exploration_share == 0.3


def test_a_guardrail_rising_from_zero_is_harm_and_blocks_only_its_variant() -> None:
    rng = np.random.default_rng(4)
    exp = experiment(
        spec(
            "harm",
            variants=[{"name": "a"}, {"name": "b"}, {"name": "c"}],
            guardrails=["error_rate"],
            min_duration_days=0,
        )
    )
    frame = _frame(rng, {"a": 0.05, "b": 0.07, "c": 0.07}, 4000)
    errors = rng.binomial(2, 0.05, frame.height)  # c fails 5% of its answers; a and b never
    frame = frame.with_columns(
        pl.when(pl.col("variant") == "c").then(pl.Series(errors)).otherwise(0).alias("errors")
    )
    res = analyse(exp, Outcomes(frame, 0, 0, 1), now_ms=1000)
    verdicts = {c.variant: c.verdict for c in res.primary.comparisons}
    assert verdicts == {"b": "better", "c": "better"}
    harm = {c.variant: (c.verdict, c.scale) for c in res.guardrails[0].comparisons}
    assert harm == {"b": ("inconclusive", "absolute"), "c": ("worse", "absolute")}
    assert res.decision.winner == "b"
    assert "guardrail harmed: error_rate (c +0.0" in res.decision.text
