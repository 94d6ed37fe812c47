"""The HTML report of an evaluation: tables and plots (inline SVG, no external assets)."""

from __future__ import annotations

import html
import io
from typing import Any

from matplotlib.figure import Figure

from tastebud.evaluation.classification import PredictorDetails
from tastebud.evaluation.result import Evaluation, SliceScores

__all__ = ["render_html", "render_predictor_html"]

_TABLE_METRICS = (
    "ndcg@10",
    "mrr@10",
    "precision@10",
    "recall@20",
    "map@10",
    "hit@10",
    "coverage@10",
    "novelty@10",
    "longtail@10",
)
_PLOT_METRICS = ("ndcg@10", "mrr@10", "precision@10", "recall@20")


def _figure(figsize: tuple[float, float]) -> tuple[Figure, Any]:
    """A figure with one axes. ``Figure`` directly, never pyplot: no global figure registry and
    no process-wide backend switch; saving to SVG needs no display."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prologue: the SVG is inlined


def _metric_plot(result: Evaluation, metric: str) -> str:
    models = result.models
    names = list(models)
    values = [models[n].metrics.get(metric) or 0.0 for n in names]
    fig, ax = _figure((7, 0.45 * len(names) + 1.2))
    ci = [models[n].ci95.get(metric) for n in names]
    err = None
    known = [c for c in ci if c is not None]
    if len(known) == len(ci):
        err = [
            [v - c[0] for v, c in zip(values, known, strict=True)],
            [c[1] - v for v, c in zip(values, known, strict=True)],
        ]
    colors = ["#2b6cb0" if not models[n].peer else "#a0aec0" for n in names]
    ax.barh(names, values, xerr=err, color=colors, capsize=3)
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} (test, 95% bootstrap CI)")
    ax.set_title(f"{metric} per model (blue: Tastebud, grey: peers)")
    return _svg(fig)


def _slice_plot(attr: str, per_model: dict[str, SliceScores]) -> str:
    names = list(per_model)
    groups = list(next(iter(per_model.values())).groups)
    fig, ax = _figure((max(6, 0.5 * len(groups) * len(names) / 2 + 2), 3.2))
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        vals = [per_model[name].groups[g].metrics["ndcg@10"] for g in groups]
        ax.bar([i + j * width for i in range(len(groups))], vals, width, label=name)
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(groups))], groups, rotation=45, ha="right"
    )
    ax.set_ylabel("ndcg@10")
    ax.set_title(f"ndcg@10 by {attr}")
    ax.legend(fontsize="small", ncols=min(len(names), 4))
    return _svg(fig)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape(str(v))


def render_html(result: Evaluation) -> str:
    """A self-contained HTML page for the output of ``evaluate``."""
    e = html.escape
    models = result.models
    d = result.dataset
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Tastebud evaluation</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;font-size:14px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th:first-child,td:first-child{text-align:left}"
        ".plot svg{max-width:100%;height:auto}",
        "</style></head><body>",
        f"<h1>Tastebud evaluation: {e(result.protocol)} protocol</h1>",
        f"<p>Dataset: {d.interactions:,} interactions, {d.users:,} users, "
        f"{d.items:,} items, timestamps: {'yes' if d.has_time else 'no'}; "
        f"test users: {result.test_users:,}; "
        f"seed {result.seed}. Hyper-parameters tuned on a validation split of train only.</p>",
    ]
    if result.best_model is not None:
        parts.append(
            f"<p>Best model (by validation, peers included): <b>{e(result.best_model)}</b>; "
            f"best peer (by test): <b>{e(result.best_peer or '–')}</b>; NDCG@10 ratio "
            f"<b>{_fmt(result.best_ndcg10_over_best_peer)}</b>.</p>"
        )
    head = "".join(f"<th>{e(m)}</th>" for m in _TABLE_METRICS)
    rows = []
    for name, m in models.items():
        ci = m.ci95.get("ndcg@10")
        cells = "".join(f"<td>{_fmt(m.metrics.get(k))}</td>" for k in _TABLE_METRICS)
        ci_text = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "–"
        kind = "peer" if m.peer else "Tastebud"
        rows.append(
            f"<tr><td>{e(name)} <small>({kind})</small></td>{cells}"
            f"<td>{ci_text}</td><td>{m.fit_seconds:.2f}</td></tr>"
        )
    parts.append(
        f"<h2>Test metrics</h2><table id='metrics'><tr><th>model</th>{head}"
        f"<th>ndcg@10 95% CI</th><th>fit s</th></tr>{''.join(rows)}</table>"
    )
    parts.append("<h2>Plots</h2>")
    for metric in _PLOT_METRICS:
        parts.append(
            f"<div class='plot' id='plot-{e(metric)}'>{_metric_plot(result, metric)}</div>"
        )
    parts.append(
        "<h2>Tuning (validation split)</h2><table><tr><th>model</th>"
        "<th>validation ndcg@10</th><th>trials</th><th>seconds</th><th>params</th></tr>"
    )
    for name, t in result.tuning.items():
        parts.append(
            f"<tr><td>{e(name)}</td><td>{_fmt(t.validation_ndcg10)}</td>"
            f"<td>{t.trials}</td><td>{t.seconds}</td>"
            f"<td><code>{e(str(models[name].params))}</code></td></tr>"
        )
    parts.append("</table><h2>Fairness slices</h2>")
    for attr, per_model in result.slices.items():
        parts.append(
            f"<h3>{e(attr)}</h3><div class='plot slice'>{_slice_plot(attr, per_model)}</div>"
        )
        groups = list(next(iter(per_model.values())).groups)
        head = "".join(f"<th>{e(g)}</th>" for g in groups)
        parts.append(f"<table><tr><th>model</th>{head}<th>max/min</th></tr>")
        for name, s in per_model.items():
            cells = "".join(f"<td>{_fmt(s.groups[g].metrics['ndcg@10'])}</td>" for g in groups)
            parts.append(f"<tr><td>{e(name)}</td>{cells}<td>{_fmt(s.disparity_ndcg10)}</td></tr>")
        first = next(iter(per_model.values()))
        users = "".join(f"<td>{first.groups[g].users}</td>" for g in groups)
        parts.append(f"<tr><td><i>test users</i></td>{users}<td></td></tr></table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _reliability_plot(reliability: dict[str, list[dict[str, float]]]) -> str:
    fig, ax = _figure((5.5, 5))
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", label="perfect calibration")
    for name, bins in reliability.items():
        xs = [b["mean_predicted"] for b in bins]
        ys = [b["observed_rate"] for b in bins]
        color = "#2b6cb0" if name == "tastebud" else None
        ax.plot(xs, ys, marker="o", label=name, color=color)
    ax.set_xlabel("mean predicted probability (15 equal-width bins)")
    ax.set_ylabel("observed positive rate")
    ax.set_title("Reliability diagram (held-out predictions of all splits)")
    ax.legend(fontsize="small")
    return _svg(fig)


def _importance_plot(importance: dict[str, float], top: int = 15) -> str:
    items = list(importance.items())[:top]
    fig, ax = _figure((6.5, 0.35 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#2b6cb0")
    ax.invert_yaxis()
    ax.set_xlabel("mean |contribution| to the log-odds")
    ax.set_title("Global feature importance (Tastebud)")
    return _svg(fig)


def render_predictor_html(
    means: dict[str, dict[str, float]], details: PredictorDetails, title: str
) -> str:
    """A self-contained HTML page for ``tastebud predictors evaluate``."""
    e = html.escape
    head = "".join(f"<th>{m}</th>" for m in ("roc_auc", "pr_auc", "brier", "ece"))
    rows = "".join(
        f"<tr><td>{e(n)}</td>"
        + "".join(f"<td>{m[k]:.4f}</td>" for k in ("roc_auc", "pr_auc", "brier", "ece"))
        + "</tr>"
        for n, m in means.items()
    )
    chosen = ", ".join(e(c) for c in details.chosen)
    calibration = "; ".join(e(c) for c in details.calibration)
    return "\n".join(
        [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{e(title)}</title><style>body{{font-family:system-ui,sans-serif;margin:2em;"
            "max-width:1000px}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}td:first-child{text-align:left}"
            ".plot svg{max-width:100%;height:auto}</style></head><body>",
            f"<h1>{e(title)}</h1>",
            f"<p>{details.rows:,} rows, {details.positives:,} positive. Five "
            "stratified 80/20 splits (seeds 0-4); every model tuned and calibrated on the 80 % "
            "only; "
            "means of the held-out metrics. ECE: 15 equal-width bins.</p>",
            f"<table id='metrics'><tr><th>model</th>{head}</tr>{rows}</table>",
            f"<p>Tastebud's choice per split (out-of-fold ROC-AUC inside the 80 %): {chosen}. "
            f"Its calibrator per split (isotonic levels by the one-standard-error rule on the "
            f"inner folds' Brier scores): <span id='calibration'>{calibration}</span>. "
            "ECE of perfectly calibrated probabilities like Tastebud's on test sets this size "
            f"(labels drawn from them): {details.tastebud_ece_floor:.4f}.</p>",
            f"<div class='plot' id='reliability'>{_reliability_plot(details.reliability)}</div>",
            f"<div class='plot' id='importance'>{_importance_plot(details.importance)}</div>",
            "</body></html>",
        ]
    )
