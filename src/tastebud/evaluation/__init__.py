"""Offline evaluation: ranking metrics with confidence intervals, the DESIGN.md protocols,
validation-only tuning, fairness slices and reports."""

from __future__ import annotations

from tastebud.evaluation.classification import (
    PredictorDetails,
    classification_metrics,
    expected_calibration_error,
    reliability,
)
from tastebud.evaluation.data import load_dataset, user_attributes
from tastebud.evaluation.metrics import (
    Truth,
    bootstrap_ci,
    catalog_metrics,
    long_tail_items,
    per_user_metrics,
)
from tastebud.evaluation.protocol import PROTOCOLS, Split, make_split, score_model, split_frames
from tastebud.evaluation.report import render_html, render_predictor_html
from tastebud.evaluation.result import (
    DatasetSummary,
    Evaluation,
    ModelScores,
    SliceGroup,
    SliceScores,
    TuningSummary,
)
from tastebud.evaluation.runner import REPORTED, Dataset, evaluate
from tastebud.evaluation.tuning import TuneResult, tune

__all__ = [
    "Dataset",
    "DatasetSummary",
    "Evaluation",
    "ModelScores",
    "PROTOCOLS",
    "PredictorDetails",
    "REPORTED",
    "SliceGroup",
    "SliceScores",
    "Split",
    "Truth",
    "TuneResult",
    "TuningSummary",
    "bootstrap_ci",
    "catalog_metrics",
    "classification_metrics",
    "evaluate",
    "expected_calibration_error",
    "load_dataset",
    "long_tail_items",
    "make_split",
    "per_user_metrics",
    "reliability",
    "render_html",
    "render_predictor_html",
    "score_model",
    "split_frames",
    "tune",
    "user_attributes",
]
