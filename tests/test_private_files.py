"""Files that hold personal data are created 0600, directories 0700 (issue 15, point 7).

One test runs every writer Tastebud has, from the CLI as a user would, under a permissive umask
(022), then walks every file and directory they left: the data directory (database, secrets,
artifacts, worker reports) and the output folder (simulator outputs, batch lists, exports,
evaluation and predictor reports)."""

from __future__ import annotations

import csv
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tastebud.files import open_private, private_dir, write_private


def _run(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env["TASTEBUD_DATA_DIR"] = str(data_dir)
    r = subprocess.run(
        [sys.executable, "-m", "tastebud.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(0o022),  # what most shells have: files 0644 by default
    )
    assert r.returncode == 0, f"tastebud {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
        for p in root.rglob("*")
        if not p.is_symlink()
    }


def _table(path: Path) -> None:
    rng = random.Random(0)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "visits", "spend", "churned"])
        for i in range(600):
            visits, spend = rng.randint(0, 30), rng.random() * 100
            churned = int(rng.random() < 1 / (1 + 2.7 ** (0.2 * visits - 2)))
            w.writerow([f"c{i}", visits, round(spend, 2), churned])


@pytest.mark.slow
def test_every_writer_leaves_owner_only_files(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    out.mkdir()  # a folder the user made: its own mode is theirs; what Tastebud writes is not
    _run(
        [
            "simulate",
            "--users",
            "60",
            "--items",
            "40",
            "--days",
            "20",
            "--seed",
            "1",
            "--start",
            "recent",
            "--out",
            str(out / "events.ndjson"),
            "--truth",
            str(out / "truth.json"),
            "--items-out",
            str(out / "items.ndjson"),
            "--users-out",
            str(out / "users.ndjson"),
        ],
        data,
    )
    _run(["import", "items", str(out / "items.ndjson")], data)
    _run(["import", "users", str(out / "users.ndjson")], data)
    _run(["ingest", str(out / "events.ndjson")], data)
    _run(["train", "--model", "tastebud_seq", "--no-tune"], data)
    _run(["models", "promote", "recommendations", "1", "--force", "--reason", "test"], data)
    for name in ("batch.ndjson", "batch.parquet"):
        _run(["recommend", "--all", "--k", "3", "--out", str(out / name)], data)
    user = orjson.loads((out / "users.ndjson").read_bytes().splitlines()[0])["user_id"]
    _run(["privacy", "export", user, "--out", str(out / "export.json")], data)
    _run(["privacy", "erase", user, "--yes"], data)  # rewrites both batch lists
    _run(
        [
            "evaluate",
            "--models",
            "popularity",
            "--no-tune",
            "--json",
            str(out / "eval.json"),
            "--report",
            str(out / "eval.html"),
        ],
        data,
    )
    _table(tmp_path / "table.csv")
    _run(
        [
            "predictors",
            "evaluate",
            "--table",
            str(tmp_path / "table.csv"),
            "--label",
            "churned",
            "--id",
            "customer_id",
            "--folds",
            "2",
            "--json",
            str(out / "pred.json"),
            "--report",
            str(out / "pred.html"),
        ],
        data,
    )
    _run(["worker", "--job", "feature_review", "--now"], data)

    written = {name: mode for name, mode in _modes(out).items()}
    assert {
        "events.ndjson",
        "truth.json",
        "items.ndjson",
        "users.ndjson",
        "batch.ndjson",
        "batch.parquet",
        "export.json",
        "eval.json",
        "eval.html",
        "pred.json",
        "pred.html",
    } <= set(written)
    inside = _modes(data)
    kinds = {"tastebud.db", "secrets", "artifacts"}
    assert kinds <= {name.split("/")[0] for name in inside}, sorted(inside)
    assert any(name.endswith("params.npz") for name in inside)  # an artifact was walked
    assert any("feature-review" in name for name in inside)  # a worker report too
    wide = {
        name: oct(mode)
        for name, mode in {**written, **inside}.items()
        if mode & 0o077 and not (data / name).is_dir() and not (out / name).is_dir()
    }
    assert wide == {}, f"readable by others: {wide}"
    open_dirs = {
        name: oct(mode) for name, mode in inside.items() if (data / name).is_dir() and mode & 0o077
    }
    assert open_dirs == {}, f"directories open to others: {open_dirs}"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_the_helpers_narrow_what_exists_and_refuse_reads(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text("{}")
    old.chmod(0o644)
    write_private(old, "{}")
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    with open_private(tmp_path / "log.ndjson", "a") as fh:
        fh.write("x\n")
    assert stat.S_IMODE((tmp_path / "log.ndjson").stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="writes only"):
        open_private(old, "r")  # type: ignore[call-overload]
    made = private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(made.stat().st_mode) == stat.S_IMODE(made.parent.stat().st_mode) == 0o700
