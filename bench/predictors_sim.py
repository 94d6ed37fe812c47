"""Event-derived churn and conversion models on simulated traffic, scored against the planted
truth (issue 6, item 6).

    python bench/predictors_sim.py [--users 2000] [--days 100] [--seed 7]

1. The NetworkBuster simulator plants, per user, a daily churn hazard (and a churn day) and a
   per-session conversion propensity; its traffic is ingested through the real ingest path into
   a fresh SQLite database.
2. For each target, labels come from the events alone (``event_training_set``: four weekly
   as-of times, each joined with the feature snapshot valid then). The predictor is trained on
   the earlier as-of times and scored on the latest one (a temporal holdout): ROC-AUC against
   the event labels, and against the simulator's truth (churn: the planted churn day falls
   before the window's end; conversion: the planted probability of converting in the window,
   as a rank correlation and as the ROC-AUC of that probability itself, the ceiling). The truth
   is the simulator's own (``Simulator.planted_labels``); the labels know nothing of it.
Prints the figures; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from tastebud.config import Settings
from tastebud.evaluation import classification_metrics
from tastebud.models.predictor import Predictor
from tastebud.registry.predictor import encode_rows
from tastebud.services import build_services
from tastebud.simulator import SimConfig, Simulator
from tastebud.training import LabelWindows, event_training_set, table_from_frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    t0 = time.perf_counter()
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=args.days + 1
    )
    sim = Simulator(
        SimConfig(users=args.users, items=500, days=args.days, seed=args.seed, start=start)
    )
    out: dict[str, object] = {"users": args.users, "days": args.days}
    with tempfile.TemporaryDirectory(prefix="tb-predsim-") as tmp:
        services = build_services(Settings(data_dir=Path(tmp)))
        services.catalog.put_items(list(sim.items()), int(time.time() * 1000))
        batch: list[dict[str, object]] = []
        n = 0
        for event in sim.events():
            batch.append(event)
            if len(batch) == 1000:
                n += services.ingestor.ingest(batch).accepted
                batch = []
        n += services.ingestor.ingest(batch).accepted if batch else 0
        print(f"{n:,} events ingested in {time.perf_counter() - t0:.0f} s")
        out["events"] = n
        windows = LabelWindows()
        for target in ("churn", "conversion"):
            frame = event_training_set(services.store, target)
            times = sorted(frame.get_column("as_of_ms").unique().to_list())
            train_f = frame.filter(pl.col("as_of_ms") < times[-1])
            test_f = frame.filter(pl.col("as_of_ms") == times[-1])
            drop = ["as_of_ms", "snapshot_id"]
            train = table_from_frame(train_f.drop(drop), "label", "user_key")
            test = table_from_frame(test_f.drop(drop), "label", "user_key")
            # Same encoding for both: encode the test rows with the training schema.
            x_test = encode_rows(test_f.drop(drop).to_dicts(), train.schema())
            model = Predictor().fit(
                train.x, train.y, train.names, train.categorical, groups=np.asarray(train.ids)
            )
            p = model.predict_proba(x_test)
            m = classification_metrics(test.y, p)
            planted = sim.planted_labels(
                times[-1],
                target,
                window_days=windows.future_days(target),
                activity_days=windows.activity_days,
            ).frame(services.pseudonymizer.user)
            joined = pl.DataFrame({"user_key": test.ids, "p": p}).join(
                planted, on="user_key", how="inner"
            )
            row: dict[str, object] = {
                "train_rows": len(train.y),
                "test_rows": len(test.y),
                "positive_rate": round(float(test.y.mean()), 4),
                "roc_auc_event_labels": round(m["roc_auc"], 4),
                "ece": round(m["ece"], 4),
                "chosen": model.chosen,
            }
            if target == "churn":
                lab = joined.drop_nulls("truth_label")
                row["roc_auc_planted_truth"] = round(
                    float(roc_auc_score(lab["truth_label"], lab["p"])), 4
                )
                row["roc_auc_planted_hazard_vs_truth"] = round(
                    float(roc_auc_score(lab["truth_label"], lab["truth_score"])), 4
                )
            score = joined.drop_nulls("truth_score")
            row["spearman_with_planted_score"] = round(
                float(
                    np.corrcoef(
                        score["p"].rank().to_numpy(), score["truth_score"].rank().to_numpy()
                    )[0, 1]
                ),
                4,
            )
            row["roc_auc_planted_score_on_event_labels"] = round(
                float(
                    roc_auc_score(
                        test_f.join(planted, on="user_key").get_column("label"),
                        test_f.join(planted, on="user_key").get_column("truth_score"),
                    )
                ),
                4,
            )
            print(f"{target}: {row}")
            out[target] = row
        services.close()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
