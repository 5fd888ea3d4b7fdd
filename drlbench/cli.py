"""`drlbench`: the command line. Bad input -> one line on stderr, exit code 2, no traceback."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from drlbench.errors import UsageError
from drlbench.launch import same_run_or_refuse  # noqa: F401  (moved there; kept importable from here)


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


class HelpAgent(argparse.Action):
    """`--help-agent AGENT`: print the agent's hyperparameters (defaults, domains, sources) and exit."""

    def __call__(self, parser, namespace, value, option_string=None):
        from drlbench.config import describe_agent

        print(describe_agent(value))
        parser.exit(0)


def build_parser() -> Parser:
    parser = Parser(prog="drlbench", description="Deep-RL agents, one harness, statistics you can defend.")
    from drlbench import __version__

    parser.add_argument("--version", action="version", version=f"drlbench {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser, required=True)

    run = verbs.add_parser("run", help="train an agent on an environment and record the run",
                           description="Train AGENT on ENV for one or more seeds; each seed gets a run record "
                                       "in OUT/<env>/<label>/seed_<seed>/.")
    run.add_argument("--help-agent", action=HelpAgent, metavar="AGENT",
                     help="show AGENT's hyperparameters with defaults, domains and sources, and exit")
    run.add_argument("agent", help="agent name (see `drlbench list agents`)")
    run.add_argument("--env", help="environment: short name (HalfCheetah) or full ID (HalfCheetah-v5); for offline "
                                   "agents a dataset name (pendulum-medium-replay, hopper-medium-v2)")
    run.add_argument("--dataset", metavar="PATH", help="offline agents: a D4RL-layout .hdf5 file or a Minari dataset "
                                                       "directory (its environment from the file, or --env)")
    run.add_argument("--sim-env", metavar="ENV?NAME=VALUE,...",
                     help="train by interacting with this simulator, evaluate in the real --env (a dynamics gap): "
                          "the ID with changed physics, quoted, e.g. 'Pendulum-v1?g=15' (torch-native classic "
                          "control: Pendulum g, m, l; CartPole gravity, masscart, masspole, length, force_mag; "
                          "MountainCar force, gravity; MountainCarContinuous power, gravity; Acrobot g, link_*) or "
                          "'HalfCheetah-v5?gravity=2,friction=0.3,mass=1,joint_noise=0.1' (gymnasium MuJoCo: "
                          "multipliers of the model's gravity, geom friction, body masses, and the std of "
                          "N(0, s^2) noise on actions). Required by h2o (--env: its real dataset); with an online "
                          "agent (sac) it trains in the simulator alone. Recorded in run.json (sim_env, sim_physics, "
                          "real_env)")
    run.add_argument("--steps", type=positive_int, help="environment steps per seed (default: the suite's budget)")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="one seed (default 0)")
    seeds.add_argument("--seeds", type=parse_seeds, help="several seeds: 0-4 or 0,2,7")
    run.add_argument("--batched", action="store_true",
                     help="train all seeds as one batched computation (a population); one record per seed")
    run.add_argument("--jobs", type=positive_int, default=1, help="unbatched seeds run in this many processes")
    add_backend_arguments(run)
    run.add_argument("--num-envs", type=positive_int, default=1, help="parallel environments per seed")
    run.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    run.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads per process (default 1)")
    run.add_argument("--eval-every", type=positive_int, help="environment steps between evaluations")
    run.add_argument("--eval-episodes", type=positive_int, help="episodes per evaluation")
    run.add_argument("--out", type=Path, default=Path("runs"), help="directory for run records (default runs/)")
    run.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                     help="override a preset hyperparameter (repeatable)")
    run.add_argument("--preset", type=Path, metavar="FILE",
                     help="read hyperparameters from this preset file instead of agents/AGENT.toml")
    run.add_argument("--tag", help="label for this variant (default: the agent name, plus a hash of --set)")
    run.add_argument("--resume", action="store_true", help="continue interrupted runs from their last checkpoint")
    run.add_argument("--tensorboard", action="store_true", help="also write TensorBoard scalars")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(handler=cmd_run)

    lister = verbs.add_parser("list", help="list agents or environments", description="List what exists.")
    lister.add_argument("what", choices=["agents", "envs"], help="agents or envs")
    lister.add_argument("--verbose", metavar="AGENT", help="with `agents`: AGENT's hyperparameters, defaults, "
                                                           "domains and sources")
    lister.set_defaults(handler=cmd_list)

    stats = verbs.add_parser(
        "stats", help="aggregate scores of run records with bootstrap confidence intervals",
        description="Read the run records under RUNS_DIR and print, per label, the IQM, mean, median and "
                    "optimality gap of normalised final scores with 95% stratified-bootstrap intervals "
                    "(Agarwal et al. 2021), and the final returns per environment. Records that cannot "
                    "be used are listed with the reason.")
    stats.add_argument("runs_dir", type=Path, metavar="RUNS_DIR", help="directory of run records (e.g. runs/)")
    stats.add_argument("--suite", help="use only this suite's environments and reference scores "
                                       "(default: each run's own suite)")
    stats.add_argument("--score", choices=["final", "best"], default="final",
                       help="final: last evaluation's return (default); best: best during training")
    stats.add_argument("--reps", type=positive_int, default=50_000, help="bootstrap replicates (default 50000)")
    stats.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    stats.add_argument("--export", nargs=2, metavar=("FORMAT", "OUT"),
                       help="also write the normalised (runs, tasks) score table: `rliable OUT.npz` (or .json), "
                            "the {label: array} dict rliable takes; tasks in the printed order")
    stats.set_defaults(handler=cmd_stats)

    compare = verbs.add_parser(
        "compare", help="compare agents with AdaStop, training only the seeds it needs",
        description="AdaStop (Mathieu et al. 2024): train n seeds per agent per interim, test all pairs "
                    "with a group-sequential permutation test, stop each agent once its comparisons are "
                    "decided. Matching completed runs under --out are reused; run again to resume.")
    compare.add_argument("agents", nargs="+", metavar="AGENT", help="two or more agents (see `drlbench list agents`)")
    compare.add_argument("--env", required=True, help="environment: short name (Pendulum) or full ID")
    compare.add_argument("--suite", help="check that ENV belongs to this suite")
    compare.add_argument("--n", type=positive_int, default=5, help="runs per agent per interim (default 5)")
    compare.add_argument("--K", type=positive_int, default=5, help="at most this many interims (default 5)")
    compare.add_argument("--alpha", type=float, default=0.05, help="family-wise error level (default 0.05)")
    compare.add_argument("--B", type=positive_int, default=10_000,
                         help="permutation paths when enumeration is too large (default 10000)")
    compare.add_argument("--steps", type=positive_int, help="environment steps per run (default: the suite's budget)")
    compare.add_argument("--out", type=Path, default=Path("runs"), help="directory for run records (default runs/)")
    compare.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                         help="override a hyperparameter of every agent, or AGENT:KEY=VALUE of one agent")
    compare.add_argument("--seed", type=int, default=0, help="seed of the random permutations (default 0)")
    compare.add_argument("--quiet", action="store_true", help="no training progress bars")
    compare.add_argument("--sim-env", metavar="ENV?NAME=VALUE,...",
                         help="a simulator with other physics (e.g. 'Pendulum-v1?g=15'): agents that interact with an "
                              "environment (sac, h2o) train in it, offline agents learn from the dataset alone; "
                              "every agent is evaluated in ENV's real dynamics (as `drlbench run --sim-env`)")
    compare.add_argument("--jobs", type=positive_int, default=1,
                         help="local backend: train each interim's runs in this many processes (default 1)")
    add_backend_arguments(compare)
    compare.set_defaults(handler=cmd_compare)

    sweep = verbs.add_parser(
        "sweep", help="train every (agent, environment, seed) cell of a study, locally or on Ray",
        description="Train every cell of AGENTS x ENVS x SEEDS into OUT/<env>/<label>/seed_<seed>/. Cells "
                    "completed on disk are skipped, interrupted ones resumed from their checkpoints, failed ones "
                    "left alone (--retry-failed reruns them). Ends with a summary table; `drlbench report OUT` "
                    "makes the leaderboard.")
    sweep.add_argument("--agents", nargs="+", required=True, metavar="AGENT",
                       help="agents (see `drlbench list agents`)")
    where = sweep.add_mutually_exclusive_group(required=True)
    where.add_argument("--suite", help="every environment of this suite (see `drlbench list envs`)")
    where.add_argument("--envs", nargs="+", metavar="ENV", help="these environments")
    sweep.add_argument("--seeds", type=parse_seeds, default=[0], help="seeds: 0-4 or 0,2,7 (default 0)")
    sweep.add_argument("--steps", type=positive_int, help="environment steps per seed (default: the suite's budget)")
    sweep.add_argument("--batched", action="store_true",
                       help="train each (agent, env)'s seeds as one batched computation, one cell")
    sweep.add_argument("--jobs", type=positive_int, default=1, help="local backend: cells run in this many processes")
    add_backend_arguments(sweep)
    sweep.add_argument("--threads", type=positive_int, default=1,
                       help="torch CPU threads per cell; on Ray the CPUs each cell asks for (default 1)")
    sweep.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    sweep.add_argument("--eval-every", type=positive_int, help="environment steps between evaluations")
    sweep.add_argument("--eval-episodes", type=positive_int, help="episodes per evaluation")
    sweep.add_argument("--out", type=Path, default=Path("runs"), help="directory for run records (default runs/)")
    sweep.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                       help="override a hyperparameter of every agent, or AGENT:KEY=VALUE of one agent")
    sweep.add_argument("--retry-failed", action="store_true", help="rerun cells whose records say failed")
    sweep.add_argument("--quiet", action="store_true", help="no line per finished cell")
    sweep.set_defaults(handler=cmd_sweep)

    dataset = verbs.add_parser("dataset", help="make and inspect offline datasets (D4RL layout, Minari)",
                               description="Offline datasets: `collect` makes one with drlbench's own agents (the "
                                           "D4RL recipe), `info` describes one, `list` shows the data folder.")
    actions = dataset.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser, required=True)
    collect = actions.add_parser("collect", help="collect a dataset (random, medium, expert, medium-replay, "
                                                 "medium-expert)")
    collect.add_argument("--env", required=True, help="environment (Pendulum, Hopper, ...)")
    collect.add_argument("--quality", required=True, help="random, medium, expert, medium-replay or medium-expert")
    collect.add_argument("--transitions", type=positive_int, default=100_000,
                         help="transitions per policy (default 100000; medium-replay: the replay buffer's)")
    collect.add_argument("--seed", type=int, default=0, help="seed of the behaviour run and the rollouts (default 0)")
    collect.add_argument("--out", type=Path, help="output .hdf5 (default: <data folder>/<env>-<quality>.hdf5)")
    collect.add_argument("--policy", type=Path, metavar="RUN_DIR",
                         help="behaviour run to use (a seed directory with snapshots/); default: train one")
    collect.add_argument("--agent", default="sac", help="behaviour agent to train (default sac)")
    collect.add_argument("--steps", type=positive_int, help="behaviour training steps (default: the suite's budget)")
    collect.add_argument("--eval-every", type=positive_int,
                         help="behaviour training: steps between evaluations, i.e. policy snapshots (default: the suite's)")
    collect.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                         help="behaviour training: override a hyperparameter of the behaviour agent")
    collect.add_argument("--quiet", action="store_true", help="no training progress bar")
    info = actions.add_parser("info", help="transitions, episodes, returns and normalised score of a dataset")
    info.add_argument("source", metavar="PATH|NAME", help="a .hdf5 file, a Minari directory or a dataset name")
    info.add_argument("--json", action="store_true", help="print JSON")
    actions.add_parser("list", help="datasets in the data folder ($DRLBENCH_DATA)")
    dataset.set_defaults(handler=cmd_dataset)

    report = verbs.add_parser(
        "report", help="write a leaderboard report (HTML and Markdown with plots) from run records",
        description="Read the run records under RUNS_DIR (and any `drlbench compare` results there) and write "
                    "OUT/index.html, OUT/leaderboard.md and OUT/figures/: the leaderboard by IQM of normalised "
                    "final scores, per-environment tables and curves, performance profiles, probability of "
                    "improvement, AdaStop decisions, provenance and the records left out. The same records "
                    "give the same bytes.")
    report.add_argument("runs_dir", type=Path, metavar="RUNS_DIR", help="directory of run records (e.g. runs/)")
    report.add_argument("--out", type=Path, default=Path("report"), help="report directory (default report/)")
    report.add_argument("--suite", help="use only this suite's environments and reference scores "
                                        "(default: each run's own suite)")
    report.add_argument("--reps", type=positive_int, default=50_000,
                        help="bootstrap replicates for the tables (default 50000)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    report.set_defaults(handler=cmd_report)

    importer = verbs.add_parser(
        "import", help="write run records from runs made elsewhere (SB3 / RL Zoo, TensorBoard, rliable, adastop)",
        description="Read runs made with other libraries and write them as drlbench run records "
                    "(OUT/<env>/<label>/seed_<seed>/, marked imported_from), so that stats, report and compare "
                    "use them. sb3: EvalCallback's evaluations.npz (else Monitor's monitor.csv); a folder (an RL Zoo "
                    "logs/<algo>/) is walked, each directory with these files one run. tensorboard: event files, "
                    "each directory one run. rliable: a {algorithm: (runs, tasks)} score dict (.npz or .json). "
                    "adastop: CSVs with one column per agent. Nothing is written if any input is bad.")
    importer.add_argument("format", metavar="FORMAT", help="sb3, tensorboard, rliable or adastop")
    importer.add_argument("source", type=Path, metavar="SOURCE", help="a file, or a folder walked for several runs")
    importer.add_argument("--agent", metavar="LABEL",
                          help="sb3/tensorboard: the label of the imported runs (required); rliable/adastop: "
                               "import only these algorithms/columns (comma-separated; default all, labelled "
                               "by their names)")
    importer.add_argument("--env", required=True, metavar="ENV_ID",
                          help="environment of the runs; rliable: one per task column, comma-separated")
    importer.add_argument("--seed-from-path", metavar="REGEX",
                          help="take each run's seed from its path: the first group of REGEX (e.g. '__(\\d+)__' "
                               "for CleanRL's runs/<env>__<exp>__<seed>__<time>); default 0, 1, ... in path order")
    importer.add_argument("--tag-name", metavar="TAG", help="tensorboard: the scalar tag to read (default: "
                                                            "eval/mean_reward, charts/episodic_return, "
                                                            "rollout/ep_rew_mean, the first present)")
    importer.add_argument("--window", type=positive_int,
                          help="training-episode sources (monitor.csv, charts/episodic_return): episodes "
                               "averaged per evaluation row (default 10; other tags 1)")
    importer.add_argument("--scores", choices=["raw", "normalized"],
                          help="rliable/adastop: the file holds returns (raw) or normalised scores, turned back "
                               "into returns with the suite's reference scores (default: rliable normalized, "
                               "adastop raw)")
    importer.add_argument("--out", type=Path, default=Path("runs"), help="directory for run records (default runs/)")
    importer.set_defaults(handler=cmd_import)
    return parser


# --- run ----------------------------------------------------------------------------------
def resolve_variant(args):
    """The RunConfig that `drlbench run` arguments describe, without seeds (seeds=())."""
    from drlbench.config import resolve

    progress = "off" if args.quiet else ("lines" if args.jobs > 1 and not args.batched else "bar")
    return resolve(args.agent, args.env, args.overrides, steps=args.steps, num_envs=args.num_envs,
                   device=args.device, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                   out=args.out, batched=args.batched, tensorboard=args.tensorboard, progress=progress,
                   tag=args.tag, preset=args.preset, dataset=args.dataset, sim_env=args.sim_env)


def check_writable(out: Path) -> None:
    """Refuse an --out that cannot be written, before anything is created under it."""
    import os

    existing = Path(out).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write run records to {out}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write run records to {out}: {existing} is not writable")


def add_backend_arguments(verb) -> None:
    verb.add_argument("--backend", choices=["local", "ray"], default="local",
                      help="local: this machine (processes, --jobs); ray: a Ray cluster, each cell a task "
                           "(pip install 'drlbench[ray]')")
    verb.add_argument("--address", help="ray backend: the cluster's address (default auto: the one `ray start` "
                                        "made on this machine; local: start a private one)")


def launcher(args):
    from drlbench.launch import backend

    return backend(args.backend, jobs=args.jobs, threads=getattr(args, "threads", 1), address=args.address)


def resolve_run(args) -> tuple[list, list[int]]:
    """Turn CLI arguments into RunConfigs (one per batch) and the seeds already completed."""
    from drlbench.launch import plan

    template = resolve_variant(args)
    seeds = args.seeds or [args.seed if args.seed is not None else 0]
    check_writable(args.out)
    found = plan(template, seeds, batched=args.batched, resume=args.resume)
    return found.configs, found.done


def cmd_run(args) -> int:
    configs, done = resolve_run(args)
    for seed in done:
        print(f"seed {seed}: already completed, skipped", file=sys.stderr)
    if args.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package: pip install 'drlbench[tensorboard]'") from None
    from drlbench.launch import launch

    try:
        # one process stops at the first failure, as before; a pool finishes the cells it has
        outcomes = launch(configs, launcher(args), resume=args.resume, stop_on_failure=args.jobs == 1)
    except KeyboardInterrupt:
        print("drlbench: interrupted; continue with the same command plus --resume", file=sys.stderr)
        return 130
    for outcome in outcomes:
        if outcome.status == "refused":
            raise UsageError(outcome.error)
        if outcome.status == "interrupted":
            print("drlbench: interrupted; continue with the same command plus --resume", file=sys.stderr)
            return 130
        if outcome.status != "completed":  # the run record holds the error and error.txt the traceback
            print(f"drlbench: run failed: {outcome.error}", file=sys.stderr)
            return 1
    for meta in sorted((m for o in outcomes for m in o.metas), key=lambda m: configs_order(configs, m)):
        print(f"{meta['label']} {meta['env_id']} seed {meta['seed']}: final return {meta['final_score']:.2f} "
              f"(best {meta['best_score']:.2f}) after {meta['steps_done']:,} steps, "
              f"{meta['steps_done'] / max(meta['wall_time_s'], 1e-9):.0f} steps/s")
    return 0


def configs_order(configs, meta) -> tuple[int, int]:
    """Results print in the order the seeds were asked for, whichever cell finished first."""
    for i, cfg in enumerate(configs):
        if meta["seed"] in cfg.seeds:
            return i, list(cfg.seeds).index(meta["seed"])
    return len(configs), meta["seed"]


# --- sweep --------------------------------------------------------------------------------
def cmd_sweep(args) -> int:
    from drlbench import envs
    from drlbench.compare import split_overrides
    from drlbench.config import get_suite, resolve
    from drlbench.launch import check_pair, describe, echo, launch, plan, summary_table

    env_ids = list(get_suite(args.suite).envs) if args.suite else [envs.resolve(e) for e in args.envs]
    twice = sorted({a for a in args.agents if args.agents.count(a) > 1})
    if twice:
        raise UsageError(f"agent {twice[0]!r} is listed twice")
    check_writable(args.out)
    backend = launcher(args)
    overrides = split_overrides(args.overrides, args.agents)
    configs, skipped = [], {}
    for env_id in env_ids:   # everything is resolved and checked before anything trains
        for agent in args.agents:
            template = resolve(agent, env_id, overrides[agent], steps=args.steps, device=args.device,
                               eval_every=args.eval_every, eval_episodes=args.eval_episodes, out=args.out,
                               batched=args.batched, progress="off")
            check_pair(template)
            found = plan(template, args.seeds, batched=args.batched, resume=True, skip_failed=not args.retry_failed)
            configs += found.configs
            skipped[(template.env_id, template.label)] = found
    total = sum(len(found.done) for found in skipped.values())
    failed = sum(len(found.failed) for found in skipped.values())
    seeds = sum(len(c.seeds) for c in configs)
    echo(f"sweep: {len(args.agents)} agent(s) x {len(env_ids)} environment(s) x {len(args.seeds)} seed(s): "
         f"{seeds} seed(s) to train in {len(configs)} cell(s) on {args.backend}; {total} completed on disk "
         f"(skipped)" + (f", {failed} failed on disk (skipped; --retry-failed reruns them)" if failed else ""))
    counter = iter(range(1, len(configs) + 1))
    started = time.monotonic()
    quiet = args.quiet

    def progress(outcome):
        if not quiet:
            echo(f"[{next(counter)}/{len(configs)}] {describe(outcome)}")

    outcomes, interrupted = [], False   # filled as cells finish, so a Ctrl-C keeps what finished
    try:
        launch(configs, backend, resume=True, on_outcome=lambda o: (outcomes.append(o), progress(o)))
    except KeyboardInterrupt:
        interrupted = True
    print("\n".join(summary_table(outcomes, skipped, args.out)))
    print(f"\n{len(outcomes)} of {len(configs)} cell(s) finished in {time.monotonic() - started:.1f} s; "
          f"leaderboard: drlbench report {args.out} --out {args.out}")
    if interrupted:
        print("drlbench: interrupted; the same command resumes the unfinished cells", file=sys.stderr)
        return 130
    return 0 if all(o.status == "completed" for o in outcomes) else 1


# --- list ---------------------------------------------------------------------------------
def cmd_list(args) -> int:
    if args.verbose and args.what != "agents":
        raise UsageError(f"--verbose {args.verbose}: only `drlbench list agents --verbose AGENT` takes it")
    if args.what == "agents":
        from drlbench.agents import AGENTS
        from drlbench.config import describe_agent

        if args.verbose:
            print(describe_agent(args.verbose))
            return 0
        width = max(map(len, [*AGENTS, "agent"]))
        print(f"{'agent':<{width}}  {'loop':<10}  summary")
        for name, cls in AGENTS.items():
            print(f"{name:<{width}}  {cls.loop:<10}  {cls.summary}")
        print("Hyperparameters of one agent: drlbench list agents --verbose AGENT")
        return 0
    from drlbench.config import load_suites

    suites = load_suites().values()
    width = max(len(env_id) for suite in suites for env_id in suite.envs)
    for suite in suites:
        print(f"{suite.name}: {suite.description} (evaluation: {suite.eval_episodes} episodes every "
              f"{suite.eval_every_steps:,} steps)")
        for env_id, entry in suite.envs.items():
            print(f"  {env_id:<{width}}  {entry['steps']:>10,} steps   random {entry['random_score']:>9.2f}   "
                  f"target {entry['target_score']:>9.2f}")
    print("Any other gymnasium ID works too, with --steps.")
    return 0


# --- stats --------------------------------------------------------------------------------
def cmd_stats(args) -> int:
    import numpy as np

    from drlbench.compare import text_table
    from drlbench.config import load_suites
    from drlbench.results import no_runs_error, reference_scores, scan, score_table, select_suite
    from drlbench.stats import StatsError, interval_estimates

    if args.export is not None:
        from drlbench.importers import check_export_path

        if args.export[0] != "rliable":
            raise UsageError(f"--export {args.export[0]}: unknown format; choose from: rliable")
        check_export_path(Path(args.export[1]))
    runs, problems = scan(args.runs_dir)
    if not select_suite(runs, args.suite)[0]:
        raise no_runs_error(args.runs_dir, problems, args.suite)
    table = score_table(runs, args.suite, args.score)
    try:
        estimates = interval_estimates(table.normalized, reps=args.reps, seed=args.seed)
    except StatsError as exc:
        raise UsageError(str(exc)) from None
    tasks = ", ".join(f"{e} ({table.references[e][2]})" for e in table.tasks)
    print(f"{sum(v.size for v in table.raw.values())} runs of {len(table.labels)} label(s) on "
          f"{len(table.tasks)} environment(s): {tasks}")
    print(f"normalised {table.score} score = (return - random) / (target - random); "
          f"95% stratified-bootstrap percentile intervals, {args.reps:,} replicates, seed {args.seed}")
    print()
    rows = [("label", "runs x tasks", "IQM", "mean", "median", "optimality gap")]
    for label in table.labels:
        est = estimates[label]
        rows.append((label, "{} x {}".format(*table.normalized[label].shape),
                     *(f"{e.point:.3f} [{e.lower:.3f}, {e.upper:.3f}]" for e in
                       (est["iqm"], est["mean"], est["median"], est["optimality_gap"]))))
    print("\n".join(text_table(rows)))
    print()
    print(f"{table.score} return per environment: mean +- std (runs)")
    suite_envs = load_suites()[args.suite].envs if args.suite else None
    shown = [r for r in runs if suite_envs is None or r.env_id in suite_envs]
    labels = sorted({r.label for r in shown})
    rows = [("environment", "random", "target", *labels)]
    for env_id in sorted({r.env_id for r in shown}):
        try:
            named = next((r.suite for r in shown if r.env_id == env_id and r.suite), None)
            random_score, target, _ = reference_scores(env_id, args.suite or named)
            refs = (f"{random_score:.2f}", f"{target:.2f}")
        except UsageError:
            refs = ("-", "-")
        cells = []
        for label in labels:
            values = np.array([r.score(table.score) for r in shown if r.env_id == env_id and r.label == label])
            spread = f"{values.std(ddof=1):.2f}" if values.size > 1 else "-"
            cells.append("-" if values.size == 0 else f"{values.mean():.2f} +- {spread} ({values.size})")
        rows.append((env_id, *refs, *cells))
    print("\n".join(text_table(rows)))
    left_out = problems + table.notes
    if left_out:
        print()
        print(f"left out ({len(left_out)}):")
        for problem in left_out:
            print(f"  {problem}")
    if args.export is not None:
        from drlbench.importers import export_score_dict

        export_score_dict(table.normalized, Path(args.export[1]))
        print()
        print(f"wrote {args.export[1]}: rliable score dict {{label: (runs, tasks)}} of normalised {table.score} "
              f"scores; tasks (columns): {', '.join(table.tasks)}; runs (rows): seeds "
              + "; ".join(f"{label} {', '.join(map(str, table.seeds[label]))}" for label in table.labels))
    return 0


# --- import -------------------------------------------------------------------------------
def cmd_import(args) -> int:
    from drlbench.importers import import_runs

    check_writable(args.out)
    found = import_runs(args.format, args.source, args.out, agent=args.agent, env=args.env,
                        seed_from_path=args.seed_from_path, tag_name=args.tag_name, window=args.window,
                        scores=args.scores)
    groups: dict[tuple[str, str], list] = {}
    for run in found:
        groups.setdefault((run.label, run.env_id), []).append(run)
    for (label, env_id), runs in groups.items():
        finals = [run.rows[-1]["return_mean"] for run in runs]
        print(f"{label} {env_id}: {len(runs)} run(s), seeds {', '.join(str(r.seed) for r in runs)}; final "
              f"return mean {sum(finals) / len(finals):.2f} ({runs[0].source.get('score', '')})")
    print(f"wrote {len(found)} run record(s) under {args.out} (imported_from: {args.format} {args.source})")
    return 0


# --- compare ------------------------------------------------------------------------------
def cmd_compare(args) -> int:
    from drlbench.compare import decision_table, run_compare
    from drlbench.stats import StatsError

    if args.suite is not None:
        from drlbench import envs
        from drlbench.config import get_suite

        suite, env_id = get_suite(args.suite), envs.resolve(args.env)
        if env_id not in suite.envs:
            raise UsageError(f"{env_id} is not in suite {suite.name!r} (it lists: {', '.join(suite.envs)})")
    if not 0.0 < args.alpha < 1.0:
        raise UsageError(f"--alpha {args.alpha}: expected a level in (0, 1)")
    try:
        test, agents = run_compare(args.agents, args.env, n=args.n, K=args.K, alpha=args.alpha, B=args.B,
                                   steps=args.steps, out=args.out, overrides=args.overrides, seed=args.seed,
                                   quiet=args.quiet, echo=lambda line: print(line, file=sys.stderr),
                                   sim_env=args.sim_env,
                                   launcher=None if args.backend == "local" and args.jobs == 1 else launcher(args))
    except StatsError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print("drlbench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except UsageError:
        raise
    except Exception as exc:  # a failed run: its record holds the error and error.txt the traceback
        print(f"drlbench: run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(decision_table(test, agents))
    return 0


# --- dataset ------------------------------------------------------------------------------
def cmd_dataset(args) -> int:
    import json

    from drlbench import datasets

    if args.action == "list":
        folder = datasets.data_folder()
        names = datasets.registry.available()
        print(f"data folder: {folder} (set DRLBENCH_DATA to change it)")
        print("\n".join(f"  {name}" for name in names) or "  (empty: make one with `drlbench dataset collect`)")
        return 0
    if args.action == "info":
        path = datasets.locate(args.source)
        data = datasets.load(path)
        info = datasets.dataset_info(data)
        env = datasets.evaluation_env(data, path)
        info.update(name=path.stem, evaluation_env=env, normalized_return_mean=_normalized(path.stem, env, info))
        if args.json:
            print(json.dumps(info, indent=2, default=str))
        else:
            width = max(map(len, info))
            print("\n".join(f"{key:<{width}}  {value}" for key, value in info.items()))
        return 0
    from drlbench import envs
    from drlbench.datasets.collect import collect

    env_id = envs.resolve(args.env)
    out = args.out or datasets.data_folder() / f"{datasets.dataset_name(env_id, args.quality)}.hdf5"
    check_writable(out.parent)
    path, meta = collect(env_id, args.quality, args.transitions, args.seed, out, args.policy, args.agent,
                         args.steps, args.quiet, args.overrides, args.eval_every)
    print(f"wrote {path}: {meta['quality']} {env_id}, behaviour {meta['behaviour_policy']}, "
          f"mean episode return {meta['behaviour_return_mean']:.2f}")
    return 0


def _normalized(name: str, env: str | None, info: dict) -> float | None:
    """100 (return - min) / (max - min): D4RL's references for D4RL names, else the suite's."""
    from drlbench.config import suite_of
    from drlbench.datasets import normalized_score

    score = normalized_score(name, info["return_mean"])
    if score is None:
        suite = suite_of(name) or (suite_of(env) if env else None)
        key = name if suite and name in suite.envs else env
        if suite is None:
            return None
        low, high = suite.reference(key)
        score = 100.0 * (info["return_mean"] - low) / (high - low)
    return round(float(score), 3)


# --- report -------------------------------------------------------------------------------
def cmd_report(args) -> int:
    from drlbench.report import write_report

    report = write_report(args.runs_dir, args.out, args.suite, args.reps, args.seed)
    left_out = report.problems + report.notes
    if left_out:
        print(f"drlbench: {len(left_out)} record(s) left out of the report (listed in it):", file=sys.stderr)
        for problem in left_out:
            print(f"  {problem}", file=sys.stderr)
    print(f"wrote {args.out / 'index.html'}, {args.out / 'leaderboard.md'} and {len(report.figures)} figures "
          f"({len(report.runs)} runs)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except UsageError as exc:
        print(f"drlbench: error: {exc}" if not str(exc).startswith("drlbench") else f"{exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
