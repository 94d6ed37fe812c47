"""Batch personalization (issue 8, item 5): ``recommend_all`` and ``tastebud recommend`` write
every user's top k, as the model ranks them with training items excluded, to NDJSON or Parquet,
keyed by pseudonym, removed users skipped, atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest

from tastebud.config import Settings
from tastebud.errors import InvalidInput
from tastebud.ids import Vocabulary
from tastebud.models import Recommendations, TrainingData
from tastebud.models.linear import SeqLinear, SeqLinearConfig
from tastebud.registry import ModelVersion, Registry, promote
from tastebud.registry.recommender import LoadedModel, load_model, save_model
from tastebud.services import Services
from tastebud.serving.batch import recommend_all, select_users
from test_cli import run

N_USERS, N_ITEMS = 7, 9
REMOVED = 3
KEYS = [f"{i * 7919:032x}" if i != REMOVED else f"~removed-{i}" for i in range(N_USERS)]
ITEMS = [f"item-{j}" for j in range(N_ITEMS)]
INFO = {"name": "recommendations", "version": 4, "artifact_id": "a" * 16}


def training_data() -> TrainingData:
    """Each user saw a few items (user 6 saw all but two, so k > 2 leaves a short list)."""
    rng = np.random.default_rng(7)
    users: list[int] = []
    items: list[int] = []
    for u in range(N_USERS - 1):
        picked = rng.choice(N_ITEMS, size=3, replace=False)
        users += [u] * 3
        items += picked.tolist()
    users += [N_USERS - 1] * (N_ITEMS - 2)
    items += list(range(N_ITEMS - 2))
    return TrainingData.from_arrays(N_USERS, N_ITEMS, users, items, ts=np.arange(len(users)))


@pytest.fixture
def loaded() -> LoadedModel:
    data = training_data()
    model = SeqLinear(SeqLinearConfig(l2=1.0)).fit(data)
    return LoadedModel(model, Vocabulary(KEYS), Vocabulary(ITEMS), {}, data.matrix())


def expected(loaded: LoadedModel, k: int) -> Recommendations:
    return loaded.model.recommend(np.arange(N_USERS), k, exclude=loaded.seen)


def top(want: Recommendations, u: int) -> tuple[list[str], list[float]]:
    """User ``u``'s expected item ids and scores, padding (``-1``) cut. Scores on the API's
    scale: relevance within the list, 1 for the best item, 0 for the last (issue 15)."""
    n = int((want.item_idx[u] >= 0).sum())
    raw = [float(x) for x in want.scores[u][:n]]
    lo, hi = (min(raw), max(raw)) if raw else (0.0, 0.0)
    rel = [1.0 if hi == lo else (x - lo) / (hi - lo) for x in raw]
    return [ITEMS[j] for j in want.item_idx[u][:n]], rel


def flat(text: str) -> str:
    """Console output without the line wrapping."""
    return " ".join(text.split())


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("ext", [".ndjson", ".jsonl"])
def test_ndjson_is_the_models_ranking(loaded: LoadedModel, tmp_path: Path, ext: str) -> None:
    done: list[int] = []
    out = tmp_path / f"recs{ext}"
    result = recommend_all(loaded, 3, out, version_info=INFO, chunk=2, progress=done.append)
    assert (result.users, result.removed, result.unknown, result.format) == (6, 1, 0, "ndjson")
    assert sum(done) == 6 and len(done) == 3  # one call per chunk of 2
    rows = read_ndjson(out)
    want = expected(loaded, 3)
    assert [r["user_key"] for r in rows] == [k for k in KEYS if not k.startswith("~")]
    seen = loaded.seen
    assert seen is not None
    for row in rows:
        u = KEYS.index(row["user_key"])
        assert row["model"] == INFO
        ids, scores = top(want, u)
        assert [i["item_id"] for i in row["items"]] == ids
        assert [i["score"] for i in row["items"]] == pytest.approx(scores, abs=1e-6)
        trained = {ITEMS[j] for j in seen[u].indices}
        assert trained.isdisjoint(i["item_id"] for i in row["items"])


def test_parquet_is_the_models_ranking(loaded: LoadedModel, tmp_path: Path) -> None:
    out = tmp_path / "recs.parquet"
    result = recommend_all(loaded, 4, out, version_info=INFO, chunk=4)
    assert (result.users, result.format) == (6, "parquet")
    df = pl.read_parquet(out)
    assert df.columns == ["user_key", "rank", "item_id", "score"]
    assert df.schema["score"] == pl.Float32
    want = expected(loaded, 4)
    assert REMOVED not in {KEYS.index(k) for k in df["user_key"]}
    for key, group in df.group_by("user_key", maintain_order=True):
        u = KEYS.index(str(key[0]))
        ids, scores = top(want, u)
        assert group["rank"].to_list() == list(range(1, len(ids) + 1))
        assert group["item_id"].to_list() == ids
        # The same scale as the API's and the NDJSON's (float32).
        assert group["score"].to_list() == pytest.approx(scores, abs=1e-6)
        assert group["score"][0] == 1.0 and (len(scores) < 2 or group["score"][-1] == 0.0)
    meta = pq.read_metadata(out).metadata
    assert orjson.loads(meta[b"tastebud.model"]) == INFO and meta[b"tastebud.k"] == b"4"


def test_short_lists_when_few_items_qualify(loaded: LoadedModel, tmp_path: Path) -> None:
    # User 6 saw 7 of the 9 items: with k = 5 only 2 are left to recommend (no padding).
    for name in ("recs.ndjson", "recs.parquet"):
        recommend_all(loaded, 5, tmp_path / name, version_info=INFO)
    rows = {r["user_key"]: r["items"] for r in read_ndjson(tmp_path / "recs.ndjson")}
    assert [len(v) for v in rows.values()] == [5, 5, 5, 5, 5, 2]
    df = pl.read_parquet(tmp_path / "recs.parquet")
    assert set(df.filter(pl.col("user_key") == KEYS[6])["item_id"]) == {"item-7", "item-8"}
    assert df.height == 27


def test_selected_users_unknown_and_removed_are_skipped(
    loaded: LoadedModel, tmp_path: Path
) -> None:
    wanted = [KEYS[5], "f" * 32, KEYS[1], KEYS[REMOVED], KEYS[5]]
    assert select_users(loaded, wanted).idx.tolist() == [5, 1]
    out = tmp_path / "some.ndjson"
    result = recommend_all(loaded, 2, out, version_info=INFO, users=wanted)
    assert (result.users, result.unknown, result.removed) == (2, 1, 1)
    assert [r["user_key"] for r in read_ndjson(out)] == [KEYS[5], KEYS[1]]


def test_the_write_is_atomic(loaded: LoadedModel, tmp_path: Path) -> None:
    out = tmp_path / "recs.parquet"
    recommend_all(loaded, 3, out, version_info=INFO)
    before = out.read_bytes()

    def fail(n: int) -> None:
        raise RuntimeError("disk on fire")

    for name in ("recs.parquet", "new.ndjson"):
        with pytest.raises(RuntimeError, match="disk on fire"):
            recommend_all(loaded, 3, tmp_path / name, version_info=INFO, chunk=2, progress=fail)
    # The previous file is intact, no partial file appeared, no temporary file is left.
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recs.parquet"]


def test_bad_output_paths(loaded: LoadedModel, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown output format '.csv'"):
        recommend_all(loaded, 3, tmp_path / "recs.csv", version_info=INFO)
    with pytest.raises(InvalidInput, match="unknown output format"):
        recommend_all(loaded, 3, tmp_path / "recs", version_info=INFO)
    with pytest.raises(InvalidInput, match="directory"):
        recommend_all(loaded, 3, tmp_path / "missing" / "recs.ndjson", version_info=INFO)
    assert list(tmp_path.iterdir()) == []


# -- the command --------------------------------------------------------------------------------
def register(registry: Registry) -> ModelVersion:
    """The fixture's model as a registered artifact (a candidate)."""
    data = training_data()
    model = SeqLinear(SeqLinearConfig(l2=1.0)).fit(data)
    staging = registry.staging_dir("recommendations")
    save_model(
        staging,
        model,
        Vocabulary(KEYS),
        Vocabulary(ITEMS),
        {"test": {"ndcg@10": 0.3}},
        seen=data.matrix(),
        extra={"model_card.md": "# Model card\n"},
    )
    return registry.register(
        "recommendations",
        staging,
        kind="recommender",
        algorithm=model.name,
        metrics={},
        lineage={},
        actor="test",
    )


def test_the_command(
    services: Services, settings: Settings, secret_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        "TASTEBUD_PSEUDONYM_KEY": secret_env["pseudonym_key"],
        "TASTEBUD_FERNET_KEYS": secret_env["fernet_keys"],
    }
    data_dir = settings.data_dir
    ndjson, parquet = tmp_path / "all.ndjson", tmp_path / "all.parquet"
    mv = register(services.registry)

    # Only a candidate so far: no production version to use.
    r = run(["recommend", "--all", "--out", str(ndjson)], data_dir, **env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no production version" in r.stderr and "tastebud train --full" in flat(r.stderr)
    assert not ndjson.exists()

    promote(
        services.registry,
        settings.governance,
        "recommendations",
        mv.version,
        actor="test",
        force=True,
        reason="batch test",
    )
    r = run(["recommend", "--all", "--out", str(tmp_path / "all.csv")], data_dir, **env)
    assert r.returncode == 1 and "unknown output format '.csv'" in flat(r.stderr)
    r = run(["recommend", "--out", str(ndjson)], data_dir, **env)
    assert r.returncode == 1 and "--all" in r.stderr

    for out in (ndjson, parquet):
        r = run(["recommend", "--all", "--k", "3", "--out", str(out)], data_dir, **env)
        assert r.returncode == 0, r.stdout + r.stderr
        printed = flat(r.stdout)
        assert f"wrote 6 users' top 3 to {out}" in r.stdout.replace("\n", "")
        assert f"recommendations v{mv.version}" in printed and "1 removed users" in printed

    loaded = load_model(services.registry.artifact_path(mv))
    want = expected(loaded, 3)
    rows = read_ndjson(ndjson)
    info = {"name": "recommendations", "version": mv.version, "artifact_id": mv.artifact_id}
    assert len(rows) == 6 and all(row["model"] == info for row in rows)
    for row in rows:
        u = KEYS.index(row["user_key"])
        assert [i["item_id"] for i in row["items"]] == top(want, u)[0]
    df = pl.read_parquet(parquet)
    assert df.height == 5 * 3 + 2 and set(df["user_key"]) == {row["user_key"] for row in rows}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    keys = tmp_path / "keys.txt"
    keys.write_text(f"{KEYS[2]}\n\n{'0' * 31}9\n")
    some = tmp_path / "some.jsonl"
    r = run(
        ["recommend", "--user-keys", str(keys), "--k", "1", "--out", str(some)], data_dir, **env
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 unknown keys" in flat(r.stdout)
    assert [(x["user_key"], len(x["items"])) for x in read_ndjson(some)] == [(KEYS[2], 1)]
    # Both files are registered: erasing a user removes their rows from each.
    from tastebud.rights import erase

    receipt = erase(services.erasure_context(), KEYS[1])
    assert receipt.stores["batch_lists"] == 1 + 3 + 0  # an NDJSON line, 3 Parquet rows
    assert KEYS[1] not in {row["user_key"] for row in read_ndjson(ndjson)}
    assert KEYS[1] not in set(pl.read_parquet(parquet)["user_key"])
    assert len(read_ndjson(ndjson)) == 5
