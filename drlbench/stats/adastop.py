"""AdaStop: adaptive, group-sequential permutation tests to compare several agents.

Mathieu, Della Vecchia, Shilova, Medeiros Centa, Kohler, Maillard, Preux, "AdaStop: adaptive
statistical testing for sound comparisons of Deep RL agents", arXiv 2306.10882 (TMLR 2024).
See the `AdaStop` docstring for the algorithm and docs/statistics.md for how this implementation
differs from the paper's text and from the `adastop` package (0.1.3), and why.
"""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._checks import StatsError, as_score_vector

_FORMAT = "drlbench.adastop/1"
_CONTINUE, _LARGER, _SMALLER, _EQUAL = "continue", "larger", "smaller", "equal"


def _assignment_count(groups: int, n: int) -> int:
    """Distinct ways to deal groups*n pooled scores into `groups` labelled groups of n."""
    return math.factorial(groups * n) // math.factorial(n) ** groups


@lru_cache(maxsize=32)
def _enumerated_assignments(groups: int, n: int) -> np.ndarray:
    """Every assignment, as positions into the pooled block: columns [l*n, (l+1)*n) go to group
    l. Row 0 is the identity (each agent keeps its own scores)."""
    rows = []

    def deal(remaining: tuple, prefix: tuple):
        if len(remaining) == n:
            rows.append(prefix + remaining)
            return
        for chosen in itertools.combinations(remaining, n):
            rest = tuple(i for i in remaining if i not in chosen)
            deal(rest, prefix + chosen)

    deal(tuple(range(groups * n)), ())
    out = np.array(rows, dtype=np.intp)
    out.setflags(write=False)
    return out


def _sampled_assignments(seed: int, block: int, groups: int, n: int, count: int) -> np.ndarray:
    """`count` uniformly random assignments for interim `block`; row 0 is the identity. The
    stream depends only on (seed, block, groups), so a resumed comparison redraws the same."""
    rng = np.random.default_rng([seed, block, groups])
    identity = np.arange(groups * n, dtype=np.intp)
    out = rng.permuted(np.broadcast_to(identity, (count, groups * n)), axis=1)
    out[0] = identity
    return out


class AdaStop:
    """Group-sequential step-down permutation test of Mathieu et al. (arXiv 2306.10882).

    Setting. L agents; comparisons c = (i, j) (default: every pair i < j); at most K interims;
    at interim k every agent still involved in an undecided comparison adds n new scores (one
    score per independent training run), so such an agent has n*k scores after interim k.

    Statistic (paper, Alg. 1 and 3). For comparison c = (i, j) at interim k,
        T_c = | sum_{m<=k} ( sum of i's block-m scores - sum of j's block-m scores ) |,
    i.e. n*k*|mean_i - mean_j|.

    Permutation paths. A path sigma = (sigma_1, ..., sigma_k) holds one permutation per interim
    block. sigma_m reshuffles the pooled block-m scores of *all* agents active at interim m and
    deals them back into groups of n, one group per agent; every comparison's permuted
    statistic T_c(sigma) is read from the same dealt blocks. Permuting the agents jointly is
    what makes the joint law of (T_c)_c exactly invariant when every agent has the same score
    distribution. The paper writes T_c(sigma) with one sigma in S_2n applied to each pair's own
    concatenated scores; a note in its LaTeX sources shows that no single permutation of the
    data realises that for pairs sharing an agent, and adastop 0.1.3 even draws independent
    splits per pair, so neither reproduces the dependence between comparisons (the package
    with |.| patched in: FWE 0.067 for 4 equal agents, K=1).
    Limitation: with some nulls false, agents with different distributions are pooled too; for
    location shifts this keeps the level but costs power for close pairs, and an agent with a
    much smaller spread can shrink the boundary of a true-null pair (FWE about 0.085 at alpha
    0.05 in docs/statistics.md). With two agents the test is exact for any distributions.
    The null is two-sided: T_c(sigma) takes |.| like the observed statistic (the paper; the
    package's first commit). adastop 0.1.3 compares |observed| with a max of *signed* permuted
    differences and so runs at about 2*alpha (docs/statistics.md).

    Exact or sampled. With M_m = (L_m n)! / (n!)^{L_m} distinct deals of block m, interim k
    has P_k = prod_{m<=k} M_m paths. While P_k <= B every path is enumerated (exact test);
    otherwise B paths are used: path 0 is the identity (the observed data), the others draw an
    independent uniform deal for every block from a stream seeded by (seed, block), and keep
    it at later interims. Tail probabilities are counts of paths divided by the number of paths
    in the set (P_k or B), counting the ones pruned below, so they are unconditional path
    probabilities at every interim (the package's normaliser collapses to 1 from its 2nd
    interim on when C(2n, n) > B).

    Boundary with conditioning and linear alpha spending (paper, boundary definition used in
    Alg. 3). Let S_k be the paths that would not have stopped earlier: for every m < k,
    max_{c in C_m} T_c(sigma_1..m) <= b_m, where C_m and b_m are the comparison set and the
    boundary at which step-down stopped at interim m. With cumulative level alpha_k = alpha*k/K
    and the level already spent s_{k-1}, the boundary for a set C is the smallest permuted value
        b_k(C) = min{ b : #{sigma in S_k : max_{c in C} T_c(sigma) > b} / P <= alpha_k - s_{k-1} }.
    The spent level grows by the crossing mass of the set at which step-down stopped.

    Step-down (paper, Alg. 2 inside Alg. 3; Romano & Wolf 2003). C = undecided comparisons.
    Repeat: if max_{c in C} T_c(observed) > b_k(C), reject the argmax comparison ("larger" if
    agent i's mean is above agent j's, else "smaller"), remove it from C and recompute the
    boundary; else stop. After interim K every comparison still in C is "equal". An agent stops
    needing runs once all comparisons involving it are decided. (No early accept: the paper's
    Alg. 4 and adastop's `beta` are not implemented.)

    Use:
        test = AdaStop(n=5, K=6, alpha=0.05, seed=0)
        while not test.is_finished:
            for name in test.agents_to_run or all_names:   # all names before the 1st call
                scores[name] += train_and_evaluate(name, runs=test.n)
            decisions = test.decide(scores)                # {(agent_i, agent_j): decision}
        test.summary()

    `decide(scores)` takes every score so far per agent: agents still running must have exactly
    n*k scores at interim k; retired agents may have more (extra scores are ignored); scores
    already used must not change. `to_json()` / `from_json()` (and `save` / `load`) store the
    full state, so an interrupted comparison resumes to the same decisions.
    """

    def __init__(self, n: int = 5, K: int = 5, B: int = 10_000, alpha: float = 0.05,
                 comparisons=None, seed: int = 0):
        for name, value, least in (("n", n, 1), ("K", K, 1), ("B", B, 2), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise StatsError(f"{name}: expected an integer >= {least}, got {value!r}")
        if not 0.0 < float(alpha) < 1.0:
            raise StatsError(f"alpha: expected a level in (0, 1), got {alpha!r}")
        self.n, self.K, self.B, self.seed = int(n), int(K), int(B), int(seed)
        self.alpha = float(alpha)
        if comparisons is not None:
            try:
                comparisons = [list(pair) for pair in comparisons]
            except TypeError:
                raise StatsError(f"comparisons: expected a list of pairs, got {comparisons!r}") from None
            for pair in comparisons:
                if len(pair) != 2 or not all(isinstance(a, (str, int, np.integer))
                                             and not isinstance(a, bool) for a in pair):
                    raise StatsError(f"comparisons: {pair!r} is not a pair of agent indices or names")
            comparisons = [[a if isinstance(a, str) else int(a) for a in pair] for pair in comparisons]
        self._requested = comparisons
        self._agents: list[str] | None = None
        self._pairs: list[tuple[int, int]] | None = None
        self._scores: list[np.ndarray] = []
        self._decisions: list[str] = []
        self._decided_at: list[int | None] = []
        self._level_spent = 0.0
        self._interims: list[dict] = []
        self._paths: dict | None = None  # in-memory cache, rebuilt from the state when missing

    # ------------------------------------------------------------------ state queries
    @property
    def agents(self) -> list[str] | None:
        return None if self._agents is None else list(self._agents)

    @property
    def comparisons(self) -> list[tuple[str, str]] | None:
        if self._pairs is None:
            return None
        return [(self._agents[i], self._agents[j]) for i, j in self._pairs]

    @property
    def interim(self) -> int:
        """Number of interims done so far (0 before the first `decide`)."""
        return len(self._interims)

    @property
    def is_finished(self) -> bool:
        return self._pairs is not None and _CONTINUE not in self._decisions

    @property
    def decisions(self) -> dict[tuple[str, str], str]:
        if self._pairs is None:
            return {}
        return dict(zip(self.comparisons, self._decisions))

    @property
    def scores(self) -> dict[str, np.ndarray]:
        """The scores used so far per agent (copies)."""
        if self._agents is None:
            return {}
        return {name: s.copy() for name, s in zip(self._agents, self._scores)}

    @property
    def level_spent(self) -> float:
        return self._level_spent

    @property
    def agents_to_run(self) -> list[str]:
        """Agents that need n more runs before the next `decide` (every agent before the first
        call, which this object cannot name yet: then the list is empty and `agents` is None)."""
        if self._pairs is None:
            return []
        return [self._agents[a] for a in self._active_agents()]

    @property
    def runs_needed(self) -> int:
        """Scores each agent in `agents_to_run` must have at the next `decide`."""
        return self.n * (self.interim + 1)

    def summary(self) -> dict:
        """Means, runs used per agent, and per comparison its decision and the interim of it."""
        if self._pairs is None:
            return {"interim": 0, "finished": False, "agents": {}, "comparisons": [],
                    "interims": []}
        agents = {}
        for name, s in zip(self._agents, self._scores):
            agents[name] = {"runs": int(s.size),
                            "mean": float(s.mean()) if s.size else None,
                            "std": float(s.std(ddof=1)) if s.size > 1 else None}
        comps = []
        for c, (i, j) in enumerate(self._pairs):
            si, sj = self._scores[i], self._scores[j]
            comps.append({
                "agents": (self._agents[i], self._agents[j]),
                "decision": self._decisions[c],
                "interim": self._decided_at[c],
                "mean_diff": float(si.mean() - sj.mean()) if si.size and sj.size else None,
            })
        interims = [{key: rec[key] for key in ("interim", "paths", "exact", "level",
                                                "boundary", "level_spent", "rejected")}
                    for rec in self._interims]
        return {"interim": self.interim, "finished": self.is_finished, "n": self.n, "K": self.K,
                "B": self.B, "alpha": self.alpha, "agents": agents, "comparisons": comps,
                "interims": interims}

    # ------------------------------------------------------------------ main step
    def decide(self, scores) -> dict[tuple[str, str], str]:
        """Run the next interim on `scores` ({agent: every score so far}); return decisions."""
        if not isinstance(scores, Mapping):
            raise StatsError(f"scores: expected a mapping {{agent: scores}}, got {type(scores).__name__}")
        first = self._agents is None
        agents, pairs = self._setup(list(scores)) if first else (self._agents, self._pairs)
        missing = [a for a in agents if a not in scores]
        extra = [a for a in scores if a not in agents]
        if missing or extra:
            raise StatsError(f"scores: agents differ from the first interim's {agents} "
                             f"(missing {missing}, unknown {extra})")
        if self.is_finished:
            return self.decisions
        k = self.interim + 1
        if k > self.K:
            raise StatsError(f"AdaStop state: {self.interim} interims done (K={self.K}) but comparisons "
                             "are still undecided; the state is corrupt")
        active = (sorted({a for pair in pairs for a in pair}) if first else self._active_agents())
        fresh = {}
        for idx, name in enumerate(agents):
            arr = as_score_vector(scores[name], f"scores[{name!r}]")
            old = self._scores[idx] if not first else np.empty(0)
            if idx in active and arr.size != self.n * k:
                raise StatsError(f"scores[{name!r}]: expected {self.n * k} scores at interim {k} "
                                 f"({self.n} per interim), got {arr.size}")
            if arr.size < old.size:
                raise StatsError(f"scores[{name!r}]: {arr.size} scores, fewer than the "
                                 f"{old.size} already used")
            if not np.array_equal(arr[:old.size], old):
                raise StatsError(f"scores[{name!r}]: the first {old.size} scores differ from "
                                 "those used at earlier interims")
            fresh[idx] = arr
        if first:  # commit the set-up only once the first scores are known to be valid
            self._agents, self._pairs = agents, pairs
            self._scores = [np.empty(0) for _ in agents]
            self._decisions = [_CONTINUE] * len(pairs)
            self._decided_at = [None] * len(pairs)
        for idx in active:
            self._scores[idx] = fresh[idx].copy()

        self._ensure_paths(k - 1)
        self._add_block(k, active)
        record = self._step_down(k, active)
        self._interims.append(record)
        if not self.is_finished:
            self._prune(record)
        return self.decisions

    # ------------------------------------------------------------------ internals
    def _setup(self, names: list) -> tuple[list[str], list[tuple[int, int]]]:
        """Agent names and comparison pairs (indices) for the first interim's agents."""
        if len(names) < 2:
            raise StatsError(f"scores: AdaStop needs at least 2 agents, got {names}")
        for name in names:
            if not isinstance(name, str):
                raise StatsError(f"scores: agent names must be strings, got {name!r}")
        index = {name: i for i, name in enumerate(names)}
        if self._requested is None:
            pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
        else:
            pairs = []
            for pair in self._requested:
                ij = []
                for a in pair:
                    if isinstance(a, str):
                        if a not in index:
                            raise StatsError(f"comparisons: unknown agent {a!r} (agents: {names})")
                        ij.append(index[a])
                    else:
                        if not 0 <= a < len(names):
                            raise StatsError(f"comparisons: agent index {a} out of range for "
                                             f"{len(names)} agents")
                        ij.append(a)
                if ij[0] == ij[1]:
                    raise StatsError(f"comparisons: {pair!r} compares an agent with itself")
                if tuple(ij) in pairs or tuple(ij[::-1]) in pairs:
                    raise StatsError(f"comparisons: {pair!r} is listed twice")
                pairs.append(tuple(ij))
            if not pairs:
                raise StatsError("comparisons: empty list")
        return list(names), pairs

    def _active_agents(self) -> list[int]:
        live = set()
        for c, (i, j) in enumerate(self._pairs):
            if self._decisions[c] == _CONTINUE:
                live.update((i, j))
        return sorted(live)

    def _null_statistic(self, diff: np.ndarray) -> np.ndarray:
        """Permuted statistic from signed permuted differences: two-sided, |.| (paper)."""
        return np.abs(diff)

    def _block_sums(self, k: int, active: list[int], deals: np.ndarray) -> np.ndarray:
        n = self.n
        pooled = np.concatenate([self._scores[a][(k - 1) * n:k * n] for a in active])
        sums = pooled[deals].reshape(deals.shape[0], len(active), n).sum(axis=2)
        if len(active) == len(self._agents):
            return sums
        full = np.zeros((deals.shape[0], len(self._agents)))
        full[:, active] = sums
        return full

    def _sampled_block(self, k: int, active: list[int], rows: np.ndarray) -> np.ndarray:
        deals = _sampled_assignments(self.seed, k, len(active), self.n, self.B)
        sums = self._block_sums(k, active, deals)
        return sums if rows.size == self.B else sums[rows]

    def _add_block(self, k: int, active: list[int]) -> None:
        """Extend every surviving path with the deals of block k (exact or sampled)."""
        paths = self._paths
        count = _assignment_count(len(active), self.n)
        if paths["exact"] and paths["total"] * count <= self.B:
            sums = self._block_sums(k, active, _enumerated_assignments(len(active), self.n))
            cum = (paths["cum"][:, None, :] + sums[None, :, :]).reshape(-1, len(self._agents))
            self._paths = {"exact": True, "total": paths["total"] * count, "cum": cum,
                           "rows": None, "blocks": k}
        elif paths["exact"]:
            # Too many paths from now on: switch to B sampled paths, replaying earlier blocks
            # (with their pruning) on the sampled deals.
            rows = np.arange(self.B)
            self._paths = {"exact": False, "total": self.B, "rows": rows, "blocks": 0,
                           "cum": np.zeros((self.B, len(self._agents)))}
            for m in range(1, k + 1):
                act = active if m == k else self._interims[m - 1]["active_agents"]
                self._paths["cum"] += self._sampled_block(m, act, self._paths["rows"])
                self._paths["blocks"] = m
                if m < k:
                    self._prune(self._interims[m - 1])
        else:
            paths["cum"] = paths["cum"] + self._sampled_block(k, active, paths["rows"])
            paths["blocks"] = k

    def _prune(self, record: dict) -> None:
        """Drop the paths that would have stopped at the record's interim."""
        final = record["final"]
        if not final:
            return
        stat = self._permuted(self._paths["cum"], final).max(axis=1)
        keep = stat <= record["boundary"]
        assert keep[0], "the observed path cannot be pruned"
        self._paths["cum"] = self._paths["cum"][keep]
        if self._paths["rows"] is not None:
            self._paths["rows"] = self._paths["rows"][keep]

    def _permuted(self, cum: np.ndarray, comps: list[int]) -> np.ndarray:
        i = [self._pairs[c][0] for c in comps]
        j = [self._pairs[c][1] for c in comps]
        return self._null_statistic(cum[:, i] - cum[:, j])

    def _ensure_paths(self, blocks: int) -> None:
        if self._paths is not None and self._paths["blocks"] == blocks:
            return
        self._paths = {"exact": True, "total": 1, "cum": np.zeros((1, len(self._agents))),
                       "rows": None, "blocks": 0}
        for m in range(1, blocks + 1):
            record = self._interims[m - 1]
            self._add_block(m, record["active_agents"])
            self._prune(record)

    @staticmethod
    def _boundary(values: np.ndarray, allowed: int) -> tuple[float, int]:
        """Smallest value b among `values` with #{values > b} <= allowed, and that count."""
        alive = values.size
        if allowed >= alive:
            b = 0.0
        else:
            b = float(np.partition(values, alive - allowed - 1)[alive - allowed - 1])
        return b, int(np.count_nonzero(values > b))

    def _step_down(self, k: int, active: list[int]) -> dict:
        paths = self._paths
        total = paths["total"]
        current = [c for c, d in enumerate(self._decisions) if d == _CONTINUE]
        stats = self._permuted(paths["cum"], current)          # (alive paths, comparisons)
        observed_signed = np.array([paths["cum"][0, self._pairs[c][0]]
                                    - paths["cum"][0, self._pairs[c][1]] for c in current])
        observed = np.abs(observed_signed)
        level = self.alpha * k / self.K
        allowed = int(math.floor((level - self._level_spent) * total + 1e-9))
        remaining = list(range(len(current)))
        steps, rejected = [], []
        boundary, crossing = None, 0
        while remaining:
            boundary, crossing = self._boundary(stats[:, remaining].max(axis=1), allowed)
            col = remaining[int(np.argmax(observed[remaining]))]
            steps.append({"comparisons": [current[r] for r in remaining], "boundary": boundary})
            if observed[col] <= boundary:
                break
            c = current[col]
            self._decisions[c] = _LARGER if observed_signed[col] > 0 else _SMALLER
            self._decided_at[c] = k
            rejected.append(c)
            remaining.remove(col)
        final = [current[r] for r in remaining]
        self._level_spent += crossing / total
        if k == self.K:
            for c in final:
                self._decisions[c] = _EQUAL
                self._decided_at[c] = k
        return {
            "interim": k,
            "active_agents": list(active),
            "paths": int(total),
            "alive_paths": int(paths["cum"].shape[0]),
            "exact": bool(paths["exact"]),
            "level": level,
            "steps": steps,
            "rejected": rejected,
            "final": final,
            "boundary": boundary if final else None,
            "level_spent": self._level_spent,
        }

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        state = {
            "format": _FORMAT,
            "config": {"n": self.n, "K": self.K, "B": self.B, "alpha": self.alpha,
                       "seed": self.seed, "comparisons": self._requested},
            "agents": self._agents,
            "pairs": None if self._pairs is None else [list(p) for p in self._pairs],
            "scores": [s.tolist() for s in self._scores],
            "decisions": self._decisions,
            "decided_at": self._decided_at,
            "level_spent": self._level_spent,
            "interims": self._interims,
        }
        return json.dumps(state)

    @classmethod
    def from_json(cls, text: str) -> "AdaStop":
        try:
            state = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise StatsError(f"AdaStop state: not valid JSON ({exc})") from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise StatsError(f"AdaStop state: expected format {_FORMAT!r}")
        try:
            cfg = state["config"]
            test = cls(n=cfg["n"], K=cfg["K"], B=cfg["B"], alpha=cfg["alpha"],
                       comparisons=cfg["comparisons"], seed=cfg["seed"])
            if state["agents"] is not None:
                test._agents = [str(a) for a in state["agents"]]
                test._pairs = [(int(i), int(j)) for i, j in state["pairs"]]
                test._scores = [np.asarray(s, dtype=np.float64) for s in state["scores"]]
                test._decisions = [str(d) for d in state["decisions"]]
                test._decided_at = list(state["decided_at"])
                test._level_spent = float(state["level_spent"])
                test._interims = list(state["interims"])
                sizes = {len(test._scores), len(test._agents)}
                if len(sizes) != 1 or len(test._decisions) != len(test._pairs):
                    raise ValueError("inconsistent lengths")
        except (KeyError, TypeError, ValueError) as exc:
            raise StatsError(f"AdaStop state: corrupt ({type(exc).__name__}: {exc})") from None
        return test

    def save(self, path) -> None:
        """Write the state as JSON, atomically (temporary file, then rename)."""
        from drlbench.records import atomic_write

        atomic_write(Path(path), self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path) -> "AdaStop":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise StatsError(f"AdaStop state {path}: cannot read ({exc.strerror or exc})") from None
        return cls.from_json(text)

    def __repr__(self) -> str:
        return (f"AdaStop(n={self.n}, K={self.K}, B={self.B}, alpha={self.alpha}, "
                f"seed={self.seed}, interim={self.interim}, finished={self.is_finished})")
