"""``tastebud predictors train|evaluate``: churn and conversion from events, or any table."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from tastebud.cli import DataDirOpt, _services, _settings, _spinner, app, out
from tastebud.errors import InvalidInput

__all__ = ["Calibration", "predictors_app", "predictors_evaluate", "predictors_train"]


class Calibration(StrEnum):
    """The calibrators ``--calibration`` offers (``PredictorConfig.calibration``)."""

    auto = "auto"
    isotonic = "isotonic"
    platt = "platt"


predictors_app = typer.Typer(
    help="Behaviour predictors: calibrated churn and conversion probabilities (or any label of "
    "a feature table), with reasons.",
    no_args_is_help=True,
)
app.add_typer(predictors_app, name="predictors")

TargetOpt = Annotated[
    str | None,
    typer.Option(help="churn or conversion: labels and features from the events in the database."),
]
TableOpt = Annotated[
    Path | None, typer.Option(help="A CSV/TSV feature table instead of the database.")
]
LabelOpt = Annotated[str | None, typer.Option(help="The table's label column (true/yes/1).")]
IdOpt = Annotated[str | None, typer.Option("--id", help="The table's id column (not a feature).")]
FoldsOpt = Annotated[
    int, typer.Option(min=2, max=20, help="Stratified folds inside the training data.")
]
RateOpt = Annotated[
    float, typer.Option(min=0.001, max=1.0, help="LightGBM learning rate (higher: faster).")
]
CalibrationOpt = Annotated[
    Calibration,
    typer.Option(
        help="auto: isotonic with its number of levels chosen on the folds (Platt "
        "below 1,000 rows or 50 positives); isotonic: unrestricted; platt: a smooth "
        "sigmoid (more distinct probabilities, calibrated only if the scores' shape "
        "suits it)."
    ),
]


def _table(
    target: str | None,
    table: Path | None,
    label: str | None,
    id_col: str | None,
    data_dir: Path | None,
) -> tuple[Any, str]:
    """(FeatureTable, name) from the options; exactly one source."""
    from tastebud.training import TARGETS, event_training_set, read_table, table_from_frame

    if (target is None) == (table is None):
        raise InvalidInput("give either --target churn|conversion or --table FILE --label COL")
    if table is not None:
        if label is None:
            raise InvalidInput("--table needs --label COL (the column to predict)")
        return read_table(table, label, id_col), f"table-{label}"
    if target not in TARGETS:
        raise InvalidInput(f"--target must be one of {', '.join(TARGETS)}")
    services = _services(_settings(data_dir))
    try:
        frame = event_training_set(services.store, target)  # type: ignore[arg-type]
    finally:
        services.close()
    frame = frame.drop("as_of_ms", "snapshot_id")
    return table_from_frame(frame, "label", "user_key"), str(target)


@predictors_app.command("train")
def predictors_train(
    target: TargetOpt = None,
    table: TableOpt = None,
    label: LabelOpt = None,
    id_col: IdOpt = None,
    name: Annotated[
        str | None, typer.Option(help="Artifact name (default: the target, or table-<label>).")
    ] = None,
    folds: FoldsOpt = 5,
    learning_rate: RateOpt = 0.02,
    calibration: CalibrationOpt = Calibration.auto,
    data_dir: DataDirOpt = None,
) -> None:
    """Choose, fit and calibrate a predictor on all the data and save it (LightGBM text models
    and JSON, no pickle) under ``<artifact-dir>/predictors/<name>/``; the API's predictions
    endpoint serves the ``churn`` and ``conversion`` ones."""
    import numpy as np

    from tastebud.models.predictor import Predictor
    from tastebud.models.predictor_config import PredictorConfig
    from tastebud.training import save_predictor

    data, default_name = _table(target, table, label, id_col, data_dir)
    for line in data.report.lines():
        out.print(line)
    config = PredictorConfig(
        folds=folds, learning_rate=learning_rate, calibration=calibration.value
    )
    groups = None if data.ids is None else np.asarray(data.ids)
    with _spinner() as spinner:
        spinner.add_task(f"choosing, fitting and calibrating on {len(data.y):,} rows", total=None)
        model = Predictor(config).fit(data.x, data.y, data.names, data.categorical, groups=groups)
    metrics = {
        "out_of_fold_roc_auc": model.selection,
        "chosen": model.chosen,
        "calibration_levels": model.calibration_levels_,
        "calibration_brier": model.calibration_selection,
        "importance": model.importance(),
        "table": data.report.to_dict(),
    }
    directory = _settings(data_dir).resolved_artifact_dir() / "predictors" / (name or default_name)
    artifact_id = save_predictor(directory, model, data.schema(), metrics)
    out.print(
        f"chose {model.chosen} (out-of-fold ROC-AUC {model.selection[model.chosen]:.4f} "
        f"among {len(model.selection)} candidates)"
    )
    out.print(
        f"calibration: {model.calibration}"
        + (
            " (the fewest levels within one standard error of the best cross-validated Brier score)"
            if model.calibration_levels_
            else ""
        )
    )
    top = ", ".join(list(model.importance())[:5])
    out.print(f"most important features: {top}")
    out.print(f"saved {directory} (artifact {artifact_id})")


@predictors_app.command("evaluate")
def predictors_evaluate(
    target: TargetOpt = None,
    table: TableOpt = None,
    label: LabelOpt = None,
    id_col: IdOpt = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the flat JSON of means to this file.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML report (reliability diagram, importance).")
    ] = None,
    folds: FoldsOpt = 5,
    learning_rate: RateOpt = 0.02,
    calibration: CalibrationOpt = Calibration.auto,
    data_dir: DataDirOpt = None,
) -> None:
    """Five stratified 80/20 splits: Tastebud's predictor against scikit-learn's logistic
    regression (``sk_logreg``) and the seed's gradient boosting (``sk_gbm_seed``); means of the
    held-out ROC-AUC, PR-AUC, Brier score and ECE."""
    from tastebud.evaluation import render_predictor_html
    from tastebud.models.predictor_config import PredictorConfig
    from tastebud.training import evaluate_predictors

    data, name = _table(target, table, label, id_col, data_dir)
    for line in data.report.lines():
        out.print(line)
    config = PredictorConfig(
        folds=folds, learning_rate=learning_rate, calibration=calibration.value
    )
    means, details = evaluate_predictors(data, config=config, log=lambda m: out.print(f"  {m}"))
    out.print(f"{'model':<14}{'roc_auc':>9}{'pr_auc':>9}{'brier':>9}{'ece':>9}")
    for model, m in means.items():
        out.print(
            f"{model:<14}{m['roc_auc']:>9.4f}{m['pr_auc']:>9.4f}{m['brier']:>9.4f}{m['ece']:>9.4f}"
        )
    from tastebud.files import write_private  # reports hold per-group results: 0600

    if json_out is not None:
        write_private(json_out, json.dumps(means, indent=2))
        out.print(f"wrote {json_out}")
    if report is not None:
        write_private(report, render_predictor_html(means, details, f"Tastebud predictors: {name}"))
        out.print(f"wrote {report}")
