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
from numpy.typing import NDArray

from tastebud.errors import ArtifactInvalid, NotFound
from tastebud.ids import Vocabulary
from tastebud.models import Recommender, model_class

__all__ = [
    "LoadedModel",
    "artifact_id",
    "load_model",
    "save_model",
    "verify_artifact",
    "write_artifact",
]

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
    """Write ``model`` to ``directory`` atomically (``write_artifact``)."""
    config = {"format": FORMAT, "model": model.name,
              "config": model.config.model_dump(mode="json")}  # fmt: skip
    write_artifact(directory, {
        "config.json": json.dumps(config, indent=2, sort_keys=True),
        "users.json": json.dumps(users.to_list()),
        "items.json": json.dumps(items.to_list()),
        "metrics.json": json.dumps(metrics or {}, indent=2, sort_keys=True),
    }, model.get_params())  # fmt: skip
    return directory


def write_artifact(directory: Path, texts: dict[str, str], arrays: dict[str, NDArray[Any]]) -> str:
    """Write text files and ``params.npz`` (``allow_pickle=False``) plus ``manifest.json`` (sha256
    per file) atomically: into a temporary sibling renamed into place, so a crash never leaves
    a half-written artifact where a reader looks. Returns the artifact id (first 16 hex digits
    of the manifest's sha256)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        for name, text in texts.items():
            (tmp / name).write_text(text)
        with (tmp / "params.npz").open("wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
        manifest = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
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
    return artifact_id(directory)


def artifact_id(directory: Path) -> str:
    """An artifact's id: the first 16 hex digits of its manifest's sha256 (content-addressed:
    any change to any file changes it)."""
    return _sha256(directory / "manifest.json")[:16]


def verify_artifact(
    directory: Path, kind: str, command: str, required: tuple[str, ...] = ()
) -> dict[str, str]:
    """Check every file of an artifact against its manifest; returns the manifest.

    Raises:
        NotFound: no artifact in ``directory`` (the message names ``command``).
        ArtifactInvalid: a file is missing or was changed since it was written.
    """
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise NotFound(f"no {kind} artifact in {directory}; run `{command}` first")
    manifest: dict[str, str] = json.loads(manifest_path.read_text())
    for name in (*required, *(n for n in manifest if n not in required)):
        path = directory / name
        if not path.is_file():
            raise ArtifactInvalid(f"{kind} artifact {directory} is missing {name}")
        if _sha256(path) != manifest.get(name):
            raise ArtifactInvalid(
                f"{kind} artifact {directory}: {name} does not match its recorded sha256 "
                "(changed after it was written); refusing to load it"
            )
    return manifest


def load_model(directory: Path) -> LoadedModel:
    """Read an artifact written by ``save_model``, verifying every checksum first.

    Raises:
        NotFound: no artifact in ``directory``.
        ArtifactInvalid: a file is missing or was changed since it was written.
    """
    verify_artifact(directory, "model", "tastebud train", _FILES)
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
