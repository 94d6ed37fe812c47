"""Pickle-free model artifacts: a directory of ``config.json``, ``params.npz`` (loaded with
``allow_pickle=False``), the vocabularies, ``metrics.json`` and a ``manifest.json`` holding each
file's sha256, verified on every load (the registry issue versions these directories)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tastebud.errors import ArtifactInvalid, NotFound
from tastebud.ids import Vocabulary
from tastebud.models import Recommender, model_class

__all__ = ["LoadedModel", "load_model", "save_model"]

FORMAT = 1
_FILES = ("config.json", "params.npz", "users.json", "items.json", "metrics.json")


@dataclass
class LoadedModel:
    """A model with the vocabularies that map external ids to its indices."""

    model: Recommender[Any]
    users: Vocabulary
    items: Vocabulary
    metrics: dict[str, Any]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(
    directory: Path,
    model: Recommender[Any],
    users: Vocabulary,
    items: Vocabulary,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``directory`` atomically (a temporary sibling renamed into place, so a
    crash never leaves a half-written artifact where a reader looks)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        config = {"format": FORMAT, "model": model.name,
                  "config": model.config.model_dump(mode="json")}  # fmt: skip
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        with (tmp / "params.npz").open("wb") as fh:
            np.savez(fh, allow_pickle=False, **model.get_params())
        (tmp / "users.json").write_text(json.dumps(users.to_list()))
        (tmp / "items.json").write_text(json.dumps(items.to_list()))
        (tmp / "metrics.json").write_text(json.dumps(metrics or {}, indent=2, sort_keys=True))
        manifest = {name: _sha256(tmp / name) for name in _FILES}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if directory.exists():
            old = directory.with_name(f".{directory.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_model(directory: Path) -> LoadedModel:
    """Read an artifact written by ``save_model``, verifying every checksum first.

    Raises:
        NotFound: no artifact in ``directory``.
        ArtifactInvalid: a file is missing or was changed since it was written.
    """
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise NotFound(f"no model artifact in {directory}; run `tastebud train` first")
    manifest = json.loads(manifest_path.read_text())
    for name in _FILES:
        path = directory / name
        if not path.is_file():
            raise ArtifactInvalid(f"model artifact {directory} is missing {name}")
        if _sha256(path) != manifest.get(name):
            raise ArtifactInvalid(
                f"model artifact {directory}: {name} does not match its recorded sha256 "
                "(changed after it was written); refusing to load it"
            )
    config = json.loads((directory / "config.json").read_text())
    if config.get("format") != FORMAT:
        raise ArtifactInvalid(
            f"model artifact {directory} has unknown format {config.get('format')}"
        )
    cls = model_class(config["model"])
    with np.load(directory / "params.npz", allow_pickle=False) as npz:
        params = {k: npz[k] for k in npz.files}
    model = cls.from_params(config["config"], params)
    users = Vocabulary(json.loads((directory / "users.json").read_text()))
    items = Vocabulary(json.loads((directory / "items.json").read_text()))
    return LoadedModel(model, users, items, json.loads((directory / "metrics.json").read_text()))
