"""AdaStop: exactness against brute force, family-wise error and power by simulation, resume
from JSON, bad input, and a cross-check against the adastop package's over-rejection.

FWE checks: agents with i.i.d. N(0, 1) scores (every null true); a repetition errs when any
comparison is "larger"/"smaller". We require FWE_hat <= alpha + 2 * sqrt(alpha (1 - alpha) / reps)
(alpha plus two Monte-Carlo standard errors at FWE = alpha). The same harness applied to the
package's signed null (a test-only subclass) exceeds that bound, so the check can fail.
"""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from drlbench.stats import AdaStop, StatsError

ALPHA = 0.05


def _names(count):
    return [f"agent{i}" for i in range(count)]


def run_adastop(data, n, K, B=10_000, alpha=ALPHA, seed=0, cls=AdaStop, comparisons=None):
    """Feed data (agents, n*K) interim by interim until every comparison is decided."""
    names = _names(data.shape[0])
    test = cls(n=n, K=K, B=B, alpha=alpha, seed=seed, comparisons=comparisons)
    k = 0
    while not test.is_finished:
        k += 1
        test.decide({name: data[i, :n * k] for i, name in enumerate(names)})
    return test


def simulate(agents, K, n, reps, shift=None, cls=AdaStop, B=10_000, first_seed=0, each=False):
    """Returns (share of repetitions with a rejection among null pairs,
    share with every non-null pair rejected in the right direction, mean runs per agent)
    and, with each=True, the share of non-null pairs rejected in the right direction."""
    shift = np.zeros(agents) if shift is None else np.asarray(shift, dtype=float)
    names = _names(agents)
    errors = powered = runs = found = 0
    for r in range(reps):
        rng = np.random.default_rng(first_seed + r)
        data = rng.standard_normal((agents, n * K)) + shift[:, None]
        test = run_adastop(data, n, K, B=B, seed=first_seed + r, cls=cls)
        wrong = right = 0
        for (a, b), decision in test.decisions.items():
            i, j = names.index(a), names.index(b)
            if shift[i] == shift[j]:
                wrong += decision != "equal"
            else:
                right += decision == ("larger" if shift[i] > shift[j] else "smaller")
        errors += wrong > 0
        n_alternatives = sum(shift[i] != shift[j] for i, j in itertools.combinations(range(agents), 2))
        powered += n_alternatives > 0 and right == n_alternatives
        found += right / max(n_alternatives, 1)
        runs += sum(a["runs"] for a in test.summary()["agents"].values())
    out = errors / reps, powered / reps, runs / reps / agents
    return (*out, found / reps) if each else out


def _bound(reps):
    return ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / reps)


class SignedNullAdaStop(AdaStop):
    """adastop 0.1.3's null: signed permuted differences against an absolute observed value."""

    def _null_statistic(self, diff):
        return diff


# ----------------------------------------------------------------------------- exactness
def _brute_force_sequential(data, n, K, alpha, comparisons):
    """Independent reimplementation by full enumeration over *permutations* (not deals) of each
    block, p-value style, with the level carried over as in the class docstring. Block m pools
    the agents that still had an undecided comparison at interim m."""
    decisions = {c: "continue" for c in comparisons}
    spent = 0.0
    blocks = []   # per block: (active agents, all permutations of the pooled positions)
    history = []  # per interim: (comparisons at which step-down stopped, their boundary)
    for k in range(1, K + 1):
        current = [c for c in comparisons if decisions[c] == "continue"]
        active = sorted({a for c in current for a in c})
        blocks.append((active, np.array(list(itertools.permutations(range(len(active) * n))))))
        paths = np.array(list(itertools.product(*[range(len(p)) for _, p in blocks])))
        sums = np.zeros((len(paths), data.shape[0]))
        sums_by_block = []
        for m, (act, perms) in enumerate(blocks):
            pooled = data[act, m * n:(m + 1) * n].reshape(-1)  # agent-major
            dealt = pooled[perms[paths[:, m]]].reshape(len(paths), len(act), n).sum(axis=2)
            sums[:, act] += dealt
            sums_by_block.append(sums.copy())
        alive = np.ones(len(paths), dtype=bool)
        for m, (final, bound) in enumerate(history):
            s = sums_by_block[m]
            stat = np.max([np.abs(s[:, i] - s[:, j]) for i, j in final], axis=0)
            alive &= stat <= bound
        observed = np.array([data[a, :n * sum(a in act for act, _ in blocks)].sum()
                             for a in range(data.shape[0])])
        budget = alpha * k / K - spent
        final, bound = current, None
        while current:
            stat = np.max([np.abs(sums[:, i] - sums[:, j]) for i, j in current], axis=0)
            obs = {c: abs(observed[c[0]] - observed[c[1]]) for c in current}
            top = max(current, key=lambda c: obs[c])
            # reject iff the share of surviving paths with a value >= the observed max is
            # within the budget (equivalent to observed > the smallest admissible boundary)
            if np.mean(alive & (stat >= obs[top])) <= budget + 1e-12:
                decisions[top] = "larger" if observed[top[0]] > observed[top[1]] else "smaller"
                current = [c for c in current if c != top]
                final = current
            else:
                values = np.sort(stat[alive])
                allowed = math.floor(budget * len(paths) + 1e-9)
                bound = values[len(values) - allowed - 1]
                spent += np.mean(alive & (stat > bound))
                break
        if not current:
            break
        history.append((final, bound))
        if k == K:
            for c in current:
                decisions[c] = "equal"
    return decisions


@pytest.mark.parametrize("agents, n, K, alpha", [(2, 2, 3, 0.3), (3, 1, 4, 0.4), (3, 2, 1, 0.1),
                                                 (2, 3, 1, 0.2)])
def test_exact_test_matches_brute_force(agents, n, K, alpha):
    comparisons = list(itertools.combinations(range(agents), 2))
    seen = set()
    for rep in range(12):
        rng = np.random.default_rng(100 + rep)
        data = rng.standard_normal((agents, n * K)) + rng.choice([0.0, 1.5, 3.0], size=(agents, 1))
        test = run_adastop(data, n, K, alpha=alpha, B=10_000)
        assert all(rec["exact"] for rec in test.summary()["interims"])
        expected = _brute_force_sequential(data, n, K, alpha, comparisons)
        names = _names(agents)
        got = {(names.index(a), names.index(b)): d for (a, b), d in test.decisions.items()}
        assert got == expected, (rep, got, expected)
        seen.update(got.values())
    assert {"equal", "larger"} <= seen or {"equal", "smaller"} <= seen  # both kinds happened


def test_enumeration_switches_to_sampling_and_keeps_the_normaliser():
    # C(20, 10) = 184756 > B: sampled from the first interim. adastop 0.1.3 stops spending
    # level from its 2nd interim on in this case; here every interim spends up to alpha*k/K.
    rng = np.random.default_rng(7)
    data = rng.standard_normal((2, 30)) * 1e-3 + np.array([[0.0], [0.0]])
    test = AdaStop(n=10, K=3, B=5_000, alpha=ALPHA, seed=1)
    for k in (1, 2, 3):
        test.decide({"a": data[0, :10 * k], "b": data[1, :10 * k]})
        if test.is_finished and k < 3:
            pytest.skip("rejected early on this draw")
        rec = test.summary()["interims"][-1]
        assert not rec["exact"] and rec["paths"] == 5_000
        assert ALPHA * k / 3 - 2 / 5_000 <= rec["level_spent"] <= ALPHA * k / 3 + 1e-12
    # exact while P_k <= B, then sampled: n=3 gives 20, 400, 8000 paths
    test = run_adastop(rng.standard_normal((2, 12)), n=3, K=4, B=1_000)
    kinds = [(rec["exact"], rec["paths"]) for rec in test.summary()["interims"]]
    assert kinds[:2] == [(True, 20), (True, 400)]
    assert all(k == (False, 1_000) for k in kinds[2:])


# ----------------------------------------------------------------------------- FWE and power
# (agents, K, n, reps): the three configurations. reps is chosen so that the bound
# alpha + 2 s.e. (0.058, 0.060, 0.061) sits well below what a wrong null gives (adastop 0.1.3's
# signed null: 0.097-0.127; pairwise splits for 4 agents: 0.067).
@pytest.mark.parametrize("agents, K, n, reps", [
    (2, 1, 5, 3000),
    pytest.param(2, 3, 5, 2000, marks=pytest.mark.slow),
    pytest.param(4, 6, 5, 1500, marks=pytest.mark.slow),
])
def test_family_wise_error_under_the_null(agents, K, n, reps):
    fwe, _, runs = simulate(agents, K, n, reps)
    assert fwe <= _bound(reps), (fwe, _bound(reps))
    assert fwe > 0.02  # the test spends its level (a test that never rejects passes trivially)
    assert runs > n * K * 0.9  # under the null nearly every comparison runs to the end


def test_signed_null_of_adastop_013_fails_the_same_check():
    fwe, _, _ = simulate(2, 1, 5, 2000, cls=SignedNullAdaStop)
    assert fwe > _bound(2000), fwe  # about 2 * alpha


def test_power_two_sigma_shift_stops_early():
    _, power, runs = simulate(2, 3, 5, 200, shift=[0.0, 2.0])
    assert power >= 0.95, power
    assert runs < 8, runs  # almost always decided at the first interim (5 runs)


def test_strong_control_and_power_with_one_better_agent():
    fwe, power, runs = simulate(4, 3, 5, 300, shift=[0.0, 0.0, 0.0, 2.5], first_seed=5000)
    assert fwe <= _bound(300), fwe  # errors among the three equal agents
    assert power >= 0.8, power  # all three comparisons with the better agent found
    assert runs < 15


# ----------------------------------------------------------------------------- resume
@pytest.mark.parametrize("agents, n, K, B, shift", [
    (3, 5, 4, 2_000, [0.0, 0.2, 1.5]),  # sampled from the first interim
    (2, 3, 4, 1_000, [0.0, 0.9]),       # exact for 2 interims, then sampled
])
def test_json_resume_gives_the_same_decisions(tmp_path, agents, n, K, B, shift):
    resumes = 0
    for rep in range(4):
        rng = np.random.default_rng(40 + rep)
        data = rng.standard_normal((agents, n * K)) + np.asarray(shift)[:, None]
        names = _names(agents)
        reference = run_adastop(data, n, K, B=B, seed=rep)
        for stop_after in range(1, reference.interim):
            test = AdaStop(n=n, K=K, B=B, alpha=ALPHA, seed=rep)
            for k in range(1, stop_after + 1):
                test.decide({name: data[i, :n * k] for i, name in enumerate(names)})
            path = tmp_path / f"state_{rep}_{stop_after}.json"
            test.save(path)
            resumed = AdaStop.load(path)
            assert resumed.interim == stop_after
            assert resumed.agents_to_run == test.agents_to_run
            k = stop_after
            while not resumed.is_finished:
                k += 1
                resumed.decide({name: data[i, :n * k] for i, name in enumerate(names)})
            assert resumed.decisions == reference.decisions
            assert resumed.summary() == reference.summary()
            assert resumed.to_json() == reference.to_json()
            resumes += 1
    assert resumes >= 4


def test_decisions_summary_and_agents_to_run():
    rng = np.random.default_rng(11)
    test = AdaStop(n=5, K=4, alpha=ALPHA, seed=0)
    assert test.agents is None and test.agents_to_run == [] and test.decisions == {}
    good, bad, mid = 6.0, 0.0, 0.1  # "good" is fully separated from the others
    base = rng.standard_normal((3, 20))
    scores = {"good": base[0] + good, "bad": base[1] + bad, "mid": base[2] + mid}
    out = test.decide({name: s[:5] for name, s in scores.items()})
    assert out[("good", "bad")] == "larger" and out[("good", "mid")] == "larger"
    assert out[("bad", "mid")] == "continue"
    assert test.agents_to_run == ["bad", "mid"] and test.runs_needed == 10
    # the retired agent may keep sending its old scores (extra ones are ignored)
    out = test.decide({"good": scores["good"][:5], "bad": scores["bad"][:10],
                       "mid": scores["mid"][:10]})
    summary = test.summary()
    assert summary["agents"]["good"]["runs"] == 5
    assert summary["agents"]["bad"]["runs"] == 10
    first = {tuple(c["agents"]): c["interim"] for c in summary["comparisons"]}
    assert first[("good", "bad")] == 1 and first[("good", "mid")] == 1
    while not test.is_finished:
        k = test.interim + 1
        out = test.decide({name: s[:5 * k] for name, s in scores.items()})
    assert out[("bad", "mid")] == "equal"
    assert test.summary()["comparisons"][2]["interim"] == 4


def test_comparisons_by_name_or_index_and_agents_not_compared():
    rng = np.random.default_rng(12)
    base = rng.standard_normal((3, 10))
    scores = {"ppo": base[0], "sac": base[1] + 3.0, "td3": base[2]}
    by_name = AdaStop(n=5, K=2, comparisons=[("sac", "ppo")])
    by_index = AdaStop(n=5, K=2, comparisons=[(1, 0)])
    for test in (by_name, by_index):
        out = test.decide({name: s[:5] for name, s in scores.items()})
        assert out == {("sac", "ppo"): "larger"}
        assert test.is_finished
        assert test.summary()["agents"]["td3"]["runs"] == 0


# ----------------------------------------------------------------------------- bad input
def test_bad_input_raises_one_line_errors():
    test = AdaStop(n=3, K=2)
    with pytest.raises(StatsError, match=r"scores\['b'\]: expected 3 scores at interim 1"):
        test.decide({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0]})
    with pytest.raises(StatsError, match=r"scores\['b'\]: non-finite score nan at position 1"):
        test.decide({"a": [1.0, 2.0, 3.0], "b": [1.0, float("nan"), 2.0]})
    with pytest.raises(StatsError, match="at least 2 agents"):
        AdaStop(n=3).decide({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(StatsError, match=r"scores\['a'\]: expected a 1-D"):
        AdaStop(n=3).decide({"a": [[1.0, 2.0, 3.0]], "b": [1.0, 2.0, 3.0]})
    test = AdaStop(n=3, K=3)
    test.decide({"a": [1.0, 2.0, 3.0], "b": [1.5, 2.5, 3.5]})
    with pytest.raises(StatsError, match=r"missing \['b'\], unknown \['c'\]"):
        test.decide({"a": [1.0, 2.0, 3.0, 4, 5, 6], "c": [1.0] * 6})
    with pytest.raises(StatsError, match="differ from those used"):
        test.decide({"a": [9.0, 2.0, 3.0, 4, 5, 6], "b": [1.5, 2.5, 3.5, 4, 5, 6]})
    assert test.interim == 1  # a rejected call changes nothing
    for kwargs, word in [({"n": 0}, "n"), ({"K": 1.5}, "K"), ({"alpha": 1.0}, "alpha"),
                         ({"B": 1}, "B"), ({"seed": -1}, "seed"),
                         ({"comparisons": [(0, 1, 2)]}, "comparisons")]:
        with pytest.raises(StatsError, match=word):
            AdaStop(**kwargs)
    for comparisons, word in [([("a", "z")], "unknown agent 'z'"), ([(0, 5)], "out of range"),
                              ([(0, 0)], "itself"), ([(0, 1), (1, 0)], "twice")]:
        with pytest.raises(StatsError, match=word):
            AdaStop(n=1, comparisons=comparisons).decide({"a": [1.0], "b": [2.0]})
    with pytest.raises(StatsError, match="format"):
        AdaStop.from_json('{"format": "pickle"}')


def test_first_call_with_bad_scores_leaves_the_test_unset():
    test = AdaStop(n=2, K=2)
    with pytest.raises(StatsError, match="expected 2 scores"):
        test.decide({"a": [1.0, 2.0], "b": [1.0]})
    assert test.agents is None and test.interim == 0
    test.decide({"x": [1.0, 2.0], "y": [3.0, 4.0]})  # other names are still accepted
    assert test.agents == ["x", "y"]


def test_corrupt_or_missing_state_is_a_one_line_error(tmp_path):
    good = AdaStop(n=2, K=2)
    good.decide({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    state = json.loads(good.to_json())
    del state["pairs"]
    for text in (json.dumps(state), "{not json", '{"format": "drlbench.adastop/1"}'):
        with pytest.raises(StatsError) as err:
            AdaStop.from_json(text)
        assert "\n" not in str(err.value)
    with pytest.raises(StatsError, match="cannot read"):
        AdaStop.load(tmp_path / "missing.json")
    good.save(tmp_path / "state.json")
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left behind
    assert AdaStop.load(tmp_path / "state.json").to_json() == good.to_json()


# ----------------------------------------------------------------------------- vs adastop 0.1.3
def test_same_decisions_as_adastop_013_with_its_null_and_fewer_rejections_with_ours():
    """2 agents, K=1, n=5: both enumerate the 252 splits. With the package's signed null our
    code reproduces its decisions exactly; with the two-sided null it rejects about half as often."""
    adastop = pytest.importorskip("adastop")
    reps, ours, theirs = 600, 0, 0
    for r in range(reps):
        rng = np.random.default_rng(20_000 + r)
        data = rng.standard_normal((2, 5))
        mine = run_adastop(data, n=5, K=1).decisions[("agent0", "agent1")]
        signed = run_adastop(data, n=5, K=1, cls=SignedNullAdaStop).decisions[("agent0", "agent1")]
        package = adastop.MultipleAgentsComparator(n=5, K=1, B=10_000, alpha=ALPHA, seed=r)
        package.partial_compare({"agent0": data[0], "agent1": data[1]}, verbose=False)
        theirs_decision = list(package.decisions.values())[0]
        assert signed == theirs_decision, (r, signed, theirs_decision)
        assert theirs_decision != "equal" or mine == "equal"  # same data: their boundary is lower
        ours += mine != "equal"
        theirs += theirs_decision != "equal"
    assert ours / reps <= _bound(reps)
    assert theirs / reps > _bound(reps)
    assert theirs >= ours + 10, (ours, theirs)


# ----------------------------------------------------------------------------- tables for the docs
def _heteroscedastic(reps, K, n=5):
    """Agents 0, 1 ~ N(0, 1) (their comparison is a true null); agents 2, 3 ~ N(0, 0.05)."""
    errors = 0
    for r in range(reps):
        rng = np.random.default_rng(90_000 + r)
        data = rng.standard_normal((4, n * K)) * np.array([1.0, 1.0, 0.05, 0.05])[:, None]
        test = run_adastop(data, n, K, seed=r)
        errors += test.decisions[("agent0", "agent1")] != "equal" or \
            test.decisions[("agent2", "agent3")] != "equal"
    return errors / reps


if __name__ == "__main__":  # python tests/test_adastop.py [scale]: the FWE and power tables
    import sys
    import time

    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    print("| agents | K | n | scores | reps | FWE | MC s.e. | runs per agent | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for agents, K, n, reps in [(2, 1, 5, 10_000), (2, 3, 5, 4000), (2, 5, 5, 2000), (3, 3, 5, 2000),
                               (4, 6, 5, 3000), (6, 1, 5, 2000)]:
        reps = int(reps * scale)
        start = time.perf_counter()
        fwe, _, runs = simulate(agents, K, n, reps, first_seed=50_000)
        print(f"| {agents} | {K} | {n} | N(0,1) | {reps} | {fwe:.4f} | {math.sqrt(fwe * (1 - fwe) / reps):.4f} "
              f"| {runs:.1f} | {time.perf_counter() - start:.0f} |", flush=True)
    print()
    print("| agents | K | n | shifts (s.d. units) | reps | FWE (true nulls) | power: all false nulls found "
          "| power: share of false nulls found | runs per agent |")
    print("|---|---|---|---|---|---|---|---|---|")
    for agents, K, n, shift, reps in [(2, 5, 5, [0, 0.5], 1000), (2, 5, 5, [0, 1.0], 1000),
                                      (2, 5, 5, [0, 1.5], 1000), (2, 5, 5, [0, 2.0], 1000),
                                      (4, 5, 5, [0, 0, 0, 1.5], 500), (4, 5, 5, [0, 0.5, 1.0, 1.5], 500),
                                      (4, 5, 5, [0, 1.0, 2.0, 3.0], 500)]:
        reps = int(reps * scale)
        fwe, power, runs, share = simulate(agents, K, n, reps, shift=shift, first_seed=70_000, each=True)
        print(f"| {agents} | {K} | {n} | {shift} | {reps} | {fwe:.3f} | {power:.3f} | {share:.3f} | {runs:.1f} |",
              flush=True)
    print()
    for K in (1, 3):
        reps = int(2000 * scale / K)
        print(f"heteroscedastic partial null, K={K}, {reps} reps: FWE {_heteroscedastic(reps, K):.3f}", flush=True)
