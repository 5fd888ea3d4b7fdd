"""`drlbench compare A B [C ...] --env E`: AdaStop on real training runs, interim by interim.

At interim k every agent with an undecided comparison needs final scores of seeds 0..n*k-1.
A seed's score comes from a completed run record under --out with the same agent, environment,
step budget, resolved hyperparameters and evaluation protocol (any label: runs made earlier
with `drlbench run ... --tag x` are reused); otherwise the seed is trained through
`drlbench.harness.train` with the configuration `drlbench run` would use (resuming its
checkpoint if an earlier attempt was interrupted). After each interim the AdaStop state is
written atomically as JSON to <out>/compare/<env>/<label>_vs_<label>....json, so the same
command run again continues where it stopped, and once finished just prints the table.

An agent name that labels imported records under --out/<env>/ (`drlbench import`, run.json
`imported_from`) is that agent: its i-th run by seed is its seed i, and drlbench cannot train
more of it. A new comparison with fewer than n*K imported runs of some agent is planned with
the interims the runs allow (K lowered, said on stderr), so it decides with what exists; a
comparison continued after imported runs went missing stops with the decisions so far.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from drlbench.errors import UsageError
from drlbench.results import RecordError, Run, read_run, scan
from drlbench.stats import AdaStop

STATE_FORMAT = "drlbench.compare/1"


@dataclass(frozen=True)
class Contender:
    """One agent of the comparison: its name and the run configuration (seeds unset)."""

    name: str
    config: object  # drlbench.config.RunConfig with seeds=() (an ImportedConfig for imported runs)
    imported: tuple = ()  # the imported Runs, by seed: score i is imported[i].final

    @property
    def identity(self) -> dict:
        """What a reusable run must share with this agent (JSON-normalised)."""
        cfg = self.config
        if self.imported:
            return _jsonable({"agent": cfg.agent, "env_id": cfg.env_id, "imported_from": cfg.source})
        sim = {"sim_env": cfg.sim_env} if getattr(cfg, "sim_env", None) else {}   # a sim-trained run is another agent
        return _jsonable({"agent": cfg.agent, "env_id": cfg.env_id, "steps": cfg.steps,
                          "hyperparameters": cfg.hyperparameter_dict(),
                          "eval_episodes": cfg.eval_episodes, "num_envs": cfg.num_envs, **sim})


@dataclass(frozen=True)
class ImportedConfig:
    """Stands in for a RunConfig: an agent known only from imported run records."""

    agent: str
    label: str
    env_id: str
    source: str   # format and path(s) the records were imported from


def imported_runs(out: Path, env: str, name: str) -> tuple[str | None, tuple, str]:
    """(env_id, imported completed runs labelled `name` sorted by seed, their source) under out/<env>/."""
    from drlbench import envs

    try:
        env_id = envs.resolve(env)
    except UsageError:
        return None, (), ""
    folder = Path(out) / env_id / name
    if not folder.is_dir():
        return env_id, (), ""
    runs, sources = [], set()
    for run in scan(folder)[0]:
        try:
            origin = json.loads((run.path / "run.json").read_text(encoding="utf-8")).get("imported_from")
        except (OSError, ValueError):
            origin = None
        if isinstance(origin, dict) and run.label == name:
            runs.append(run)
            sources.add(f"{origin.get('format')} {origin.get('path')}")
    runs.sort(key=lambda r: r.seed)
    return env_id, tuple(runs), "; ".join(sorted(sources)[:3]) + (" ..." if len(sources) > 3 else "")


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _mismatch(identity: dict, meta: dict) -> str | None:
    """Which key of a run record differs from `identity` (None when the run is reusable)."""
    for key, wanted in identity.items():
        if _jsonable(meta.get(key)) != wanted:
            if key == "hyperparameters" and isinstance(meta.get(key), dict):
                diff = sorted(k for k in set(wanted) | set(meta[key])
                              if _jsonable(meta[key].get(k)) != wanted.get(k))
                return f"hyperparameters differ ({', '.join(diff)})"
            return f"{key} is {meta.get(key)!r}, not {wanted!r}"
    if meta.get("sim_env") and "sim_env" not in identity:
        return f"sim_env is {meta['sim_env']!r}: trained in a simulator"
    return None


def split_overrides(items: list[str], agents: list[str]) -> dict[str, list[str]]:
    """`key=value` applies to every agent, `agent:key=value` to that agent only."""
    per_agent = {name: [] for name in agents}
    for item in items:
        key, sep, value = item.partition("=")
        owner, colon, key = key.rpartition(":")
        if colon and owner not in per_agent:
            raise UsageError(f"--set {item}: {owner!r} is not one of the compared agents "
                             f"({', '.join(agents)})")
        for name in ([owner] if colon else agents):
            per_agent[name].append(f"{key}{sep}{value}")
    return per_agent


def contenders(agents: list[str], env: str, steps: int | None, out: Path,
               overrides: list[str], quiet: bool, sim_env: str | None = None) -> list[Contender]:
    """Each agent's configuration, resolved exactly as `drlbench run` resolves it. `sim_env`
    (`--sim-env`) goes to every agent that interacts with an environment (online and hybrid loops:
    they train in the simulator); agents that learn from the dataset alone are resolved without it."""
    from drlbench.config import resolve

    if len(agents) < 2:
        raise UsageError(f"compare needs at least 2 agents, got {agents}")
    twice = sorted({a for a in agents if agents.count(a) > 1})
    if twice:
        raise UsageError(f"agent {twice[0]!r} is listed twice")
    found = []
    for name, sets in split_overrides(overrides, agents).items():
        env_id, runs, source = imported_runs(out, env, name)
        if runs:
            own = [item for item in overrides if item.partition("=")[0].rpartition(":")[0] == name]
            if own:
                raise UsageError(f"--set {own[0]}: {name} is imported ({source}); drlbench does not train it")
            found.append(Contender(name, ImportedConfig(name, name, env_id, source), runs))
            continue
        found.append(Contender(name, resolve(name, env, sets, steps=steps, out=out,
                                             progress="off" if quiet else "bar",
                                             sim_env=sim_env if sim_env and _interacts(name) else None)))
    labels = [c.config.label for c in found]
    if len(set(labels)) != len(labels):
        raise UsageError(f"agents share a label {labels}; compare different agents")
    return found


def _interacts(agent: str) -> bool:
    """Whether `agent`'s loop steps an environment (so --sim-env applies to it)."""
    from drlbench.agents import get_agent
    from drlbench.loops import get_loop

    return getattr(get_loop(get_agent(agent).loop), "USES_TRAINING_ENV", True)


def state_path(out: Path, contenders_: list[Contender]) -> Path:
    env_id = contenders_[0].config.env_id
    return Path(out) / "compare" / env_id / ("_vs_".join(c.config.label for c in contenders_) + ".json")


def _train(config) -> None:
    """Train one seed in this process (resuming its checkpoint if there is one). Tests replace this."""
    from drlbench.launch import Local, launch

    (outcome,) = launch([config], Local(jobs=1, threads=1), resume=True)
    _raise_unless_completed(outcome)


def _raise_unless_completed(outcome) -> None:
    if outcome.status == "refused":
        raise UsageError(outcome.error)
    if outcome.status == "interrupted":
        raise KeyboardInterrupt
    if outcome.status != "completed":
        raise RuntimeError(f"{outcome.label} seed {outcome.seeds[0]} {outcome.status}: {outcome.error}")


class Scores:
    """Final scores of (agent, seed): reused from matching records or trained on demand."""

    def __init__(self, out: Path, contenders_: list[Contender]):
        self.out = Path(out)
        self.reusable: dict[tuple[str, int], Run] = {}
        self.trained_in_parallel: set[tuple[str, int]] = set()   # by train_all: counted as trained
        env_dir = self.out / contenders_[0].config.env_id
        runs = scan(env_dir)[0] if env_dir.is_dir() else []
        for c in contenders_:
            if c.imported:
                self.reusable.update(((c.name, i), run) for i, run in enumerate(c.imported))
                continue
            identity = c.identity
            for run in sorted(runs, key=lambda r: (r.label != c.config.label, str(r.path))):
                meta = {"agent": run.agent, "env_id": run.env_id, "steps": run.steps,
                        "hyperparameters": run.hyperparameters,
                        "eval_episodes": run.eval_episodes, "num_envs": run.num_envs}
                if _mismatch(identity, meta) is None:
                    self.reusable.setdefault((c.name, run.seed), run)

    def get(self, contender: Contender, seeds: list[int]) -> tuple[list[float], int]:
        """Scores of `seeds` in order, and how many had to be trained."""
        from drlbench.records import run_dir

        scores, trained = [], 0
        for seed in seeds:
            run = self.reusable.get((contender.name, seed))
            if (contender.name, seed) in self.trained_in_parallel:
                self.trained_in_parallel.discard((contender.name, seed))
                trained += 1
            if run is None and contender.imported:
                raise UsageError(f"{contender.name} is imported: drlbench cannot train its run {seed}")
            if run is None:
                cfg = contender.config
                path = run_dir(self.out, cfg.env_id, cfg.label, seed)
                self._check_slot(path, contender)
                _train(dataclasses.replace(cfg, seeds=(seed,)))
                trained += 1
                try:
                    run = read_run(path)
                except RecordError as exc:
                    raise UsageError(f"{path}: training ended without a usable record ({exc})") from None
                self.reusable[(contender.name, seed)] = run
            scores.append(run.final)
        return scores, trained

    def train_all(self, wanted: list[tuple[Contender, list[int]]], launcher) -> None:
        """Train the missing seeds of every contender at once on `launcher` (an interim's runs in
        parallel), so that get() then finds them all."""
        from drlbench.launch import launch
        from drlbench.records import run_dir

        configs = []
        for contender, seeds in wanted:
            cfg = contender.config
            for seed in seeds:
                if contender.imported or (contender.name, seed) in self.reusable:
                    continue
                self._check_slot(run_dir(self.out, cfg.env_id, cfg.label, seed), contender)
                configs.append((contender, dataclasses.replace(cfg, seeds=(seed,), progress="off")))
        outcomes = launch([cfg for _, cfg in configs], launcher, resume=True)
        for outcome in outcomes:
            _raise_unless_completed(outcome)
        for contender, cfg in configs:
            path = run_dir(self.out, cfg.env_id, cfg.label, cfg.seeds[0])
            try:
                self.reusable[(contender.name, cfg.seeds[0])] = read_run(path)
            except RecordError as exc:
                raise UsageError(f"{path}: training ended without a usable record ({exc})") from None
        self.trained_in_parallel.update((c.name, cfg.seeds[0]) for c, cfg in configs)

    @staticmethod
    def _check_slot(path: Path, contender: Contender) -> None:
        """A record already at the training path must be this configuration (to resume it)."""
        if not (path / "run.json").exists():
            return
        try:
            meta = json.loads((path / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        reason = _mismatch(contender.identity, meta) if isinstance(meta, dict) else "unreadable run.json"
        if reason is not None:
            raise UsageError(f"{path} holds another run ({reason}); use another --out or remove it")


def comparison_settings(contenders_: list[Contender], n: int, K: int, alpha: float, B: int, seed: int) -> dict:
    return _jsonable({"agents": [{"name": c.name, "label": c.config.label, **c.identity}
                                 for c in contenders_],
                      "n": n, "K": K, "alpha": alpha, "B": B, "seed": seed})


def load_state(path: Path, settings: dict) -> AdaStop | None:
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"format {state.get('format')!r}")
        old = state["settings"]
        if not isinstance(old, dict):
            raise ValueError("settings are not a JSON object")
        test = AdaStop.from_json(json.dumps(state["adastop"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: unreadable comparison state ({exc}); remove it to start over") from None
    if old != settings:
        what = [k for k in settings if old.get(k) != settings[k]]
        raise UsageError(f"{path} holds this comparison with other settings ({', '.join(what)} differ); "
                         "remove it to start over, or use another --out")
    return test


def save_state(path: Path, settings: dict, test: AdaStop) -> None:
    from drlbench.records import atomic_write

    state = {"format": STATE_FORMAT, "settings": settings, "adastop": json.loads(test.to_json())}
    atomic_write(path, (json.dumps(state, indent=1) + "\n").encode("utf-8"))


def _seed_range(seeds: list[int]) -> str:
    return "none" if not seeds else (f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}")


def run_compare(agents: list[str], env: str, *, n: int = 5, K: int = 5, alpha: float = 0.05,
                B: int = 10_000, steps: int | None = None, out: Path = Path("runs"),
                overrides: list[str] = (), seed: int = 0, quiet: bool = False,
                echo=print, launcher=None, sim_env: str | None = None) -> tuple[AdaStop, list[Contender]]:
    """Run (or continue) the comparison; returns the AdaStop test and the agents. With a
    `launcher` (drlbench.launch: a process pool or Ray) each interim's missing runs train in
    parallel on it; without one they train one after another in this process."""
    found = contenders(list(agents), env, steps, Path(out), list(overrides), quiet, sim_env)
    path = state_path(out, found)
    K = _interims_possible(found, n, K, path, echo)
    settings = comparison_settings(found, n, K, alpha, B, seed)
    test = load_state(path, settings)
    if test is None:
        test = AdaStop(n=n, K=K, B=B, alpha=alpha, seed=seed)
    elif not test.is_finished:
        echo(f"resuming {path} after interim {test.interim}")
    scores = Scores(out, found)
    while not test.is_finished:
        k = test.interim + 1
        running = test.agents_to_run if test.agents is not None else [c.name for c in found]
        used = test.scores
        short = [c for c in found if c.imported and c.name in running and len(c.imported) < n * k]
        if short:   # checked before training anything for this interim
            c = short[0]
            echo(f"stopped before interim {k}: {c.name} is imported with {len(c.imported)} runs and interim {k} "
                 f"needs {n * k}; drlbench cannot train it, so the decisions so far stand (import more runs of "
                 "it and run the same command again to continue)")
            break
        if launcher is not None:
            scores.train_all([(c, list(range(n * k))) for c in found if c.name in running], launcher)
        batch, notes = {}, []
        for c in found:
            if c.name not in running:
                batch[c.name] = used[c.name]
                continue
            before = used.get(c.name, [])
            old, trained_old = scores.get(c, list(range(len(before))))
            changed = [s for s, (a, b) in enumerate(zip(old, before)) if a != b]
            if changed:  # checked before training anything new
                raise UsageError(f"{c.name} seed {changed[0]}: final score {old[changed[0]]!r} differs from the "
                                 f"{before[changed[0]]!r} used at an earlier interim (record changed or retrained)")
            new, trained = scores.get(c, list(range(len(before), n * k)))
            batch[c.name] = old + new
            notes.append(f"{c.name} seeds {_seed_range(list(range(n * k)))} "
                         + ("(imported runs)" if c.imported else f"({trained_old + trained} trained)"))
        test.decide(batch)
        save_state(path, settings, test)
        decided = [f"{a} vs {b}: {d}" for (a, b), d in test.decisions.items()]
        echo(f"interim {k}/{K}: {'; '.join(notes)} -> {', '.join(decided)}")
    return test, found


def _interims_possible(found: list[Contender], n: int, K: int, path: Path, echo) -> int:
    """K, lowered for a new comparison to the interims the imported runs allow (a continued one
    keeps the K it was started with: it stops with the decisions so far when runs are missing)."""
    imported = [c for c in found if c.imported]
    if not imported:
        return K
    fewest = min(imported, key=lambda c: len(c.imported))
    allowed = len(fewest.imported) // n
    if allowed >= K:
        return K
    try:
        started = json.loads(path.read_text(encoding="utf-8"))["settings"]["K"]
    except (OSError, ValueError, KeyError, TypeError):
        started = None
    if isinstance(started, int) and started <= K:
        return started
    if allowed == 0:
        raise UsageError(f"{fewest.name} is imported with {len(fewest.imported)} run(s) on "
                         f"{fewest.config.env_id}; drlbench cannot train it and one interim needs n={n}: "
                         f"pass --n {len(fewest.imported)} or fewer, or import more runs")
    echo(f"{fewest.name} is imported with {len(fewest.imported)} runs and drlbench cannot train it: at most "
         f"K={allowed} interim(s) of n={n} instead of K={K}, so the comparison decides with the runs that exist")
    return allowed


_WORDS = {"larger": ">", "smaller": "<", "equal": "=", "continue": "?"}


def decision_table(test: AdaStop, contenders_: list[Contender]) -> str:
    """Plain-text report: settings, per-agent runs and means, per-comparison decisions."""
    summary = test.summary()
    labels = {c.name: c.config.label for c in contenders_}
    env_id = contenders_[0].config.env_id
    lines = [f"AdaStop on {env_id}: n={test.n} runs per interim, at most K={test.K} interims, "
             f"alpha={test.alpha}, B={test.B:,} permutations, seed {test.seed}; "
             f"{'finished' if test.is_finished else 'not finished'} after interim {test.interim}",
             "score = final evaluation return (mean over evaluation episodes) of each run", ""]
    for c in contenders_:
        if c.imported:
            lines.insert(-1, f"{c.name}: {len(c.imported)} imported runs, not trained by drlbench "
                             f"(from {c.config.source})")
    rows = [("agent", "label", "runs", "mean", "std")]
    for name, info in summary["agents"].items():
        rows.append((name, labels.get(name, name), str(info["runs"]),
                     "-" if info["mean"] is None else f"{info['mean']:.2f}",
                     "-" if info["std"] is None else f"{info['std']:.2f}"))
    lines += text_table(rows, right=(2, 3, 4))
    lines.append("")
    rows = [("comparison", "decision", "interim", "mean difference")]
    for comp in summary["comparisons"]:
        a, b = comp["agents"]
        word = comp["decision"]
        verdict = f"{a} {_WORDS[word]} {b}" if word != "continue" else "undecided"
        rows.append((f"{a} vs {b}", f"{verdict} ({word})",
                     "-" if comp["interim"] is None else str(comp["interim"]),
                     "-" if comp["mean_diff"] is None else f"{comp['mean_diff']:+.2f}"))
    lines += text_table(rows, right=(2, 3))
    lines.append("")
    lines.append("larger/smaller: the first agent's mean score is higher/lower (family-wise error "
                 f"<= {test.alpha}); equal: no difference found within {test.n * test.K} runs per agent")
    return "\n".join(lines)


def text_table(rows, right=()) -> list[str]:
    """Rows of strings as aligned plain-text lines (columns in `right` right-aligned)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
