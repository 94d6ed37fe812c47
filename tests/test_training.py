"""``tastebud evaluate`` / ``tastebud train`` on real MovieLens data, the pickle-free artifacts
with their checksums, and the HTML report rendered in a real headless Chromium."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from tastebud.errors import ArtifactInvalid, NotFound
from tastebud.ids import Vocabulary
from tastebud.models import SeqLinear, SeqLinearConfig, TrainingData
from tastebud.training import load_model, save_model
from test_cli import run

from conftest import chromium_path, need_movielens


def small_model() -> tuple[SeqLinear, Vocabulary, Vocabulary, TrainingData]:
    data = TrainingData.from_arrays(3, 4, [0, 0, 1, 1, 2], [0, 1, 1, 2, 3], ts=[1, 2, 3, 4, 5])
    model = SeqLinear(SeqLinearConfig(l2=1.0)).fit(data)
    return model, Vocabulary(["a", "b", "c"]), Vocabulary(["w", "x", "y", "z"]), data


def test_artifact_round_trip(tmp_path: Path) -> None:
    model, users, items, data = small_model()
    save_model(tmp_path / "m", model, users, items, {"validation": {"ndcg@10": 0.5}})
    path = tmp_path / "m"
    names = sorted(p.name for p in path.iterdir())
    assert names == [
        "config.json",
        "items.json",
        "manifest.json",
        "metrics.json",
        "params.npz",
        "users.json",
    ]
    loaded = load_model(path)
    assert loaded.users.ids == users.ids and loaded.items.ids == items.ids
    assert loaded.metrics["validation"]["ndcg@10"] == 0.5
    a = model.recommend(np.arange(3), 2, exclude=data.matrix())
    b = loaded.model.recommend(np.arange(3), 2, exclude=data.matrix())
    np.testing.assert_array_equal(a.item_idx, b.item_idx)
    # Saving again replaces the artifact in one step, leaving no temporary directories.
    save_model(tmp_path / "m", model, users, items)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    model, users, items, _ = small_model()
    save_model(tmp_path / "m", model, users, items)
    path = tmp_path / "m"
    params = path / "params.npz"
    blob = bytearray(params.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    params.write_bytes(bytes(blob))
    with pytest.raises(ArtifactInvalid, match="params.npz does not match its recorded sha256"):
        load_model(path)
    save_model(tmp_path / "m", model, users, items)
    (path / "users.json").unlink()
    with pytest.raises(ArtifactInvalid, match="missing users.json"):
        load_model(path)
    with pytest.raises(NotFound, match="tastebud train"):
        load_model(tmp_path / "nothing")


@pytest.fixture(scope="module")
def movielens_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ml = need_movielens()
    data_dir = tmp_path_factory.mktemp("ml")
    r = run(["import", "movielens", str(ml)], data_dir)
    assert r.returncode == 0, r.stderr
    return data_dir


@pytest.mark.slow
def test_evaluate_movielens_json_and_report(movielens_dir: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "eval.json", tmp_path / "report.html"
    r = run(
        [
            "evaluate",
            "--models",
            "tastebud_seq,ease,popularity",
            "--no-tune",
            "--json",
            str(out),
            "--report",
            str(report),
        ],
        movielens_dir,
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    assert result["protocol"] == "temporal-user"
    assert result["dataset"] == {
        "interactions": 100_000,
        "users": 943,
        "items": 1682,
        "has_time": True,
    }
    assert result["test_users"] == 943
    m = result["models"]
    for name in ("tastebud_seq", "ease", "popularity"):
        assert set(m[name]) >= {
            "ndcg@10",
            "mrr@10",
            "precision@10",
            "recall@20",
            "coverage@10",
            "ci95",
            "params",
        }
    # On real data, knowing the order of a user's history beats ignoring it, which beats
    # not personalising at all (defaults, no tuning).
    assert (
        m["tastebud_seq"]["ndcg@10"] > 1.1 * m["ease"]["ndcg@10"] > 1.1 * m["popularity"]["ndcg@10"]
    )
    assert {"gender", "age_bucket", "occupation", "activity"} <= set(result["slices"])
    gender = result["slices"]["gender"]["tastebud_seq"]
    assert set(gender["groups"]) == {"F", "M"} and gender["disparity_ndcg@10"] >= 1.0
    assert "best_ndcg10_over_best_peer" in result and result["best_model"] == "tastebud_seq"
    assert "tastebud_seq" in r.stdout and "ndcg@10" in r.stdout
    html = report.read_text()
    assert html.count("<svg") >= 4 + len(result["slices"])


@pytest.mark.slow
def test_train_saves_a_loadable_model(movielens_dir: Path) -> None:
    r = run(["train", "--model", "tastebud_seq", "--no-tune"], movielens_dir)
    assert r.returncode == 0, r.stderr
    assert "registered recommendations v1 (tastebud_seq) as candidate" in r.stdout
    assert "held-out ndcg@10" in r.stdout
    version = movielens_dir / "artifacts" / "registry" / "recommendations" / "v1" / "r1"
    loaded = load_model(version)
    assert len(loaded.users) == 943 and len(loaded.items) == 1682
    # MovieLens users carry gender, age and occupation: the model card has their slices.
    card = (version / "model_card.md").read_text()
    assert "gender: disparity" in card and "occupation" in card
    recs = loaded.model.recommend(np.arange(5), 10)
    assert (recs.item_idx >= 0).all()
    bad = run(["train", "--model", "nope"], movielens_dir)
    assert bad.returncode == 1 and "unknown model" in bad.stderr


def test_evaluate_errors_are_clear(tmp_path: Path) -> None:
    r = run(["evaluate"], tmp_path)
    assert r.returncode == 1 and "no interactions in the database" in r.stderr
    r = run(["evaluate", "--protocol", "random"], tmp_path)
    assert r.returncode == 1 and "unknown protocol 'random'" in r.stderr
    r = run(["evaluate", "--models", "als,nope"], tmp_path)
    assert r.returncode == 1 and "unknown model(s) nope" in r.stderr


@pytest.mark.browser
@pytest.mark.slow
def test_report_renders_its_plots_in_chromium(movielens_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    r = run(
        ["evaluate", "--models", "tastebud_seq,popularity", "--no-tune", "--report", str(report)],
        movielens_dir,
    )
    assert r.returncode == 0, r.stderr
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium_path(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1200,2600",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = image.imread(str(shot))[..., :3]
    # The bar colour of Tastebud's models (#2b6cb0) must be on screen: the plots rendered.
    blue = np.all(np.abs(pixels - np.array([0x2B, 0x6C, 0xB0]) / 255) < 0.03, axis=-1)
    assert blue.sum() > 2000, f"only {blue.sum()} pixels of the plot colour"


def test_an_artifact_whose_config_is_now_refused_is_invalid_not_a_crash(tmp_path: Path) -> None:
    """Issue 16, point 11: configs refuse nonsense, so a verified artifact written with a value
    today's bounds refuse (l2 = 0) is reported as an invalid artifact naming the field."""
    import json

    from tastebud.registry import write_artifact

    model, users, items, _ = small_model()
    path = tmp_path / "m"
    save_model(path, model, users, items)
    texts = {
        n: (path / n).read_text()
        for n in ("config.json", "users.json", "items.json", "metrics.json")
    }
    config = json.loads(texts["config.json"])
    config["config"]["l2"] = 0.0
    texts["config.json"] = json.dumps(config)
    with np.load(path / "params.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    write_artifact(path, texts, arrays)
    with pytest.raises(ArtifactInvalid, match=r"no longer valid for tastebud_seq: l2"):
        load_model(path)
