"""The experiments benchmark (issue 17, point 9) runs end to end in its quick mode and reports
every key the issue names, as one flat JSON object on its last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

ISSUE_KEYS = {
    "aa_false_positive_rate",
    "sequential_fpr_peeking",
    "naive_peeking_fpr",
    "power_planted_lift",
    "planted_lift",
    "power_users",
    "cuped_variance_reduction",
    "cuped_theory",
    "cuped_ci_coverage",
    "srm_detection_rate",
    "srm_false_alarm_rate",
    "interleaving_user_ratio",
    "ab_test_users",
    "interleaving_users",
    "gbstats_max_abs_diff",
    "seconds",
    "targets_met",
}


@pytest.mark.slow
def test_quick_run_reports_every_key() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "experiments.py"), "--quick", "--seed", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) > 5, "figures are printed before the JSON line"
    result = json.loads(lines[-1])
    assert ISSUE_KEYS <= result.keys(), sorted(ISSUE_KEYS - result.keys())
    # Flat: no nested objects or lists.
    assert all(not isinstance(v, (dict, list)) for v in result.values())
    assert isinstance(result["targets_met"], bool)
    assert result["quick"] is True and result["seed"] == 3
    # Rates are rates, and the naive daily looks cannot fire less often than one look.
    for key in (
        "aa_false_positive_rate",
        "sequential_fpr_peeking",
        "naive_peeking_fpr",
        "power_planted_lift",
        "cuped_ci_coverage",
        "srm_detection_rate",
        "srm_false_alarm_rate",
    ):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["naive_peeking_fpr"] >= result["aa_false_positive_rate"]
    assert result["interleaving_user_ratio"] == pytest.approx(
        result["ab_test_users"] / result["interleaving_users"], rel=0.03
    )
