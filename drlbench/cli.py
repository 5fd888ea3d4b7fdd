"""`drlbench`: the command line. Bad input -> one line on stderr, exit code 2, no traceback."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from drlbench.errors import UsageError


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) and exit with code 2."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}")


def positive_int(text: str) -> int:
    try:
        value = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0 or value != float(text):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_seeds(text: str) -> list[int]:
    """'3' -> [3]; '0-4' -> [0..4]; '0,2,7' -> [0, 2, 7]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0-4 or 0,2,7, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct non-negative seeds, got {text!r}")
    return seeds


def build_parser() -> Parser:
    parser = Parser(prog="drlbench", description="Deep-RL agents, one harness, statistics you can defend.")
    from drlbench import __version__

    parser.add_argument("--version", action="version", version=f"drlbench {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser, required=True)

    run = verbs.add_parser("run", help="train an agent on an environment and record the run",
                           description="Train AGENT on ENV for one or more seeds; each seed gets a run record "
                                       "in OUT/<env>/<label>/seed_<seed>/.")
    run.add_argument("agent", help="agent name (see `drlbench list agents`)")
    run.add_argument("--env", required=True, help="environment: short name (HalfCheetah) or full ID (HalfCheetah-v5)")
    run.add_argument("--steps", type=positive_int, help="environment steps per seed (default: the suite's budget)")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="one seed (default 0)")
    seeds.add_argument("--seeds", type=parse_seeds, help="several seeds: 0-4 or 0,2,7")
    run.add_argument("--batched", action="store_true",
                     help="train all seeds as one batched computation (a population); one record per seed")
    run.add_argument("--jobs", type=positive_int, default=1, help="unbatched seeds run in this many processes")
    run.add_argument("--num-envs", type=positive_int, default=1, help="parallel environments per seed")
    run.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    run.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads per process (default 1)")
    run.add_argument("--eval-every", type=positive_int, help="environment steps between evaluations")
    run.add_argument("--eval-episodes", type=positive_int, help="episodes per evaluation")
    run.add_argument("--out", type=Path, default=Path("runs"), help="directory for run records (default runs/)")
    run.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                     help="override a preset hyperparameter (repeatable)")
    run.add_argument("--tag", help="label for this variant (default: the agent name, plus a hash of --set)")
    run.add_argument("--resume", action="store_true", help="continue interrupted runs from their last checkpoint")
    run.add_argument("--tensorboard", action="store_true", help="also write TensorBoard scalars")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(handler=cmd_run)

    lister = verbs.add_parser("list", help="list agents or environments", description="List what exists.")
    lister.add_argument("what", choices=["agents", "envs"], help="agents or envs")
    lister.set_defaults(handler=cmd_list)
    return parser


# --- run ----------------------------------------------------------------------------------
def resolve_run(args) -> tuple[list, list[int]]:
    """Turn CLI arguments into RunConfigs (one per batch) and the seeds already completed."""
    import torch

    from drlbench import envs
    from drlbench.agents import get_agent
    from drlbench.config import RunConfig, build, load_preset, suite_of
    from drlbench.loops import LOOPS
    from drlbench.records import RunRecord, run_dir

    agent_cls = get_agent(args.agent)
    env_id = envs.resolve(args.env)
    suite = suite_of(env_id)
    loop_config = LOOPS[agent_cls.loop][0]
    (hyperparameters, loop), overrides = build(
        [agent_cls.Config, loop_config], load_preset(agent_cls.name, suite.name if suite else None), args.overrides)
    if args.device != "cpu":
        try:
            device = torch.device(args.device)
        except RuntimeError:
            raise UsageError(f"--device {args.device!r}: choose from cpu, cuda, cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {args.device}: CUDA is not available here; choose from: cpu")
    steps = args.steps or (suite.envs[env_id]["steps"] if suite else None)
    if steps is None:
        raise UsageError(f"--steps is required: {env_id} is in no suite (see `drlbench list envs`)")
    label = args.tag or agent_cls.name
    if overrides and not args.tag:
        digest = hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
        label = f"{agent_cls.name}-{digest}"
    seeds = args.seeds or [args.seed if args.seed is not None else 0]

    todo, done = [], []
    for seed in seeds:
        path = run_dir(args.out, env_id, label, seed)
        if (path / "run.json").exists():
            status = RunRecord.load(path).meta.get("status")
            if status == "completed":
                done.append(seed)
                continue
            if not args.resume:
                raise UsageError(f"{path} exists with status {status!r}; pass --resume to continue it, "
                                 f"or remove the directory")
        todo.append(seed)
    groups = [todo] if args.batched and todo else [[s] for s in todo]
    progress = "off" if args.quiet else ("lines" if args.jobs > 1 and not args.batched else "bar")
    configs = [RunConfig(
        agent=agent_cls.name, label=label, env_id=env_id, suite=suite.name if suite else None,
        seeds=tuple(group), steps=steps, num_envs=args.num_envs, device=args.device,
        eval_every_steps=args.eval_every or (suite.eval_every_steps if suite else 5000),
        eval_episodes=args.eval_episodes or (suite.eval_episodes if suite else 10),
        out=args.out, batched=args.batched, tensorboard=args.tensorboard, progress=progress,
        hyperparameters=hyperparameters, loop=loop, overrides=overrides) for group in groups]
    return configs, done


def _train_one(cfg, resume: bool, threads: int):
    import torch

    from drlbench.harness import train

    torch.set_num_threads(threads)
    return [r.meta for r in train(cfg, resume=resume)]


def cmd_run(args) -> int:
    configs, done = resolve_run(args)
    for seed in done:
        print(f"seed {seed}: already completed, skipped", file=sys.stderr)
    if args.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package: pip install 'drlbench[tensorboard]'") from None
    results = []
    try:
        if args.jobs > 1 and len(configs) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_train_one, cfg, args.resume, args.threads) for cfg in configs]
                for future in futures:
                    results.extend(future.result())
        else:
            for cfg in configs:
                results.extend(_train_one(cfg, args.resume, args.threads))
    except KeyboardInterrupt:
        print("drlbench: interrupted; continue with the same command plus --resume", file=sys.stderr)
        return 130
    except UsageError:
        raise
    except Exception as exc:  # the run record holds the error and error.txt the traceback
        print(f"drlbench: run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for meta in results:
        print(f"{meta['label']} {meta['env_id']} seed {meta['seed']}: final return {meta['final_score']:.2f} "
              f"(best {meta['best_score']:.2f}) after {meta['steps_done']:,} steps, "
              f"{meta['steps_done'] / max(meta['wall_time_s'], 1e-9):.0f} steps/s")
    return 0


# --- list ---------------------------------------------------------------------------------
def cmd_list(args) -> int:
    if args.what == "agents":
        from drlbench.agents import AGENTS

        for name, cls in AGENTS.items():
            print(f"{name:<10} {cls.loop:<11} {cls.summary}")
        return 0
    from drlbench.config import load_suites

    for suite in load_suites().values():
        print(f"{suite.name}: {suite.description} (evaluation: {suite.eval_episodes} episodes every "
              f"{suite.eval_every_steps:,} steps)")
        for env_id, entry in suite.envs.items():
            print(f"  {env_id:<28} {entry['steps']:>10,} steps   random {entry['random_score']:>9.2f}   "
                  f"target {entry['target_score']:>9.2f}")
    print("Any other gymnasium ID works too, with --steps.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except UsageError as exc:
        print(f"drlbench: error: {exc}" if not str(exc).startswith("drlbench") else f"{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
