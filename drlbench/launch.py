"""The launcher: run configurations in, finished run records out, on one machine or on Ray.

Every verb that trains (`run`, `compare`, `sweep`) hands its RunConfigs here. A *cell* is one
RunConfig: one seed, or with `--batched` a group of seeds trained as one population. Two backends:

- `Local(jobs, threads)`: in this process when jobs == 1, else a pool of `jobs` spawned processes;
  each process runs torch with `threads` threads (default 1, so cells do not fight for cores).
- `Ray(address, threads)`: each cell is a Ray task asking for `threads` CPUs (and one GPU when the
  cell's device is CUDA). `address` is "auto" (the cluster `ray start` made on this machine), a
  cluster address, or "local" (start a private one for this command). Workers import drlbench from
  their own environment, so every node needs drlbench installed, and --out must be a folder every
  node can write (a shared file system); relative paths are taken from the driver's directory.
  `ray` is imported here only, and only by this backend (`pip install 'drlbench[ray]'`).

Faults. A cell trains with resume=True wherever a retry is possible, so a Ray retry after a lost
worker or node (`max_retries`, Ray's own retry of tasks whose process died) continues from the
cell's last checkpoint, exactly as `drlbench run --resume` does: the checkpoint holds the
evaluations so far, the population's random streams, the agent and the environments, and
evaluation rows written after it are dropped, so the finished record equals an undisturbed run's
(except `wall_time_s` and `resumed_at`). A cell whose records are already completed returns them
untouched (a retry after the work was done writes nothing twice). A cell that fails for its own
reason (non-finite losses, a bad value, an environment that raises) does not raise out of the
task: it returns a `failed` Outcome, its records say `failed` with error.txt, and Ray has nothing
to retry. Ctrl-C on the driver cancels the running tasks (a KeyboardInterrupt inside each, which
the harness records as `interrupted`); records still `running` after that are marked
`interrupted` by the driver, so every one can be resumed.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from drlbench.errors import UsageError

STATUSES = ("completed", "failed", "interrupted", "refused", "lost")


@dataclass
class Outcome:
    """How one cell ended. `status`: completed | failed (its own error; the records say so) |
    interrupted | refused (a UsageError, e.g. unwritable output) | lost (its worker died more
    often than the backend retries; the records are resumable)."""
    agent: str
    label: str
    env_id: str
    seeds: tuple[int, ...]
    status: str
    error: str | None = None
    metas: list[dict] = field(default_factory=list)   # run.json of each seed, when completed
    wall_s: float = 0.0
    pid: int | None = None


@dataclass
class Plan:
    """What to train: cells (RunConfigs with seeds), and the seeds left alone because their
    records are completed (`done`) or failed (`failed`, with skip_failed)."""
    configs: list
    done: list[int]
    failed: list[int]


# --- planning: which seeds still need training -------------------------------------------------
def same_run_or_refuse(record, config) -> None:
    """An existing record at this run's path must be of the same agent and hyperparameters."""
    import json

    meta = record.meta
    if meta.get("agent") != config.agent:
        raise UsageError(f"{record.path} holds a run of agent {meta.get('agent')!r}, not {config.agent!r}; "
                         f"choose another --out or --tag")
    if meta.get("sim_env") != config.sim_env:
        raise UsageError(f"{record.path} holds a run with sim_env {meta.get('sim_env')!r}, not {config.sim_env!r}; "
                         f"choose another --out or --tag")
    resolved = json.loads(json.dumps(config.hyperparameter_dict(), default=str))
    if meta.get("hyperparameters") is not None and meta["hyperparameters"] != resolved:
        changed = sorted(k for k in resolved if meta["hyperparameters"].get(k) != resolved[k])
        raise UsageError(f"{record.path} was run with other hyperparameters ({', '.join(changed) or 'keys differ'}); "
                         f"choose another --out or --tag")


def plan(template, seeds, *, batched: bool, resume: bool, skip_failed: bool = False) -> Plan:
    """The cells of `template` (a RunConfig without seeds) for `seeds`: completed records are
    skipped; an existing unfinished record is resumed when `resume`, else refused; failed records
    are skipped when `skip_failed` (a sweep reruns them only when asked)."""
    from drlbench.records import RunRecord, run_dir

    todo, done, failed = [], [], []
    unfinished: dict[int, tuple[int, ...]] = {}   # seed -> the seeds its checkpoint was written with
    for seed in seeds:
        path = run_dir(template.out, template.env_id, template.label, seed)
        if (path / "run.json").exists():
            record = RunRecord.load(path)
            same_run_or_refuse(record, template)
            status = record.meta.get("status")
            if status == "completed":
                done.append(seed)
                continue
            if status == "failed" and skip_failed:
                failed.append(seed)
                continue
            if not resume:
                raise UsageError(f"{path} exists with status {status!r}; pass --resume to continue it, "
                                 f"or remove the directory")
            unfinished[seed] = tuple(record.meta.get("batch_seeds") or (seed,))
        todo.append(seed)
    # An unfinished run resumes in the grouping that wrote its checkpoint (batched or not), whatever
    # --batched says now; seeds with nothing to resume are grouped as asked.
    groups = []
    for group in dict.fromkeys(unfinished[s] for s in todo if s in unfinished):
        asked = [s for s in group if s in todo]
        if len(asked) < len(group):
            together = ", ".join(map(str, group))
            raise UsageError(f"seed(s) {', '.join(map(str, asked))} of {template.label} were trained batched with "
                             f"seeds {together}, and resume together: pass --seeds covering {together}, "
                             f"or remove their directories")
        groups.append(list(group))
    fresh = [s for s in todo if s not in unfinished]
    groups += [fresh] if batched and fresh else [[s] for s in fresh]
    return Plan([dataclasses.replace(template, seeds=tuple(group)) for group in groups], done, failed)


def check_pair(template) -> None:
    """Refuse an (agent, environment) pair that cannot train (e.g. a Box-only agent on CartPole)
    before a sweep starts: the agent is built once on the environment's spaces."""
    from drlbench import envs
    from drlbench.agents import get_agent
    from drlbench.loops import get_loop
    from drlbench.population import Population

    agent_cls = get_agent(template.agent)
    if not getattr(get_loop(agent_cls.loop), "USES_TRAINING_ENV", True):
        return
    env = agent_cls.wrap_env(envs.make(template.training_environment, 1, "cpu"), template.hyperparameters)
    try:
        agent_cls(env.observation_space, env.action_space, template.hyperparameters, Population((0,), "cpu"))
    finally:
        env.close()


# --- one cell, in whatever process runs it -----------------------------------------------------
def _completed_metas(cfg) -> list[dict] | None:
    """run.json of every seed of the cell when all are completed (else None)."""
    from drlbench.records import RunRecord, run_dir

    metas = []
    for seed in cfg.seeds:
        path = run_dir(cfg.out, cfg.env_id, cfg.label, seed)
        if not (path / "run.json").exists():
            return None
        try:
            meta = RunRecord.load(path).meta
        except UsageError:
            return None
        if meta.get("status") != "completed":
            return None
        metas.append(meta)
    return metas


def train_cell(cfg, resume: bool, threads: int, cwd: str | None = None) -> Outcome:
    """Train one cell and say how it ended; only KeyboardInterrupt (and process death) escape."""
    import torch

    from drlbench.harness import train

    if cwd is not None and os.path.isdir(cwd):
        os.chdir(cwd)   # relative --out and dataset paths mean what they meant to the driver
    torch.set_num_threads(threads)
    ended = dict(agent=cfg.agent, label=cfg.label, env_id=cfg.env_id, seeds=tuple(cfg.seeds), pid=os.getpid())
    started = time.monotonic()
    if resume:
        metas = _completed_metas(cfg)
        if metas is not None:   # a retry after the work was done: nothing is written again
            return Outcome(status="completed", metas=metas, **ended)
    try:
        records = train(cfg, resume=resume)
    except UsageError as exc:
        return Outcome(status="refused", error=str(exc), wall_s=time.monotonic() - started, **ended)
    except Exception as exc:   # the records say failed, error.txt holds the traceback
        return Outcome(status="failed", error=f"{type(exc).__name__}: {exc}",
                       wall_s=time.monotonic() - started, **ended)
    return Outcome(status="completed", metas=[r.meta for r in records], wall_s=time.monotonic() - started, **ended)


def mark_interrupted(configs) -> None:
    """Records of these cells still `running` (their process stopped without saying) -> interrupted."""
    from drlbench.records import RunRecord, run_dir

    for cfg in configs:
        for seed in cfg.seeds:
            path = run_dir(cfg.out, cfg.env_id, cfg.label, seed)
            try:
                record = RunRecord.load(path) if (path / "run.json").exists() else None
            except UsageError:
                continue
            if record is not None and record.meta.get("status") == "running":
                record.finish("interrupted")


def _lost(cfg, error: str) -> Outcome:
    return Outcome(cfg.agent, cfg.label, cfg.env_id, tuple(cfg.seeds), "lost", error)


# --- backends ----------------------------------------------------------------------------------
@dataclass
class Local:
    """This process (jobs == 1) or a pool of `jobs` spawned processes, `threads` torch threads each."""
    jobs: int = 1
    threads: int = 1

    def run(self, configs, resume: bool, report: Callable[[Outcome], bool]) -> None:
        if self.jobs == 1 or len(configs) == 1:
            for cfg in configs:
                if report(train_cell(cfg, resume, self.threads)):
                    return
            return
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        with ProcessPoolExecutor(min(self.jobs, len(configs)), mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(train_cell, cfg, resume, self.threads): cfg for cfg in configs}
            pending = set(futures)
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in sorted(finished, key=lambda f: configs.index(futures[f])):
                        try:
                            outcome = future.result()
                        except BrokenProcessPool as exc:
                            mark_interrupted([futures[future]])
                            outcome = _lost(futures[future], f"a worker process died ({exc}); rerun to resume")
                        if report(outcome):
                            for other in pending:
                                other.cancel()
                            return
            except KeyboardInterrupt:   # the workers got the same Ctrl-C and record `interrupted`
                for other in pending:
                    other.cancel()
                raise


@dataclass
class Ray:
    """Each cell a Ray task: `threads` CPUs (and 1 GPU for a CUDA device), retried `max_retries`
    times when its worker process or node is lost, never for its own errors."""
    address: str = "auto"
    threads: int = 1
    max_retries: int = 3
    cancel_wait_s: float = 30.0

    def connect(self):
        try:
            import ray
        except ImportError:
            raise UsageError("--backend ray needs Ray: pip install 'drlbench[ray]'") from None
        if ray.is_initialized():
            return ray, False
        if self.address != "local":
            self._probe()
        try:
            if self.address == "local":
                ray.init(include_dashboard=False, log_to_driver=True)
            else:
                ray.init(address=self.address, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"--address {self.address}: no Ray cluster to connect to ({_first_line(exc)}); "
                             "start one with `ray start --head`, or pass --address local for a private one") from None
        return ray, True

    def _probe(self, timeout_s: float = 5.0) -> None:
        """Refuse an address where no cluster answers: ray.init would wait for it for minutes (an
        `auto` address can name a cluster that stopped without `ray stop`)."""
        import socket

        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die

            host, _, port = canonicalize_bootstrap_address_or_die(self.address).rpartition(":")
        except Exception:   # Ray's own lookup fails (no cluster found) or changed: ray.init says why
            return
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
        except (OSError, ValueError) as exc:
            raise UsageError(f"--address {self.address}: no Ray cluster answers at {host}:{port} ({exc}); start "
                             "one with `ray start --head`, or pass --address local for a private one") from None

    def run(self, configs, resume: bool, report: Callable[[Outcome], bool]) -> None:
        ray, started_here = self.connect()
        try:
            self._run(ray, configs, report)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray, configs, report) -> None:
        cell = ray.remote(train_cell)
        cwd = os.getcwd()
        refs = {}
        for cfg in configs:
            options = dict(num_cpus=self.threads, max_retries=self.max_retries, retry_exceptions=False,
                           name=task_name(cfg))
            if str(cfg.device).startswith("cuda"):
                options["num_gpus"] = 1
            # resume=True always: a retried attempt continues from the cell's checkpoint, and a first
            # attempt has none (plan() refused or accepted existing records before this)
            refs[cell.options(**options).remote(cfg, True, self.threads, cwd)] = cfg
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.TaskCancelledError:
                        mark_interrupted([refs[ref]])
                        outcome = Outcome(**_cell_fields(refs[ref]), status="interrupted")
                    except ray.exceptions.RayTaskError as exc:   # raised outside training (e.g. unpickling)
                        mark_interrupted([refs[ref]])
                        outcome = Outcome(**_cell_fields(refs[ref]), status="failed", error=_first_line(exc))
                    except ray.exceptions.RayError as exc:   # worker or node lost more often than retried
                        mark_interrupted([refs[ref]])
                        outcome = _lost(refs[ref], f"lost after {self.max_retries} retries: {_first_line(exc)}")
                    if report(outcome):
                        self._cancel(ray, pending, refs)
                        return
        except KeyboardInterrupt:
            self._cancel(ray, pending, refs)
            raise

    def _cancel(self, ray, pending, refs) -> None:
        """Interrupt running cells (a KeyboardInterrupt in each: the harness records `interrupted`),
        wait for them to stop, force the rest, and mark whatever is still `running`."""
        for ref in pending:
            ray.cancel(ref)
        if pending:
            try:
                ray.wait(pending, num_returns=len(pending), timeout=self.cancel_wait_s)
            except Exception:
                pass
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
        mark_interrupted([refs[ref] for ref in pending])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cell_fields(cfg) -> dict:
    return dict(agent=cfg.agent, label=cfg.label, env_id=cfg.env_id, seeds=tuple(cfg.seeds))


def task_name(cfg) -> str:
    """The Ray task's name (its worker's process title is `ray::<name>` while it runs)."""
    return f"drlbench {cfg.label} {cfg.env_id} seed {','.join(map(str, cfg.seeds))}"


def backend(name: str, *, jobs: int = 1, threads: int = 1, address: str | None = None):
    if name == "local":
        if address is not None:
            raise UsageError("--address is for --backend ray")
        return Local(jobs=jobs, threads=threads)
    if name == "ray":
        try:
            import ray  # noqa: F401  (only this backend imports it)
        except ImportError:
            raise UsageError("--backend ray needs Ray: pip install 'drlbench[ray]'") from None
        return Ray(address=address or "auto", threads=threads)
    raise UsageError(f"--backend {name}: choose from local, ray")


def launch(configs, backend_, *, resume: bool, on_outcome: Callable[[Outcome], None] | None = None,
           stop_on_failure: bool = False) -> list[Outcome]:
    """Train every cell on the backend; outcomes in the order cells finish. With stop_on_failure
    the first cell that does not complete stops the rest (they are cancelled or interrupted)."""
    outcomes: list[Outcome] = []

    def report(outcome: Outcome) -> bool:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        return stop_on_failure and outcome.status != "completed"

    if configs:
        backend_.run(list(configs), resume, report)
    return outcomes


# --- sweeps ------------------------------------------------------------------------------------
def summary_table(outcomes: list[Outcome], skipped: dict[tuple[str, str], Plan], out) -> list[str]:
    """Per (env, label): seeds trained / skipped (completed on disk) / failed / other (interrupted,
    lost), the mean final return of every completed seed (this command's and those on disk), then
    one line per cell that did not complete."""
    import statistics

    from drlbench.compare import text_table
    from drlbench.records import RunRecord, run_dir

    keys = sorted({(o.env_id, o.label) for o in outcomes} | set(skipped))
    rows = [("environment", "label", "trained", "skipped", "failed", "other", "final return (completed)")]
    notes = []
    by_key: dict = {key: [] for key in keys}
    for o in outcomes:
        by_key[(o.env_id, o.label)].append(o)
    for key in keys:
        here, found = by_key[key], skipped.get(key, Plan([], [], []))
        finals = [m["final_score"] for o in here if o.status == "completed" for m in o.metas]
        for seed in found.done:
            meta = RunRecord.load(run_dir(out, key[0], key[1], seed)).meta
            finals.append(meta["final_score"])
        trained = sum(len(o.seeds) for o in here if o.status == "completed")
        failed = sum(len(o.seeds) for o in here if o.status in ("failed", "refused"))
        other = sum(len(o.seeds) for o in here if o.status in ("interrupted", "lost"))
        spread = f" +- {statistics.stdev(finals):.2f}" if len(finals) > 1 else ""
        rows.append((key[0], key[1], str(trained), str(len(found.done)), str(failed + len(found.failed)), str(other),
                     f"{statistics.fmean(finals):.2f}{spread} ({len(finals)})" if finals else "-"))
        for o in here:
            if o.status != "completed":
                notes.append(f"{key[1]} {key[0]} seed {','.join(map(str, o.seeds))}: {o.status}"
                             + (f": {o.error}" if o.error else ""))
    return text_table(rows, right=(2, 3, 4, 5)) + ([""] + notes if notes else [])


def describe(outcome: Outcome) -> str:
    """One line per finished cell."""
    seeds = ",".join(map(str, outcome.seeds))
    head = f"{outcome.label} {outcome.env_id} seed {seeds}: {outcome.status}"
    if outcome.status == "completed":
        finals = ", ".join(f"{m['final_score']:.2f}" for m in outcome.metas)
        return f"{head}, final return {finals} ({outcome.wall_s:.1f} s)"
    return f"{head}: {outcome.error}" if outcome.error else head


def echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
