"""Pickle-free model artifacts: a directory of ``config.json``, ``params.npz`` (loaded with
``allow_pickle=False``), the vocabularies, ``metrics.json`` and a ``manifest.json`` holding each
file's sha256, verified on every load (the registry issue versions these directories)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import JsonValue, ValidationError
from scipy.sparse import csr_matrix

from tastebud.errors import ArtifactInvalid
from tastebud.ids import Vocabulary
from tastebud.models import Recommender, model_class
from tastebud.models._base import csr_from, csr_params
from tastebud.registry.artifacts import verify_artifact, write_artifact

__all__ = [
    "LoadedModel",
    "REMOVED",
    "load_model",
    "save_model",
]

FORMAT = 1
REMOVED = "~removed-"
"""Prefix of the placeholder that replaces a removed user's key in a model's vocabulary."""
_SEEN = "_seen"
_FILES = ("config.json", "params.npz", "users.json", "items.json", "metrics.json")


@dataclass
class LoadedModel:
    """A model with the vocabularies that map external ids to its indices."""

    model: Recommender[Any]
    users: Vocabulary
    items: Vocabulary
    metrics: dict[str, JsonValue]
    """The artifact's ``metrics.json``, as written."""
    seen: csr_matrix | None = None
    """Each user's training items (rows aligned with ``users``), excluded when serving."""


def save_model(
    directory: Path,
    model: Recommender[Any],
    users: Vocabulary,
    items: Vocabulary,
    metrics: Mapping[str, object] | None = None,
    *,
    seen: csr_matrix | None = None,
    extra: dict[str, str] | None = None,
) -> str:
    """Write ``model`` to ``directory`` atomically (``write_artifact``) with the users'
    training items ``seen`` (for serving's exclusions), ``metrics`` (any JSON-serializable
    document: the registry's :class:`~tastebud.registry.ModelMetrics` for a training job)
    and ``extra`` text files (the model card, monitoring reference, lineage). Returns the
    artifact id."""
    config = {"format": FORMAT, "model": model.name, "config": model.config.model_dump(mode="json")}
    arrays = model.get_params()
    if seen is not None:
        arrays.update(csr_params(_SEEN, seen.astype(np.float32)))
    return write_artifact(
        directory,
        {
            "config.json": json.dumps(config, indent=2, sort_keys=True),
            "users.json": json.dumps(users.to_list()),
            "items.json": json.dumps(items.to_list()),
            "metrics.json": json.dumps(metrics or {}, indent=2, sort_keys=True),
            **(extra or {}),
        },
        arrays,
    )


def load_model(directory: Path) -> LoadedModel:
    """Read an artifact written by ``save_model``, verifying every checksum first.

    Raises:
        NotFound: no artifact in ``directory``.
        ArtifactInvalid: a file is missing or was changed since it was written, or its
            configuration is refused by the model's config class.
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
    seen = csr_from(_SEEN, params) if f"{_SEEN}_shape" in params else None
    params = {k: v for k, v in params.items() if not k.startswith(_SEEN + "_")}
    try:
        model = cls.from_params(config["config"], params)
    except ValidationError as exc:
        # Verified files whose configuration today's model refuses (written by an older
        # version with looser bounds): say so instead of failing with a validation trace.
        raise ArtifactInvalid(
            f"model artifact {directory}: its configuration is no longer valid for "
            f"{config['model']}: "
            + "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        ) from None
    users = Vocabulary(json.loads((directory / "users.json").read_text()))
    items = Vocabulary(json.loads((directory / "items.json").read_text()))
    metrics = json.loads((directory / "metrics.json").read_text())
    return LoadedModel(model, users, items, metrics, seen)
