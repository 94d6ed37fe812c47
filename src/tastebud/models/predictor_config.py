"""What a predictor is asked to be (:class:`PredictorConfig`) and what a fitted one writes
about itself (:class:`PredictorMeta`); fitting and scoring are in
:mod:`tastebud.models.predictor`."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator
from typing_extensions import TypedDict

__all__ = ["PredictorConfig", "PredictorMeta"]


class PredictorConfig(BaseModel):
    """Predictor settings (the candidates compete on out-of-fold ROC-AUC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    families: tuple[Literal["lightgbm", "logistic"], ...] = Field(
        default=("lightgbm", "logistic"), min_length=1
    )
    """Model families that compete (at least one)."""
    folds: int = Field(default=5, ge=2)
    """Stratified folds inside the training data (early stopping, selection, calibration)."""
    learning_rate: float = Field(default=0.02, gt=0, le=1)
    """LightGBM learning rate (trees are added until the held-out fold stops improving)."""
    max_trees: int = Field(default=3000, ge=1)
    """Upper bound on boosting rounds."""
    early_stopping_rounds: int = Field(default=100, ge=1)
    """Rounds without improvement of the held-out log loss before a booster stops."""
    leaves: tuple[Annotated[int, Field(ge=2)], ...] = Field(default=(7, 31), min_length=1)
    """LightGBM regularisation candidates: leaves per tree (fewer: smoother; at least 2, as
    LightGBM requires)."""
    logistic_c: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        default=(0.01, 0.1, 1.0, 10.0), min_length=1
    )
    """Inverse L2 strengths of the logistic-regression candidates."""
    balance_classes: bool = False
    """Weigh the rare class up while training (``scale_pos_weight``); calibration maps the
    scores back to true probabilities either way. Off by default: with calibration it rarely
    helps ranking and it makes raw scores harder to read."""
    calibration: Literal["auto", "isotonic", "platt", "none"] = "auto"
    """``auto``: isotonic with its number of levels chosen on the folds (``calibration_levels``)
    with at least 1,000 rows and 50 positives, Platt below; ``isotonic``: unrestricted
    isotonic regression."""
    calibration_levels: tuple[int, ...] = (200, 100, 50, 20)
    """Grouped-isotonic candidates of ``auto`` (probability levels at most; unrestricted
    isotonic competes too). The one-standard-error rule picks the fewest levels whose
    cross-validated Brier score is within one standard error of the best candidate's."""
    seed: int = Field(default=0, ge=0, lt=2**32)
    """Seed of the folds and of LightGBM's sampling."""

    @field_validator("calibration_levels")
    @classmethod
    def _levels_at_least_two(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(g < 2 for g in v):
            raise ValueError(f"calibration levels must be at least 2 levels each, got {v}")
        return v


class PredictorMeta(TypedDict):
    """The JSON-able metadata of a fitted predictor (``config.json`` of its artifact):
    :meth:`Predictor.to_state` writes it, :meth:`Predictor.from_state` reads it back."""

    config: dict[str, JsonValue]
    """:class:`PredictorConfig`, as JSON."""
    names: list[str]
    categorical: list[int]
    chosen: str
    selection: dict[str, float]
    """Out-of-fold ROC-AUC of each candidate."""
    booster_kinds: list[str]
    blend: float
    calibrator: str
    calibration_levels: NotRequired[int]
    """Absent in artifacts written before calibration levels were chosen (read as 0)."""
    calibration_selection: NotRequired[dict[str, float]]
    cat_width: dict[str, int]
    has_missing: dict[str, bool]
    signed_log: bool | None
    """``None``: no linear model."""
    intercept: float | None
