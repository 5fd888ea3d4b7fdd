"""Aggregate metrics and stratified-bootstrap intervals, checked against rliable.

Monte-Carlo tolerance for interval endpoints. An endpoint is the p-quantile of R bootstrap
replicates; its Monte-Carlo standard deviation is sqrt(p (1 - p) / R) / f(q_p), with f the
density of the bootstrap distribution at the quantile. We estimate 1/f(q_p) by the quantile
spread (Q(p + h) - Q(p - h)) / 2h on a separate, large run of our own replicates (h = 0.01).
drlbench and rliable draw independently, so the difference of their endpoints has standard
deviation sqrt(p (1 - p) (1/R_ours + 1/R_rliable)) / f(q_p); we allow 5 of those (a false
alarm rate below 1e-6 per endpoint). For BCa the level itself is random (the bias correction
z0 is estimated from the replicates), so the level's standard deviation gets a delta-method
term for z0. For profiles and probability of improvement, whose replicates live on a grid, one
grid step is added (two implementations can land on neighbouring grid values).
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from drlbench.stats import (
    StatsError,
    interval_estimates,
    iqm,
    mean,
    median,
    optimality_gap,
    performance_profile,
    probability_of_improvement,
)
from drlbench.stats import bootstrap as bs
from drlbench.stats.metrics import KERNELS

METRICS = ("iqm", "mean", "median", "optimality_gap")
NORMAL = NormalDist()


def _data(seed=1):
    rng = np.random.default_rng(seed)
    return {
        "normal": rng.normal(0.9, 0.4, size=(10, 5)),
        "gamma": rng.gamma(2.0, 0.45, size=(10, 5)),
    }


def _rliable():
    library = pytest.importorskip("rliable.library")
    metrics = pytest.importorskip("rliable.metrics")
    return library, metrics


def _rliable_funcs(rm):
    return {
        "iqm": rm.aggregate_iqm,
        "mean": rm.aggregate_mean,
        "median": rm.aggregate_median,
        "optimality_gap": rm.aggregate_optimality_gap,
    }


def _spread(dist, p, h=0.01):
    """(Q(p+h) - Q(p-h)) / 2h, an estimate of 1 / density at the p-quantile."""
    lo, hi = max(p - h, 0.0), min(p + h, 1.0)
    return (np.quantile(dist, hi) - np.quantile(dist, lo)) / (hi - lo)


def _tolerance(dist, p, reps_a, reps_b, grid=0.0, level_sd=None, z=5.0):
    if level_sd is None:
        level_sd = np.sqrt(p * (1 - p) * (1 / reps_a + 1 / reps_b))
    return z * level_sd * _spread(dist, p) + grid


# ----------------------------------------------------------------------------- point values
def test_metrics_by_hand():
    scores = np.arange(8.0).reshape(4, 2)  # pooled 0..7; task means 3 and 4
    assert iqm(scores) == pytest.approx(3.5)  # drop 2 from each end -> mean(2, 3, 4, 5)
    assert mean(scores) == pytest.approx(3.5)
    assert median(scores) == pytest.approx(3.5)
    assert optimality_gap(scores, gamma=2.0) == pytest.approx(2.0 - (0 + 1 + 6 * 2) / 8)
    three = np.array([[0.0, 1.0, 10.0], [2.0, 3.0, 20.0]])  # task means 1, 2, 15
    assert median(three) == pytest.approx(2.0)
    assert mean(three) == pytest.approx(6.0)


@pytest.mark.parametrize("shape", [(10, 5), (7, 3), (1, 9), (3, 1), (13, 4)])
def test_point_estimates_match_rliable(shape):
    _, rm = _rliable()
    rng = np.random.default_rng(sum(shape))
    scores = rng.gamma(1.5, 0.8, size=shape)
    for name, ref in _rliable_funcs(rm).items():
        ours = {"iqm": iqm, "mean": mean, "median": median, "optimality_gap": optimality_gap}[name]
        assert abs(ours(scores) - ref(scores)) <= 1e-12, name
    assert abs(optimality_gap(scores, 1.7) - rm.aggregate_optimality_gap(scores, 1.7)) <= 1e-12


def test_probability_of_improvement_point_matches_rliable():
    _, rm = _rliable()
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(1.0, 1.0, size=(8, 4)), 1)  # rounding makes ties
    y = np.round(rng.normal(0.7, 1.0, size=(5, 4)), 1)
    y_same = y.copy()
    x_with_equal_column = x[:5].copy()
    x_with_equal_column[:, 2] = y[:, 2]  # identical columns: rliable sets the task to 0.5
    for a, b in [(x, y), (y, x), (x_with_equal_column, y), (y, y_same)]:
        ours = probability_of_improvement(a, b, reps=10).point
        assert abs(ours - rm.probability_of_improvement(a, b)) <= 1e-12
    assert probability_of_improvement(y, y_same, reps=10).point == 0.5


# ----------------------------------------------------------------------------- intervals
def test_percentile_intervals_match_rliable():
    rly, rm = _rliable()
    data = _data()
    funcs = _rliable_funcs(rm)
    reps = 10_000
    ours = interval_estimates(data, metrics=METRICS, reps=reps, seed=0)
    np.random.seed(0)  # rliable draws from the global numpy stream
    points, cis = rly.get_interval_estimates(
        data, lambda s: np.array([funcs[m](s) for m in METRICS]), reps=reps)
    for key, scores in data.items():
        big = bs._replicates(scores, [KERNELS[m] for m in METRICS], 100_000,
                             np.random.default_rng(99))
        for j, name in enumerate(METRICS):
            est = ours[key][name]
            assert abs(est.point - points[key][j]) <= 1e-12
            for p, mine, theirs in [(0.025, est.lower, cis[key][0, j]),
                                    (0.975, est.upper, cis[key][1, j])]:
                tol = _tolerance(big[j], p, reps, reps)
                assert abs(mine - theirs) <= tol, (key, name, p, mine, theirs, tol)


def test_task_bootstrap_intervals_match_rliable():
    rly, rm = _rliable()
    scores = _data()["gamma"]
    reps = 10_000
    ours = interval_estimates({"g": scores}, metrics=("iqm", "mean"), reps=reps, seed=4,
                              task_bootstrap=True)["g"]
    np.random.seed(4)
    _, cis = rly.get_interval_estimates(
        {"g": scores}, lambda s: np.array([rm.aggregate_iqm(s), rm.aggregate_mean(s)]),
        reps=reps, task_bootstrap=True)
    big = bs._replicates(scores, [KERNELS["iqm"], KERNELS["mean"]], 100_000,
                         np.random.default_rng(98), task_bootstrap=True)
    for j, name in enumerate(("iqm", "mean")):
        for p, mine, theirs in [(0.025, ours[name].lower, cis["g"][0, j]),
                                (0.975, ours[name].upper, cis["g"][1, j])]:
            assert abs(mine - theirs) <= _tolerance(big[j], p, reps, reps), (name, p)
    # task resampling must widen the interval compared with runs-only resampling
    runs_only = interval_estimates({"g": scores}, metrics=("mean",), reps=reps, seed=4)["g"]
    assert ours["mean"].upper - ours["mean"].lower > runs_only["mean"].upper - runs_only["mean"].lower


def _jackknife_acceleration(scores, fn):
    jk = np.array([fn(np.delete(scores, i, axis=0)) for i in range(scores.shape[0])])
    u = jk.mean() - jk
    return np.sum(u ** 3) / (6 * np.sum(u ** 2) ** 1.5)


def test_bca_intervals_match_rliable():
    rly, rm = _rliable()
    scores = _data()["gamma"]
    reps = 5_000
    funcs = _rliable_funcs(rm)
    ours = interval_estimates({"g": scores}, metrics=METRICS, reps=reps, seed=1, method="bca")["g"]
    big_all = bs._replicates(scores, [KERNELS[m] for m in METRICS], 100_000,
                             np.random.default_rng(97))
    for j, name in enumerate(METRICS):
        np.random.seed(10 + j)  # one metric per call: arch's BCa mixes outputs' jackknives
        _, cis = rly.get_interval_estimates(
            {"g": scores}, lambda s, f=funcs[name]: np.array([f(s)]), reps=reps, method="bca")
        big = big_all[j]
        point = ours[name].point
        share = np.mean(big < point)
        z0 = NORMAL.inv_cdf(share)
        a = _jackknife_acceleration(scores, funcs[name])
        for z_nominal, mine, theirs in [(NORMAL.inv_cdf(0.025), ours[name].lower, cis["g"][0, 0]),
                                        (NORMAL.inv_cdf(0.975), ours[name].upper, cis["g"][1, 0])]:
            def level(z0_):
                return NORMAL.cdf(z0_ + (z0_ + z_nominal) / (1 - a * (z0_ + z_nominal)))
            p = level(z0)
            dlevel_dz0 = (level(z0 + 1e-4) - level(z0 - 1e-4)) / 2e-4
            dz0_dshare = 1 / NORMAL.pdf(z0)
            per_run = (np.sqrt(p * (1 - p))
                       + abs(dlevel_dz0) * dz0_dshare * np.sqrt(share * (1 - share)))
            level_sd = per_run * np.sqrt(2 / reps)
            tol = _tolerance(big, p, reps, reps, level_sd=level_sd)
            assert abs(mine - theirs) <= tol, (name, z_nominal, mine, theirs, tol)
        # BCa differs from the percentile interval (the test would see a silent fallback)
        pct = interval_estimates({"g": scores}, metrics=(name,), reps=reps, seed=1)["g"][name]
        assert (pct.lower, pct.upper) != (ours[name].lower, ours[name].upper)


def test_performance_profile_matches_rliable():
    rly, _ = _rliable()
    scores = _data()["normal"]
    taus = np.linspace(0.0, 2.0, 11)
    reps = 5_000
    ours = performance_profile({"n": scores}, taus, reps=reps, seed=2)["n"]
    np.random.seed(2)
    profiles, cis = rly.create_performance_profile({"n": scores}, taus, reps=reps)
    assert np.max(np.abs(ours.point - profiles["n"])) <= 1e-12
    big = bs._profile_replicates(scores, taus, 100_000, np.random.default_rng(96))
    grid = 1.0 / scores.size
    for t in range(taus.size):
        for p, mine, theirs in [(0.025, ours.lower[t], cis["n"][0, t]),
                                (0.975, ours.upper[t], cis["n"][1, t])]:
            tol = _tolerance(big[:, t], p, reps, reps, grid=grid)
            assert abs(mine - theirs) <= tol, (taus[t], p, mine, theirs, tol)
    assert np.all(ours.lower <= ours.point + 1e-12) and np.all(ours.point <= ours.upper + 1e-12)


def test_probability_of_improvement_interval_matches_rliable():
    rly, rm = _rliable()
    rng = np.random.default_rng(5)
    x = rng.normal(1.0, 1.0, size=(10, 5))
    y = rng.normal(0.6, 1.0, size=(7, 5))
    reps = 1_000
    ours = probability_of_improvement(x, y, reps=reps, seed=3)
    np.random.seed(3)
    points, cis = rly.get_interval_estimates(
        {"x,y": (x, y)}, rm.probability_of_improvement, reps=reps)
    assert abs(ours.point - points["x,y"]) <= 1e-12
    big = bs._improvement_replicates(x, y, 100_000, np.random.default_rng(95))
    grid = 0.5 / (x.shape[0] * y.shape[0] * x.shape[1])
    for p, mine, theirs in [(0.025, ours.lower, cis["x,y"][0]), (0.975, ours.upper, cis["x,y"][1])]:
        tol = _tolerance(big, p, reps, reps, grid=grid)
        assert abs(mine - float(np.squeeze(theirs))) <= tol, (p, mine, theirs, tol)


# ----------------------------------------------------------------------------- reproducibility
def test_same_seed_same_intervals_different_seed_different():
    data = _data()
    a = interval_estimates(data, reps=2_000, seed=7)
    b = interval_estimates(data, reps=2_000, seed=7)
    c = interval_estimates(data, reps=2_000, seed=8)
    assert a == b
    assert all(a[k][m].point == c[k][m].point for k in data for m in METRICS)
    assert any((a[k][m].lower, a[k][m].upper) != (c[k][m].lower, c[k][m].upper)
               for k in data for m in METRICS)
    # an algorithm's interval does not depend on which other algorithms are in the dict
    alone = interval_estimates({"gamma": data["gamma"]}, reps=2_000, seed=7)
    assert alone["gamma"] == a["gamma"]
    bca1 = interval_estimates(data, reps=2_000, seed=7, method="bca")
    assert bca1 == interval_estimates(data, reps=2_000, seed=7, method="bca")

    p1 = performance_profile(data, [0.5, 1.0], reps=500, seed=1)["normal"]
    p2 = performance_profile(data, [0.5, 1.0], reps=500, seed=1)["normal"]
    p3 = performance_profile(data, [0.5, 1.0], reps=500, seed=2)["normal"]
    assert np.array_equal(p1.lower, p2.lower) and np.array_equal(p1.upper, p2.upper)
    assert not (np.array_equal(p1.lower, p3.lower) and np.array_equal(p1.upper, p3.upper))

    x, y = data["normal"], data["gamma"]
    assert probability_of_improvement(x, y, reps=500, seed=1) == \
        probability_of_improvement(x, y, reps=500, seed=1)
    assert probability_of_improvement(x, y, reps=500, seed=1) != \
        probability_of_improvement(x, y, reps=500, seed=2)


def test_blocked_replicates_agree_with_one_block(monkeypatch):
    scores = _data()["normal"]
    reps = 20_000
    one = interval_estimates({"a": scores}, metrics=("iqm",), reps=reps, seed=5)["a"]["iqm"]
    monkeypatch.setattr(bs, "_BLOCK_ELEMENTS", 1000)  # 20 replicates per block
    many = interval_estimates({"a": scores}, metrics=("iqm",), reps=reps, seed=5)["a"]["iqm"]
    big = bs._replicates(scores, [KERNELS["iqm"]], 100_000, np.random.default_rng(94))[0]
    assert many.point == one.point
    assert abs(many.lower - one.lower) <= _tolerance(big, 0.025, reps, reps)
    assert abs(many.upper - one.upper) <= _tolerance(big, 0.975, reps, reps)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad, words", [
    ({"a": [[1.0, 2.0], [3.0]]}, ["score_dict['a']", "rectangular"]),
    ({"a": [[1.0, np.nan], [3.0, 4.0]]}, ["score_dict['a']", "nan", "run 0, task 1"]),
    ({"a": np.zeros((0, 3))}, ["score_dict['a']", "no runs"]),
    ({"a": np.ones((3, 2)), "b": []}, ["score_dict['b']", "no runs"]),
    ({"a": np.zeros((3, 0))}, ["score_dict['a']", "no tasks"]),
    ({"a": np.zeros((3, 2)), "b": np.zeros((3, 4))}, ["different task counts"]),
    ({"a": np.zeros(5)}, ["score_dict['a']", "2-D"]),
    ({}, ["non-empty"]),
])
def test_bad_score_dict_raises(bad, words):
    with pytest.raises(StatsError) as err:
        interval_estimates(bad, reps=10)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    with pytest.raises(ValueError):  # StatsError is a ValueError
        performance_profile(bad, [0.5], reps=10)


def test_bad_arguments_raise():
    data = _data()
    with pytest.raises(StatsError, match="unknown metric 'iqr'"):
        interval_estimates(data, metrics=("iqr",), reps=10)
    with pytest.raises(StatsError, match="method"):
        interval_estimates(data, method="basic", reps=10)
    with pytest.raises(StatsError, match="reps"):
        interval_estimates(data, reps=0)
    with pytest.raises(StatsError, match="confidence"):
        interval_estimates(data, confidence=95, reps=10)
    with pytest.raises(StatsError, match="confidence"):
        interval_estimates(data, confidence="high", reps=10)
    with pytest.raises(StatsError, match="2 runs"):
        interval_estimates({"a": np.ones((1, 3))}, method="bca", reps=10)
    with pytest.raises(StatsError, match="different task counts"):
        probability_of_improvement(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(StatsError, match="y: non-finite score inf"):
        probability_of_improvement(np.ones((3, 2)), np.array([[1.0, np.inf]]))
    with pytest.raises(StatsError, match="taus"):
        performance_profile(data, [], reps=10)
    with pytest.raises(StatsError, match="score_dict: expected a non-empty mapping"):
        interval_estimates([1, 2], reps=10)
    with pytest.raises(StatsError, match="scores: not a rectangular"):
        iqm([[1.0], [2.0, 3.0]])
    with pytest.raises(StatsError, match="scores: non-finite"):
        iqm([[1.0, np.nan]])
