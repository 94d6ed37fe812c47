"""Behaviour predictors: model choice, calibration, explanations, pickle-free artifacts, the
table reader's bad rows, the CLI and ``GET /v1/users/{id}/predictions``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tastebud.errors import ArtifactInvalid, InvalidInput
from tastebud.evaluation import expected_calibration_error, reliability
from tastebud.models.predictor import Predictor, PredictorConfig
from tastebud.registry import promote, scan_artifact
from tastebud.registry.predictor import FeatureSchema
from tastebud.serving import PredictionService
from tastebud.simulator import SimConfig, Simulator
from tastebud.training import (
    event_training_set,
    load_predictor,
    read_table,
    save_predictor,
    table_from_frame,
)
from test_cli import run

from conftest import Api

FAST = PredictorConfig(leaves=(7,), logistic_c=(1.0,), folds=3)


def linear_data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    logit = 1.5 * x[:, 0] - 1.0 * x[:, 1] - 1.0
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def interaction_data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    logit = 3.0 * np.sign(x[:, 0] * x[:, 1]) - 0.5
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def test_family_is_chosen_on_out_of_fold_scores() -> None:
    x, y = linear_data()
    lin = Predictor(PredictorConfig(leaves=(7,), logistic_c=(0.1, 1.0))).fit(x, y, list("abcd"))
    assert lin.chosen.startswith("logistic") or lin.chosen.startswith("blend")
    x, y = interaction_data()
    tree = Predictor(PredictorConfig(leaves=(7,), logistic_c=(0.1, 1.0))).fit(x, y, list("abcd"))
    assert tree.chosen.startswith("lightgbm"), tree.selection
    singles = {k: v for k, v in tree.selection.items() if not k.startswith("blend")}
    assert tree.selection[tree.chosen] == max(singles.values())


def test_calibrated_on_held_out_data() -> None:
    x, y = interaction_data(6000, seed=1)
    model = Predictor(FAST).fit(x[:4000], y[:4000], list("abcd"))
    p = model.predict_proba(x[4000:])
    assert ((p >= 0) & (p <= 1)).all()
    assert expected_calibration_error(y[4000:], p) < 0.05
    bins = reliability(y[4000:], p)
    assert sum(b["count"] for b in bins) == 2000
    # Calibration never costs ranking: the order of the raw scores is kept.
    raw = model.decision_function(x[4000:])
    assert (np.argsort(raw, kind="stable") == np.argsort(p, kind="stable")).mean() > 0.99


def test_calibration_levels_follow_the_data() -> None:
    """``auto`` calibration: few levels where finer steps only chase noise, fine ones where the
    data shows them (rare positives concentrated at the top)."""
    lin = PredictorConfig(families=("logistic",), logistic_c=(1.0,))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 2))
    y = (rng.random(3000) < 1 / (1 + np.exp(-(1.2 * x[:, 0] - 1.5)))).astype(int)
    smooth = Predictor(lin).fit(x, y, ["a", "b"])
    assert smooth.calibration_levels_ in (20, 50), smooth.calibration_selection
    assert smooth.calibration == f"isotonic, {smooth.calibration_levels_} levels"
    assert set(smooth.calibration_selection) == {"unrestricted", "200", "100", "50", "20"}
    p = smooth.predict_proba(x)
    assert len(np.unique(np.round(p, 4))) <= smooth.calibration_levels_
    # Each level is the observed rate of its rows (isotonic: no level above a later one).
    order = np.argsort(smooth.decision_function(x))
    assert (np.diff(p[order]) >= 0).all()
    assert abs(p.mean() - y.mean()) < 0.01

    x = rng.normal(size=(20000, 2))
    y = (rng.random(20000) < 1 / (1 + np.exp(-6 * (x[:, 0] - 2.6)))).astype(int)  # 0.7 % positive
    rare = Predictor(lin).fit(x, y, ["a", "b"])
    # Twenty levels would put the top 5 % of rows (about 13 % positive) on one level.
    assert rare.calibration_levels_ == 0 or rare.calibration_levels_ >= 100, (
        rare.calibration_selection
    )
    assert rare.predict_proba(x).max() > 0.6
    with pytest.raises(ValueError, match="at least 2 levels"):
        PredictorConfig(calibration_levels=(50, 1))


def test_calibration_choice_survives_the_artifact(tmp_path: Path) -> None:
    x, y = linear_data(3000, seed=2)
    model = Predictor(PredictorConfig(families=("logistic",), logistic_c=(1.0,))).fit(
        x, y, list("abcd")
    )
    schema: FeatureSchema = {
        "names": list("abcd"),
        "kinds": dict.fromkeys("abcd", "numeric"),
        "categories": {},
    }
    save_predictor(tmp_path / "p", model, schema, {})
    loaded = load_predictor(tmp_path / "p").predictor
    assert loaded.calibration == model.calibration
    assert loaded.calibration_selection == model.calibration_selection
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_explanations_point_the_right_way() -> None:
    x, y = linear_data()
    model = Predictor(FAST).fit(x, y, ["up", "down", "noise1", "noise2"])
    reasons = model.explain(np.array([[3.0, -3.0, 0.0, 0.0], [-3.0, 3.0, 0.0, 0.0]]))
    assert {r.feature for r in reasons[0][:2]} == {"up", "down"}
    assert all(r.direction == "increases" for r in reasons[0][:2])
    assert all(r.direction == "decreases" for r in reasons[1][:2])
    assert list(model.importance())[:2] in (["up", "down"], ["down", "up"])


def test_artifact_round_trip_and_tamper_check(tmp_path: Path) -> None:
    x, y = interaction_data(2000)
    x[::7, 2] = np.nan  # missing values survive the round trip
    model = Predictor(FAST).fit(x, y, list("abcd"))
    schema: FeatureSchema = {
        "names": list("abcd"),
        "kinds": dict.fromkeys("abcd", "numeric"),
        "categories": {},
    }
    artifact_id = save_predictor(tmp_path / "churn", model, schema, {"note": 1})
    names = sorted(p.name for p in (tmp_path / "churn").iterdir())
    assert "params.npz" in names and any(n.startswith("booster_") for n in names)
    assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in names)
    loaded = load_predictor(tmp_path / "churn")
    assert loaded.artifact_id == artifact_id and loaded.metrics == {"note": 1}
    np.testing.assert_allclose(loaded.predictor.predict_proba(x), model.predict_proba(x))
    booster = tmp_path / "churn" / "booster_0.txt"
    booster.write_text(booster.read_text().replace("Tree=0", "Tree=0 ", 1))
    with pytest.raises(ArtifactInvalid, match="booster_0.txt does not match"):
        load_predictor(tmp_path / "churn")


def test_table_reader_bad_rows_and_kinds(tmp_path: Path) -> None:
    path = tmp_path / "churn.csv"
    path.write_text(
        "customer,age,plan,active,notes,churned\n"
        "c1,34,gold,yes,a,TRUE\n"
        "c2,,silver,no,b,false\n"
        "c3,n.a.,gold,,c,1\n"
        "c4,51,,yes,d,\n"
        "c5,22,bronze,no,e,maybe\n"
        "c6,40,gold,YES,f,0\n"
        "c7,29,silver,no,g,No\n"
    )
    t = read_table(path, "churned", "customer", max_categories=4)
    assert t.kinds == {"age": "numeric", "plan": "categorical", "active": "boolean"}
    assert t.ids == ["c1", "c2", "c3", "c6", "c7"]
    assert t.y.tolist() == [1, 0, 1, 0, 0]
    rep = t.report
    assert rep.rows_read == 7 and rep.rows_used == 5 and rep.positives == 2
    assert rep.dropped_rows == {"label is blank": 1, "label is not true/yes/1 or false/no/0": 1}
    assert rep.malformed_cells == {"age": 1}
    assert "notes" in rep.ignored_columns
    age = t.x[:, t.names.index("age")]
    assert np.isnan(age[[1, 2]]).all() and age[0] == 34
    assert t.x[:, t.names.index("active")].tolist()[:3] == [1.0, 0.0, 0.0] or np.isnan(
        t.x[2, t.names.index("active")]
    )
    assert any("malformed" in line for line in rep.lines())
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        read_table(path, "nope")
    single = tmp_path / "single.csv"
    single.write_text("a,y\n1,yes\n2,true\n")
    with pytest.raises(InvalidInput, match="every usable row is positive"):
        read_table(single, "y")


def test_cli_train_and_evaluate_a_table(tmp_path: Path) -> None:
    x, y = interaction_data(800, seed=3)
    lines = ["id,f0,f1,f2,f3,colour,label"]
    colours = ["red", "green", "blue"]
    for i, (row, label) in enumerate(zip(x, y, strict=True)):
        cells = [f"{v:.4f}" for v in row]
        if i % 50 == 0:
            cells[2] = "oops"
        lines.append(f"u{i},{','.join(cells)},{colours[i % 3]},{'yes' if label else 'no'}")
    lines.append("u-bad,1,2,3,4,red,")
    table = tmp_path / "t.csv"
    table.write_text("\n".join(lines) + "\n")
    fast = ["--folds", "3", "--learning-rate", "0.1"]
    r = run(
        ["predictors", "train", "--table", str(table), "--label", "label", "--id", "id", *fast],
        tmp_path / "data",
    )
    assert r.returncode == 0, r.stderr
    assert "800 of 801 rows used" in r.stdout and "16 malformed cells in 'f2'" in r.stdout
    assert "calibration: platt" in r.stdout  # below 1,000 rows: Platt scaling
    r = run(
        [
            "predictors",
            "train",
            "--table",
            str(table),
            "--label",
            "label",
            "--id",
            "id",
            "--calibration",
            "isotonic",
            "--name",
            "iso",
            *fast,
        ],
        tmp_path / "data",
    )
    assert r.returncode == 0 and "calibration: isotonic" in r.stdout, r.stderr
    iso = load_predictor(tmp_path / "data" / "artifacts" / "predictors" / "iso").predictor
    assert iso.calibration == "isotonic"
    r = run(
        [
            "predictors",
            "train",
            "--table",
            str(table),
            "--label",
            "label",
            "--calibration",
            "magic",
        ],
        tmp_path / "data",
    )
    assert r.returncode == 2 and "magic" in r.stderr
    loaded = load_predictor(tmp_path / "data" / "artifacts" / "predictors" / "table-label")
    assert loaded.schema["kinds"]["colour"] == "categorical"
    out, report = tmp_path / "eval.json", tmp_path / "eval.html"
    r = run(
        [
            "predictors",
            "evaluate",
            "--table",
            str(table),
            "--label",
            "label",
            "--id",
            "id",
            "--json",
            str(out),
            "--report",
            str(report),
            *fast,
        ],
        tmp_path / "data",
    )
    assert r.returncode == 0, r.stderr
    means = json.loads(out.read_text())
    assert set(means) == {"tastebud", "sk_logreg", "sk_gbm_seed"}
    for m in means.values():
        assert set(m) == {"roc_auc", "pr_auc", "brier", "ece"}
    assert means["tastebud"]["roc_auc"] > means["sk_logreg"]["roc_auc"]
    page = report.read_text()
    assert page.count("<svg") == 2 and "reliability" in page.lower()
    assert "<span id='calibration'>platt; platt; platt; platt; platt</span>" in page
    bad = run(["predictors", "train", "--target", "churn", "--table", str(table)], tmp_path)
    assert bad.returncode == 1 and "either --target" in bad.stderr


@pytest.mark.slow
def test_predictions_endpoint_from_events(make_api: Any, make_settings: Any) -> None:
    api: Api = make_api(make_settings())
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=70
    )
    sim = Simulator(SimConfig(users=250, items=80, days=65, seed=5, start=start))
    api.request("POST", "/v1/items/batch", json={"items": list(sim.items())})
    events = list(sim.events())
    for i in range(0, len(events), 1000):
        r = api.request("POST", "/v1/events/batch", "ingest", json={"events": events[i : i + 1000]})
        assert r.status_code == 200 and r.json()["rejected"] == 0
    services = api.services
    user = next(iter(sim.truth()["users"]))
    missing = api.request("GET", f"/v1/users/{user}/predictions", "serve")
    assert missing.status_code == 404 and "train --full" in missing.json()["error"]["message"]

    frame = event_training_set(services.store, "churn").drop("as_of_ms", "snapshot_id")
    table = table_from_frame(frame, "label", "user_key")
    model = Predictor(FAST).fit(table.x, table.y, table.names, table.categorical)
    staging = services.registry.staging_dir("churn")
    artifact_id = save_predictor(staging, model, table.schema(), {})
    mv = services.registry.register(
        "churn",
        staging,
        kind="predictor",
        algorithm=model.chosen,
        metrics={},
        lineage={},
        actor="test",
    )
    # LightGBM's text models hold no personal data (and are not mistaken for any).
    assert scan_artifact(services.registry.root / mv.path) == []
    # A candidate is not served; production is (forced: this bare version fails its checklist).
    assert api.request("GET", f"/v1/users/{user}/predictions", "serve").status_code == 404
    promote(
        services.registry,
        services.settings.governance,
        "churn",
        mv.version,
        actor="test",
        force=True,
        reason="endpoint test",
    )
    services.models.refresh()
    body = api.request("GET", f"/v1/users/{user}/predictions", "serve").json()
    assert 0.0 <= body["churn_probability"] <= 1.0
    assert body["conversion_probability"] is None
    assert body["models"]["churn"]["artifact_id"] == artifact_id
    assert body["models"]["churn"]["version"] == mv.version
    reasons = body["reasons"]["churn"]
    assert 1 <= len(reasons) <= 3
    assert all(
        r["feature"] in table.names and r["direction"] in {"increases", "decreases"}
        for r in reasons
    )
    unknown = api.request("GET", "/v1/users/nobody-at-all/predictions", "serve")
    assert unknown.status_code == 404
    assert api.request("GET", f"/v1/users/{user}/predictions", "ingest").status_code == 403
    # Predictions are profiling: a user who opted out of personalization gets none, in the API
    # and in their export (issue 15, point 11).
    assert (
        api.request(
            "PUT", f"/v1/users/{user}/consent", "ingest", json={"personalization": False}
        ).status_code
        == 200
    )
    opted = api.request("GET", f"/v1/users/{user}/predictions", "serve")
    assert opted.status_code == 409 and opted.json()["error"]["code"] == "opted_out"
    assert "opted out of personalization" in opted.json()["error"]["message"]
    assert api.request("GET", f"/v1/users/{user}/export").json()["predictions"] is None
    api.request("PUT", f"/v1/users/{user}/consent", "ingest", json={"personalization": True})
    assert api.request("GET", f"/v1/users/{user}/predictions", "serve").status_code == 200
    assert isinstance(services.predictions, PredictionService)


def test_groups_keep_a_users_rows_in_one_fold() -> None:
    # 150 users, 40 rows each (as-of times); the label is a coin flip per user and the features
    # are a per-user fingerprint: nothing generalises, everything can be memorised.
    rng = np.random.default_rng(4)
    users = np.repeat(np.arange(150), 40)
    fingerprint = rng.normal(size=(150, 3))[users] + 0.01 * rng.normal(size=(6000, 3))
    y = rng.integers(0, 2, 150)[users]
    cfg = PredictorConfig(
        leaves=(31,),
        logistic_c=(1.0,),
        folds=3,
        learning_rate=0.2,
        early_stopping_rounds=20,
        max_trees=300,
    )
    leaky = Predictor(cfg).fit(fingerprint, y, ["a", "b", "c"])
    honest = Predictor(cfg).fit(fingerprint, y, ["a", "b", "c"], groups=users.astype(str))
    assert leaky.selection[leaky.chosen] > 0.8, "row folds score memorised users"
    assert honest.selection[honest.chosen] < 0.65, "group folds see through it"
