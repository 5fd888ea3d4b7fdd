"""Peer parity: drlbench BC, TD3+BC, IQL and PRDC vs d3rlpy 2.8.1's, side by side on one D4RL file.

Both libraries learn from the same D4RL-layout HDF5 file (default: the offline-classic task
`pendulum-medium-replay`, $DRLBENCH_DATA/pendulum-medium-replay.hdf5), read with
`d4rl.qlearning_dataset` semantics (time-outs end episodes and are not terminals), with drlbench's
preset hyperparameters (agents/<agent>.toml) mapped onto d3rlpy's configs (see
benchmarks/_d3rlpy_worker.py `make_algo`: the same learning rates, batch, gamma, tau, networks,
state standardisation, reward scaling, cosine actor schedule for IQL, PRDC's alpha and beta
(its neighbour search on one core); dataset actions mapped to
[-1, 1] with the environment's bounds, MinMaxActionScaler on d3rlpy's side). A run's score is
its final evaluation: the mean undiscounted return of 10 episodes of the deterministic policy,
episode k of seed s reset with seed 10**9 + 1000 s + k (drlbench: its torch-native Pendulum-v1;
d3rlpy: gymnasium 1.0.0's).

d3rlpy 2.8.1 pins gymnasium 1.0.0, so it runs in its own virtual environment (created here on
first use: `python -m venv`, then torch at drlbench's version first, then d3rlpy 2.8.1 and h5py),
one subprocess per run (benchmarks/_d3rlpy_worker.py); d3rlpy's runs are written as run records
(OUT/<task>/d3rlpy-<agent>/seed_<s>/), drlbench's are trained and reused through
drlbench.compare.Scores, so `drlbench stats OUT` reads both, and the same command run again
continues where it stopped. The decision is `drlbench compare`'s AdaStop (n runs per interim, at
most K interims; state under OUT/compare/). Then, per agent, gradient steps per second of both
training loops (same batch and networks, one torch thread, no evaluation inside the timed
window), median of alternating repeats.

    DRLBENCH_DATA=/work/data taskset -c 1 .venv/bin/python benchmarks/offline_vs_d3rlpy.py \
        --agents td3_bc,bc,iql --out runs/offline_vs_d3rlpy

Runs one process at a time (this one, or the d3rlpy worker it waits for), one thread each.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from drlbench import compare  # noqa: E402
from drlbench.errors import UsageError  # noqa: E402
from drlbench.records import RunRecord, atomic_write, host, run_dir  # noqa: E402
from drlbench.stats import AdaStop  # noqa: E402

D3RLPY_VERSION = "2.8.1"
D3RLPY_ALGOS = {"bc": "BC", "td3_bc": "TD3PlusBC", "iql": "IQL", "prdc": "PRDC"}
WORKER = Path(__file__).resolve().with_name("_d3rlpy_worker.py")
DEFAULT_VENV = Path(__file__).resolve().parents[2] / "venvs" / "d3rlpy"   # beside the repository
EVAL_EPISODES = 10
MAPPING = "offline_vs_d3rlpy/1"   # bump when _d3rlpy_worker.make_algo changes what a setting means


# ----------------------------------------------------------------------------- d3rlpy's venv
def ensure_venv(venv: Path) -> Path:
    """d3rlpy's interpreter, creating the venv (idempotent): torch first, at drlbench's version,
    so pip does not pull another torch build for d3rlpy; then d3rlpy and h5py."""
    python = venv / "bin" / "python"
    probe = f"import d3rlpy, h5py, torch; assert d3rlpy.__version__ == {D3RLPY_VERSION!r}, d3rlpy.__version__"
    if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
        return python
    print(f"creating d3rlpy's virtual environment in {venv} ...", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    for packages in ([torch_pin], [f"d3rlpy=={D3RLPY_VERSION}", "h5py", torch_pin]):
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    subprocess.run([str(python), "-c", probe], check=True)
    return python


def call_worker(python: Path, mode: str, request: dict, log: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
        req.write_text(json.dumps(request), encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        env.pop("PYTHONPATH", None)
        out = open(log, "w", encoding="utf-8") if log else subprocess.DEVNULL
        try:
            proc = subprocess.run([str(python), str(WORKER), mode, "--request", str(req), "--result", str(res)],
                                  stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE, env=env,
                                  text=True)
        finally:
            if log:
                out.close()
        if proc.returncode != 0:
            tail = log.read_text(encoding="utf-8")[-2000:] if log else proc.stderr[-2000:]
            raise RuntimeError(f"d3rlpy worker ({mode}) failed with exit code {proc.returncode}:\n{tail}")
        return json.loads(res.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- contenders
@dataclasses.dataclass(frozen=True)
class D3rlpyVariant:
    """d3rlpy's side in the shape compare.Contender reads of a RunConfig."""

    agent: str          # "d3rlpy 2.8.1 TD3PlusBC"
    label: str          # "d3rlpy-td3_bc"
    env_id: str
    suite: str | None
    steps: int
    eval_every_steps: int
    num_envs: int
    eval_episodes: int
    hyperparameters: dict   # drlbench's, as mapped onto d3rlpy's config

    def hyperparameter_dict(self) -> dict:
        return {**self.hyperparameters, "mapping": MAPPING}


def drlbench_contender(agent: str, env: str, steps: int, eval_every: int, out: Path) -> compare.Contender:
    """drlbench's agent exactly as `drlbench run AGENT --env ENV --steps ...` configures it."""
    from drlbench.cli import build_parser, resolve_variant

    argv = ["run", agent, "--env", env, "--steps", str(steps), "--eval-every", str(eval_every),
            "--eval-episodes", str(EVAL_EPISODES), "--out", str(out), "--resume", "--quiet"]
    return compare.Contender("drlbench", resolve_variant(build_parser().parse_args(argv)))


def d3rlpy_contender(ours: compare.Contender) -> compare.Contender:
    cfg = ours.config
    variant = D3rlpyVariant(f"d3rlpy {D3RLPY_VERSION} {D3RLPY_ALGOS[cfg.agent]}", f"d3rlpy-{cfg.agent}", cfg.env_id,
                            cfg.suite, cfg.steps, cfg.eval_every_steps, 1, cfg.eval_episodes,
                            json.loads(json.dumps(cfg.hyperparameter_dict())))
    return compare.Contender("d3rlpy", variant)


def worker_request(ours: compare.Contender, seed: int, **extra) -> dict:
    """What the worker needs: the drlbench run's dataset, evaluation env, action bounds, settings."""
    from drlbench import envs

    cfg = ours.config
    probe = envs.make(cfg.environment, 1, "cpu")
    try:
        low, high = probe.action_space.low.tolist(), probe.action_space.high.tolist()
    finally:
        probe.close()
    return {"agent": cfg.agent, "hyperparameters": json.loads(json.dumps(cfg.hyperparameter_dict())),
            "dataset": cfg.dataset, "eval_env": cfg.environment.removeprefix("gym:"), "seed": seed,
            "steps": cfg.steps, "eval_every": cfg.eval_every_steps, "eval_episodes": cfg.eval_episodes,
            "action_low": low, "action_high": high, **extra}


class D3rlpyScores:
    """d3rlpy's final scores by seed, as run records (reused when complete and of this identity)."""

    def __init__(self, out: Path, python: Path, ours: compare.Contender):
        self.out, self.python, self.ours = Path(out), python, ours
        self.last_result: dict | None = None

    def get(self, contender: compare.Contender, seeds: list[int]) -> tuple[list[float], int]:
        from drlbench.datasets import locate
        from drlbench.datasets._files import file_sha256
        from drlbench.results import RecordError, read_run

        cfg, scores, trained = contender.config, [], 0
        for seed in seeds:
            path = run_dir(self.out, cfg.env_id, cfg.label, seed)
            if (path / "run.json").exists():
                meta = json.loads((path / "run.json").read_text(encoding="utf-8"))
                reason = compare._mismatch(contender.identity, meta)
                if reason is not None:
                    raise UsageError(f"{path} holds another run ({reason}); use another --out or remove it")
                try:
                    scores.append(read_run(path).final)
                    continue
                except RecordError:
                    pass   # unfinished or failed: train again
            dataset = self.ours.config.dataset
            meta = {"agent": cfg.agent, "label": cfg.label, "env_id": cfg.env_id, "suite": cfg.suite, "seed": seed,
                    "batch_seeds": [seed], "steps": cfg.steps, "num_envs": 1, "device": "cpu",
                    "eval_every_steps": cfg.eval_every_steps, "eval_episodes": cfg.eval_episodes,
                    "steps_unit": "gradient steps",
                    "evaluation": "deterministic policy, gymnasium environment, mean undiscounted return",
                    "hyperparameters": contender.config.hyperparameter_dict(), "overrides": {},
                    "library": f"d3rlpy {D3RLPY_VERSION}", "eval_env": self.ours.config.environment,
                    "dataset": {"path": dataset, "name": Path(dataset).stem,
                                "sha256": file_sha256(locate(dataset))},
                    "host": host()}
            record = RunRecord.create(path, meta)
            start = time.perf_counter()
            try:
                result = call_worker(self.python, "train", worker_request(self.ours, seed),
                                     log=path / "worker.log")
            except BaseException as exc:
                record.meta["wall_time_s"] = round(time.perf_counter() - start, 3)
                record.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                              None if isinstance(exc, KeyboardInterrupt) else str(exc).splitlines()[0])
                raise
            self.last_result = result
            record.evaluations = result["evaluations"]
            last = result["evaluations"][-1]
            record.meta.update(steps_done=last["step"], final_score=last["return_mean"],
                               best_score=max(r["return_mean"] for r in result["evaluations"]),
                               versions={**result["versions"], "python": sys.version.split()[0]},
                               d3rlpy_config=result["d3rlpy_config"], fitted=result["fitted"],
                               dataset_transitions=result["dataset"], final_episode_returns=result["final_episode_returns"],
                               train_wall_time_s=result["train_wall_time_s"],
                               wall_time_s=round(time.perf_counter() - start, 3))
            reference = _reference(cfg)
            if reference is not None:
                low, high = reference
                record.meta["final_score_normalized"] = 100.0 * (last["return_mean"] - low) / (high - low)
            record.finish("completed")
            scores.append(read_run(path).final)
            trained += 1
        return scores, trained


def _reference(cfg):
    from drlbench.config import get_suite

    return get_suite(cfg.suite).reference(cfg.env_id) if cfg.suite else None


def run_adastop(found, sources, out: Path, n: int, K: int, alpha: float, B: int, seed: int) -> AdaStop:
    """compare.run_compare's interim loop, with one score source per contender."""
    settings = compare.comparison_settings(found, n, K, alpha, B, seed)
    path = compare.state_path(out, found)
    test = compare.load_state(path, settings) or AdaStop(n=n, K=K, B=B, alpha=alpha, seed=seed)
    while not test.is_finished:
        k = test.interim + 1
        running = test.agents_to_run if test.agents is not None else [c.name for c in found]
        batch, notes = {}, []
        for c in found:
            if c.name not in running:
                batch[c.name] = test.scores[c.name]
                continue
            scores, trained = sources[c.name].get(c, list(range(n * k)))
            batch[c.name] = scores
            notes.append(f"{c.name} seeds 0-{n * k - 1} ({trained} trained)")
        test.decide(batch)
        compare.save_state(path, settings, test)
        decided = [f"{a} vs {b}: {d}" for (a, b), d in test.decisions.items()]
        print(f"interim {k}/{K}: {'; '.join(notes)} -> {', '.join(decided)}", file=sys.stderr, flush=True)
    return test


# ----------------------------------------------------------------------------- checks
def data_check(ours: compare.Contender, meta: dict | None) -> list[str]:
    """What drlbench computes from the file vs what d3rlpy fitted from it (same file, same rows?)."""
    from drlbench.datasets import load
    from drlbench.loops.offline import STATE_STD_EPS, return_range

    data = load(ours.config.dataset)
    hp = ours.config.hyperparameter_dict()
    if meta is None:
        return [f"transitions: drlbench {data.size}"]
    fitted, theirs_data = meta["fitted"], meta["dataset_transitions"]
    lines = [f"transitions: drlbench {data.size}, d3rlpy {theirs_data['transitions']} "
             f"({theirs_data['episodes']} episodes, {theirs_data['terminated_episodes']} terminated)"]
    if "obs_mean" in fitted:
        mean, std = data.state_mean_std(STATE_STD_EPS)
        d_mean = np.abs(mean.double().numpy() - np.asarray(fitted["obs_mean"])).max()
        d_std = np.abs(std.double().numpy() - STATE_STD_EPS - np.asarray(fitted["obs_std"])).max()
        lines.append(f"state mean/std: max |drlbench - d3rlpy| = {d_mean:.2e} / {d_std:.2e} (both add eps 1e-3 to std)")
    if "return_max" in fitted and hp.get("normalize_rewards") == "return_range":
        ours_range = return_range(data)
        theirs = fitted["return_max"] - fitted["return_min"]
        lines.append(f"IQL reward scale 1000/(max-min return): drlbench {1000 / ours_range:.6f}, "
                     f"d3rlpy {1000 / theirs:.6f} (range {ours_range:.3f} vs {theirs:.3f})")
    lines.append(f"action bounds used by d3rlpy's MinMaxActionScaler: {fitted['action_min']} .. {fitted['action_max']}")
    return lines


# ----------------------------------------------------------------------------- timing
def drlbench_steps_per_second(ours: compare.Contender, warmup: int, steps: int, seed: int) -> tuple[float, float]:
    """drlbench's offline loop clocked at the end of gradient steps `warmup` and `warmup + steps`
    (before the harness's only evaluations, at step 0 and the last step); also the rate without
    the minibatch draws."""
    from drlbench.harness import Session, train
    from drlbench.loops.offline import DatasetSampler

    clock: dict[int, float] = {}
    sampling = {"time": 0.0, "on": False}
    after_step, sample = Session.after_step, DatasetSampler.sample

    def timed_after_step(self, loop_state):
        if self.step in (warmup, warmup + steps):
            clock[self.step] = time.perf_counter()
            sampling["on"] = self.step == warmup
        after_step(self, loop_state)

    def timed_sample(self, batch_size):
        start = time.perf_counter()
        batch = sample(self, batch_size)
        if sampling["on"]:
            sampling["time"] += time.perf_counter() - start
        return batch

    Session.after_step, DatasetSampler.sample = timed_after_step, timed_sample
    try:
        with tempfile.TemporaryDirectory() as out:
            cfg = dataclasses.replace(ours.config, seeds=(seed,), steps=warmup + steps, eval_every_steps=warmup + steps,
                                      eval_episodes=1, out=Path(out), progress="off")
            train(cfg)
    finally:
        Session.after_step, DatasetSampler.sample = after_step, sample
    elapsed = clock[warmup + steps] - clock[warmup]
    return steps / elapsed, steps / (elapsed - sampling["time"])


def timing(python: Path, ours: compare.Contender, warmup: int, steps: int, repeats: int) -> dict:
    rates = {"drlbench": [], "d3rlpy": [], "drlbench_update": [], "d3rlpy_update": []}
    for repeat in range(repeats):
        res = call_worker(python, "time", worker_request(ours, repeat, steps=steps, warmup=warmup))
        rates["d3rlpy"].append(res["steps_per_second"])
        rates["d3rlpy_update"].append(res["update_steps_per_second"])
        rate, update_rate = drlbench_steps_per_second(ours, warmup, steps, repeat)
        rates["drlbench"].append(rate)
        rates["drlbench_update"].append(update_rate)
        print(f"timing {ours.config.agent} repeat {repeat}: d3rlpy {res['steps_per_second']:.1f}, "
              f"drlbench {rate:.1f} steps/s", file=sys.stderr, flush=True)
    return rates


# ----------------------------------------------------------------------------- main
def score_rows(test: AdaStop) -> dict[str, np.ndarray]:
    return {name: np.asarray(s, dtype=float) for name, s in test.scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="td3_bc,bc,iql", help="comma-separated, in order (bc, td3_bc, iql, prdc)")
    parser.add_argument("--env", default="pendulum-medium-replay", help="offline task (a dataset name or .hdf5 path)")
    parser.add_argument("--steps", type=int, default=20_000, help="gradient steps per run (offline-classic budget)")
    parser.add_argument("--eval-every", type=int, help="gradient steps between evaluations (default: steps / 10)")
    parser.add_argument("--n", type=int, default=5, help="runs per library per AdaStop interim")
    parser.add_argument("--K", type=int, default=1, help="at most this many interims")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--B", type=int, default=10_000, help="AdaStop permutations")
    parser.add_argument("--timing-steps", type=int, default=2000, help="timed gradient steps per repeat (0: no timing)")
    parser.add_argument("--timing-warmup", type=int, default=200, help="untimed gradient steps before the window")
    parser.add_argument("--timing-repeats", type=int, default=3)
    parser.add_argument("--no-scores", action="store_true", help="only the timing")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"d3rlpy's venv (default {DEFAULT_VENV})")
    parser.add_argument("--out", type=Path, default=Path("runs/offline_vs_d3rlpy"))
    args = parser.parse_args()
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    unknown = [a for a in agents if a not in D3RLPY_ALGOS]
    if unknown:
        parser.error(f"--agents: {unknown[0]!r} is not one of {', '.join(D3RLPY_ALGOS)}")
    eval_every = args.eval_every or max(args.steps // 10, 1)
    if args.steps % eval_every:
        parser.error(f"--steps {args.steps} is not a multiple of --eval-every {eval_every}")
    torch.set_num_threads(1)
    python = ensure_venv(args.venv)
    load_before = os.getloadavg()[0]

    summary: dict[str, dict] = {}
    for agent in agents:
        ours = drlbench_contender(agent, args.env, args.steps, eval_every, args.out)
        theirs = d3rlpy_contender(ours)
        entry = summary.setdefault(agent, {"labels": (ours.config.label, theirs.config.label)})
        if not args.no_scores:
            found = [ours, theirs]
            d3 = D3rlpyScores(args.out, python, ours)
            sources = {ours.name: compare.Scores(args.out, [ours]), theirs.name: d3}
            test = run_adastop(found, sources, args.out, args.n, args.K, args.alpha, args.B, seed=0)
            record = run_dir(args.out, theirs.config.env_id, theirs.config.label, 0) / "run.json"
            meta = json.loads(record.read_text(encoding="utf-8")) if record.exists() else None
            entry.update(test=test, found=found, checks=data_check(ours, meta))
        if args.timing_steps:
            entry["timing"] = timing(python, ours, args.timing_warmup, args.timing_steps, args.timing_repeats)
    report(summary, args, eval_every, load_before)


def report(summary: dict, args, eval_every: int, load_before: float) -> None:
    from drlbench.stats import probability_of_improvement

    print(f"\n# drlbench vs d3rlpy {D3RLPY_VERSION} on {args.env}: {args.steps} gradient steps, evaluation every "
          f"{eval_every} ({EVAL_EPISODES} episodes, deterministic policy), one torch thread (torch {torch.__version__}); "
          f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    table = []
    if not args.no_scores:
        print("| agent | library | runs | final return mean ± std | per seed | AdaStop (n=%d, K=%d, alpha=%g) |"
              % (args.n, args.K, args.alpha))
        print("|---|---|---|---|---|---|")
        for agent, entry in summary.items():
            test = entry["test"]
            scores = score_rows(test)
            (word,) = test.decisions.values()
            verdict = {"equal": "equal", "larger": "drlbench > d3rlpy", "smaller": "drlbench < d3rlpy",
                       "continue": "undecided"}[word]
            for name, s in scores.items():
                label = dict(zip(("drlbench", "d3rlpy"), entry["labels"]))[name]
                print(f"| {agent} | {name} (`{label}`) | {s.size} | {s.mean():.1f} ± {s.std(ddof=1):.1f} | "
                      f"{', '.join(f'{x:.0f}' for x in s)} | {verdict if name == 'drlbench' else ''} |")
                table += [[agent, name, label, seed, x] for seed, x in enumerate(s)]
        print()
        for agent, entry in summary.items():
            scores = score_rows(entry["test"])
            poi = probability_of_improvement(scores["drlbench"][:, None], scores["d3rlpy"][:, None], seed=0)
            print(f"{agent}: P(drlbench > d3rlpy) = {poi.point:.2f}, 95% CI [{poi.lower:.2f}, {poi.upper:.2f}]; "
                  + "; ".join(entry["checks"]))
        print()
        for agent, entry in summary.items():
            print(compare.decision_table(entry["test"], entry["found"]), "\n")
    if args.timing_steps:
        print(f"Gradient steps per second ({args.timing_steps} steps after {args.timing_warmup} untimed, batch 256, "
              f"256-256 networks, one thread, median of {args.timing_repeats} alternating repeats; full training-loop "
              f"step = minibatch draw + update; 'update only' subtracts the time spent drawing minibatches)\n")
        print("| agent | drlbench steps/s | d3rlpy steps/s | ratio | drlbench update only | d3rlpy update only | ratio |")
        print("|---|---|---|---|---|---|---|")
        for agent, entry in summary.items():
            r = {k: statistics.median(v) for k, v in entry["timing"].items()}
            print(f"| {agent} | {r['drlbench']:.1f} | {r['d3rlpy']:.1f} | {r['drlbench'] / r['d3rlpy']:.2f}x | "
                  f"{r['drlbench_update']:.1f} | {r['d3rlpy_update']:.1f} | "
                  f"{r['drlbench_update'] / r['d3rlpy_update']:.2f}x |")
        print("\nrepeats: " + "; ".join(f"{agent} " + ", ".join(f"{k} [{', '.join(f'{x:.1f}' for x in v)}]"
                                                                  for k, v in entry["timing"].items())
                                        for agent, entry in summary.items()))
    out = Path(args.out) / "offline_vs_d3rlpy"
    out.mkdir(parents=True, exist_ok=True)
    if table:
        with open(out / f"{args.env}_scores.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["agent", "library", "label", "seed", "final_return"])
            writer.writerows(table)
        print(f"\nscores: {out / f'{args.env}_scores.csv'}")
    if args.timing_steps:
        atomic_write(out / f"{args.env}_timing.json",
                     (json.dumps({a: e["timing"] for a, e in summary.items()}, indent=1) + "\n").encode())


if __name__ == "__main__":
    try:
        main()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
