"""Statistics core: rliable-style aggregate metrics with stratified-bootstrap intervals, and
AdaStop sequential comparisons of agents. Reads score arrays only; never imports the harness."""
from ._checks import StatsError
from .adastop import AdaStop
from .bootstrap import (
    Estimate,
    Profile,
    interval_estimates,
    performance_profile,
    probability_of_improvement,
)
from .metrics import iqm, mean, median, optimality_gap

__all__ = [
    "AdaStop",
    "Estimate",
    "Profile",
    "StatsError",
    "interval_estimates",
    "iqm",
    "mean",
    "median",
    "optimality_gap",
    "performance_profile",
    "probability_of_improvement",
]
