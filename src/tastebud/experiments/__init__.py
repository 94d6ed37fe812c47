"""Experiments: A/B tests and interleaving inside serving, with statistics that keep their
promises (docs/experiments.md).

- :mod:`~tastebud.experiments.definitions`: what an experiment is (spec, variants,
  population, metrics, lifecycle);
- :mod:`~tastebud.experiments.repository`: stored experiments and their audit log;
- :mod:`~tastebud.experiments.assignment`: the deterministic hash and the per-process view
  serving assigns users with;
- :mod:`~tastebud.experiments.interleaving`: team-draft interleaving;
- :mod:`~tastebud.experiments.outcomes`, :mod:`~tastebud.experiments.analysis`: exposures and
  outcomes per user, and the results (imported on demand: serving never loads them);
- :mod:`~tastebud.experiments.summaries`, :mod:`~tastebud.experiments.stats`,
  :mod:`~tastebud.experiments.sequential`: the pure statistics.
"""

from tastebud.experiments.assignment import (
    Assignment,
    Audience,
    ExperimentsView,
    buckets,
    layer_bucket,
)
from tastebud.experiments.definitions import (
    BUCKETS,
    Experiment,
    ExperimentSpec,
    Guardrail,
    Metric,
    ModelPin,
    Population,
    ServingParams,
    Status,
    Surface,
    Variant,
)
from tastebud.experiments.repository import Experiments

__all__ = [
    "Assignment",
    "Audience",
    "BUCKETS",
    "Experiment",
    "ExperimentSpec",
    "Experiments",
    "ExperimentsView",
    "Guardrail",
    "Metric",
    "ModelPin",
    "Population",
    "ServingParams",
    "Status",
    "Surface",
    "Variant",
    "buckets",
    "layer_bucket",
]
