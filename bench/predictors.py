"""Behaviour prediction on UCI Online Shoppers (``Revenue``), DESIGN.md protocol, peers in the
same run.

    python bench/predictors.py [--data ../shared/data/online-shoppers/online_shoppers_intention.csv]

The table is read by the same code as ``tastebud predictors train --table`` (kinds detected:
string columns categorical, TRUE/FALSE boolean, the rest numeric). Five stratified 80/20
splits with seeds 0 to 4; every model is tuned and calibrated on its split's 80 % only (Tastebud
chooses its model family and regularisation on stratified folds inside it); means over the
splits of ROC-AUC, PR-AUC, Brier score and ECE (15 equal-width bins) on the 20 %. Peers:
``sk_logreg`` (scaled, one-hot) and ``sk_gbm_seed`` (GradientBoostingClassifier, 100 trees,
learning rate 0.1, depth 5). Targets (issue 6): mean ROC-AUC at least the best peer's + 0.003;
mean ECE at most 0.015. The last line is the flat JSON of ``tastebud predictors evaluate``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tastebud.training.predictors import evaluate_predictors
from tastebud.training.tabular import read_table

DEFAULT = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "online-shoppers"
    / "online_shoppers_intention.csv"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--label", default="Revenue")
    ap.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seed of the first of the five splits (0: the protocol's; 5: another set)",
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    table = read_table(args.data, args.label)
    print("\n".join(table.report.lines()))
    means, details = evaluate_predictors(table, first_seed=args.first_seed, log=print)
    print()
    print(f"{'model':<14}{'roc_auc':>9}{'pr_auc':>9}{'brier':>9}{'ece':>9}")
    for name, m in means.items():
        print(
            f"{name:<14}{m['roc_auc']:>9.4f}{m['pr_auc']:>9.4f}{m['brier']:>9.4f}{m['ece']:>9.4f}"
        )
    best_peer = max((n for n in means if n != "tastebud"), key=lambda n: means[n]["roc_auc"])
    margin = means["tastebud"]["roc_auc"] - means[best_peer]["roc_auc"]
    print(
        f"ROC-AUC margin over the best peer ({best_peer}): {margin:+.4f} (target >= +0.003); "
        f"ECE {means['tastebud']['ece']:.4f} (target <= 0.015; perfect calibration of these "
        f"probabilities would measure {details.tastebud_ece_floor:.4f}); "
        f"chosen: {details.chosen}; calibration: {details.calibration}; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print(json.dumps(means))


if __name__ == "__main__":
    main()
