"""The behaviour predictors' artifact format: a pickle-free, checksummed directory (metadata,
arrays, one LightGBM text model per booster, the input schema, metrics), and the encoding of a
user's feature values by the schema it was trained with.

LightGBM and scikit-learn are imported only when a predictor is actually rebuilt from its files
(:attr:`PredictorArtifact.predictor`), so a serving process that never predicts never loads them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
from numpy.typing import NDArray
from pydantic import JsonValue

from tastebud.registry.artifacts import artifact_id, verify_artifact, write_artifact

if TYPE_CHECKING:
    from tastebud.models.predictor import Predictor
    from tastebud.models.predictor_config import PredictorMeta

__all__ = [
    "FeatureSchema",
    "PredictorArtifact",
    "TARGETS",
    "encode_rows",
    "load_predictor",
    "save_predictor",
]

_TRUE = {"true", "yes", "1", "1.0", "y", "t"}

TARGETS = ("churn", "conversion")
"""What the behaviour predictors predict."""


class FeatureSchema(TypedDict):
    """How a predictor's inputs are encoded (``schema.json``): what :func:`encode_rows` needs to
    encode new rows like the training table."""

    names: list[str]
    """The feature columns, in matrix order."""
    kinds: dict[str, str]
    """Per column: ``numeric``, ``boolean`` or ``categorical``."""
    categories: dict[str, list[str]]
    """Per categorical column, its values in code order."""


class PredictorArtifact:
    """A saved predictor with the schema that encodes its inputs.

    Built from verified files by :func:`load_predictor`; the predictor itself (LightGBM boosters,
    calibrators) is rebuilt from them on first use of :attr:`predictor`, once, under a lock.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        metrics: dict[str, JsonValue],
        artifact_id: str,
        state: tuple[PredictorMeta, dict[str, NDArray[Any]], list[str]],
    ) -> None:
        self.schema = schema
        self.metrics = metrics
        """The artifact's ``metrics.json``, as written."""
        self.artifact_id = artifact_id
        """Content hash of the artifact (first 16 hex digits of the manifest's sha256)."""
        self._state: tuple[PredictorMeta, dict[str, NDArray[Any]], list[str]] | None = state
        self._predictor: Predictor | None = None
        self._lock = threading.Lock()

    @property
    def predictor(self) -> Predictor:
        """The fitted predictor (LightGBM and scikit-learn are imported here, on first use)."""
        if self._predictor is None:
            with self._lock:
                if self._predictor is None:
                    from tastebud.models.predictor import Predictor

                    assert self._state is not None
                    meta, arrays, models = self._state
                    self._predictor = Predictor.from_state(meta, arrays, models)
                    self._state = None
        return self._predictor


def save_predictor(
    directory: Path,
    predictor: Predictor,
    schema: FeatureSchema,
    metrics: Mapping[str, object],
    *,
    extra: dict[str, str] | None = None,
) -> str:
    """Write a predictor pickle-free and atomically (``write_artifact``): ``config.json``
    (metadata), ``params.npz``, one LightGBM text model per booster, ``schema.json``,
    ``metrics.json`` (``metrics``: any JSON-serializable document; the training job writes
    a :class:`~tastebud.registry.ModelMetrics`), ``extra`` text files (model card, monitoring
    reference, lineage) and ``manifest.json``. Returns the artifact id."""
    meta, arrays, models = predictor.to_state()
    texts = {
        "config.json": json.dumps(meta, indent=2, sort_keys=True),
        "schema.json": json.dumps(schema, indent=2, sort_keys=True),
        "metrics.json": json.dumps(metrics, indent=2, sort_keys=True),
    }
    texts.update({f"booster_{i}.txt": text for i, text in enumerate(models)})
    texts.update(extra or {})
    return write_artifact(directory, texts, arrays)


def load_predictor(directory: Path) -> PredictorArtifact:
    """Read a predictor saved by ``save_predictor``, verifying every checksum.

    Raises:
        NotFound: nothing saved there.
        ArtifactInvalid: a file is missing or changed since it was written.
    """
    required = ("config.json", "schema.json", "metrics.json", "params.npz")
    manifest = verify_artifact(directory, "predictor", "tastebud predictors train", required)
    meta = json.loads((directory / "config.json").read_text())
    with np.load(directory / "params.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    boosters = sorted(
        (p for p in manifest if p.startswith("booster_")),
        key=lambda n: int(n.split("_")[1].split(".")[0]),
    )
    models = [(directory / name).read_text() for name in boosters]
    return PredictorArtifact(
        schema=json.loads((directory / "schema.json").read_text()),
        metrics=json.loads((directory / "metrics.json").read_text()),
        artifact_id=artifact_id(directory),
        state=(meta, arrays, models),
    )


def encode_rows(
    rows: Sequence[Mapping[str, JsonValue]], schema: FeatureSchema
) -> NDArray[np.float64]:
    """Encode feature dicts (e.g. a user's current features) like the training table: unknown
    categories and absent or unparseable values become missing."""
    names, kinds, cats = schema["names"], schema["kinds"], schema["categories"]
    codes = {n: {v: float(i) for i, v in enumerate(vals)} for n, vals in cats.items()}
    x = np.full((len(rows), len(names)), np.nan)
    for r, row in enumerate(rows):
        for j, name in enumerate(names):
            v = row.get(name)
            if v is None:
                continue
            if kinds[name] == "categorical":
                x[r, j] = codes[name].get(str(v), np.nan)
            elif isinstance(v, bool) or kinds[name] == "boolean":
                x[r, j] = 1.0 if str(v).strip().lower() in _TRUE else 0.0
            elif isinstance(v, int | float | str):  # a list or an object is no number either
                try:
                    x[r, j] = float(v)
                except ValueError:
                    continue
    return x
