"""The shared harness: everything a training loop needs except the loop itself.

A `Session` owns the population, the training and evaluation environments, the agent, the run
records, checkpoints, progress display and metric checks. Loops (`drlbench.loops`) only decide
how experience turns into `agent.update` calls; the harness never names an agent.

Seeding (documented in the README): training sub-environment j of seed s is reset with seed
1000 * s + j; evaluation episode k of seed s uses 10**9 + 1000 * s + k, the same episodes at
every evaluation, never a training seed.
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import torch

from drlbench import envs
from drlbench.agents import Agent, get_agent
from drlbench.config import RunConfig, get_suite
from drlbench.loops import get_loop
from drlbench.population import Population
from drlbench.records import RunRecord, atomic_torch_save, git_commit, host, run_dir, versions

EVAL_SEED_BASE = 10**9


class NonFiniteError(RuntimeError):
    pass


class ActionAdapter:
    """Agents act in [-1, 1] for Box spaces; environments get their own units."""

    def __init__(self, space: gym.Space, device: torch.device):
        self.box = isinstance(space, gym.spaces.Box)
        if self.box:
            low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
            high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
            finite = torch.isfinite(low).all() and torch.isfinite(high).all()
            self.scale = (high - low) / 2 if finite else None
            self.center = (high + low) / 2 if finite else None

    def __call__(self, action: torch.Tensor) -> torch.Tensor:
        if not self.box or self.scale is None:
            return action
        return self.center + self.scale * action


class Evaluator:
    """Deterministic-policy returns on separate environment instances, `episodes` per member."""

    def __init__(self, cfg: RunConfig, population: Population):
        self.members, self.episodes = population.size, cfg.eval_episodes
        self.env = get_agent(cfg.agent).wrap_env(envs.make(cfg.environment, self.members * self.episodes, cfg.device),
                                                 cfg.hyperparameters)
        self.adapter = ActionAdapter(self.env.action_space, population.device)
        self.seeds = [EVAL_SEED_BASE + 1000 * s + k for s in population.seeds for k in range(self.episodes)]

    @torch.no_grad()
    def __call__(self, agent: Agent) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (returns, lengths), each (P, episodes)."""
        obs = self.env.reset(self.seeds)
        total = self.members * self.episodes
        done = torch.zeros(total, dtype=torch.bool, device=obs.device)
        returns = torch.zeros(total, device=obs.device)
        lengths = torch.zeros(total, device=obs.device)
        while not bool(done.all()):
            action = agent.act(obs.view(self.members, self.episodes, *obs.shape[1:]), deterministic=True)
            step = self.env.step(self.adapter(action.reshape(total, *action.shape[2:])))
            alive = ~done
            returns += step.reward * alive
            lengths += alive
            done |= step.terminated | step.truncated
            obs = step.obs
        return returns.view(self.members, -1), lengths.view(self.members, -1)


@dataclass
class Progress:
    """mode "bar": a live rich bar on a terminal (lines otherwise); "lines": one line per
    evaluation; "off": nothing."""
    total: int
    label: str
    mode: str

    def __post_init__(self):
        self.bar = None
        self.last_draw = 0.0
        self.latest = "-"
        if self.mode == "bar" and sys.stderr.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeRemainingColumn)

            self.bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>6.0f} steps/s"), TextColumn("eval {task.fields[latest]}"),
                TimeRemainingColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, rate=0.0, latest="-")

    def update(self, step: int, rate: float, force: bool = False) -> None:
        now = time.monotonic()
        if self.bar is not None and (force or now - self.last_draw > 0.25):
            self.bar.update(self.task, completed=step, rate=rate, latest=self.latest)
            self.last_draw = now

    def evaluation(self, step: int, mean: float, std: float, rate: float) -> None:
        self.latest = f"{mean:.1f}"
        if self.bar is None and self.mode != "off":
            print(f"{self.label} step {step:>9,d}  return {mean:10.2f} ± {std:8.2f}  {rate:7.1f} steps/s",
                  file=sys.stderr, flush=True)
        self.update(step, rate, force=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class Session:
    """Per-run state shared by every loop."""

    def __init__(self, cfg: RunConfig, resume: bool):
        self.cfg = cfg
        self.population = Population(cfg.seeds, cfg.device)
        self.members = self.population.size
        agent_cls = get_agent(cfg.agent)
        self.evaluator = Evaluator(cfg, self.population)
        self.env = None   # loops that learn from a dataset make no training environment
        if getattr(get_loop(agent_cls.loop), "USES_TRAINING_ENV", True):
            self.env = agent_cls.wrap_env(envs.make(cfg.training_environment, self.members * cfg.num_envs, cfg.device),
                                          cfg.hyperparameters)
        spaces = self.env or self.evaluator.env
        self.adapter = ActionAdapter(spaces.action_space, self.population.device)
        self.agent = agent_cls(spaces.observation_space, spaces.action_space, cfg.hyperparameters, self.population)
        self.train_seeds = [1000 * s + j for s in cfg.seeds for j in range(cfg.num_envs)]
        self.paths = [run_dir(cfg.out, cfg.env_id, cfg.label, s) for s in cfg.seeds]
        self.checkpoint_path = self.paths[0] / "checkpoint.pt"
        self.step = 0
        self.elapsed_before = 0.0
        self.next_eval = 0
        self.resume_state: dict[str, Any] | None = None
        if resume and self.checkpoint_path.exists():
            self.resume_state = torch.load(self.checkpoint_path, map_location=cfg.device, weights_only=False)
        self.records = [self._record(path, seed) for path, seed in zip(self.paths, cfg.seeds)]
        if self.resume_state is not None:
            self._restore(self.resume_state)
        self.writers = self._tensorboard() if cfg.tensorboard else None
        self.progress = Progress(cfg.steps, f"{cfg.label} {cfg.env_id} seed{'s' if self.members > 1 else ''} "
                                 f"{','.join(map(str, cfg.seeds))}", cfg.progress)
        self.started = time.monotonic()
        self.metrics: dict[str, torch.Tensor] = {}

    # --- records and checkpoints ------------------------------------------------------
    def _record(self, path: Path, seed: int) -> RunRecord:
        cfg = self.cfg
        meta = {
            "agent": cfg.agent, "label": cfg.label, "env_id": cfg.env_id, "suite": cfg.suite, "seed": seed,
            "batch_seeds": list(cfg.seeds), "steps": cfg.steps, "num_envs": cfg.num_envs, "device": cfg.device,
            "eval_every_steps": cfg.eval_every_steps, "eval_episodes": cfg.eval_episodes,
            "steps_unit": cfg.steps_unit,
            "evaluation": "deterministic policy, separate environments, mean undiscounted return",
            "hyperparameters": cfg.hyperparameter_dict(), "overrides": cfg.overrides,
            "versions": versions(), "git_commit": git_commit(), "host": host(),
        }
        if cfg.dataset:
            from drlbench.datasets._files import file_sha256

            data = Path(cfg.dataset)
            meta.update(eval_env=cfg.eval_env, dataset={
                "path": str(data), "name": cfg.env_id,
                "sha256": file_sha256(data if data.is_file() else data / "data" / "main_data.hdf5")})
        if cfg.sim_env:   # trained in a simulator, evaluated in the real environment
            base, physics = envs.parse_physics(cfg.sim_env)
            meta.update(sim_env=cfg.sim_env, sim_env_base=base, sim_physics=physics, real_env=cfg.environment,
                        evaluation="deterministic policy, separate environments of the REAL dynamics "
                                   f"({cfg.environment}), mean undiscounted return")
        if self.resume_state is not None and (path / "run.json").exists():
            record = RunRecord.load(path)
            record.meta.update(status="running", error=None, ended_at=None)
            record.meta.setdefault("resumed_at", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            return record
        return RunRecord.create(path, meta)

    def save_checkpoint(self, loop_state: dict[str, Any]) -> None:
        atomic_torch_save(self.checkpoint_path, {
            "seeds": list(self.cfg.seeds), "step": self.step, "next_eval": self.next_eval,
            "elapsed": self.elapsed(), "population": self.population.state_dict(),
            "agent": self.agent.checkpoint(), "env": self.env.state_dict() if self.env else None, "loop": loop_state,
            "evaluations": [r.evaluations for r in self.records],
        })

    def _restore(self, state: dict[str, Any]) -> None:
        self.step, self.next_eval, self.elapsed_before = state["step"], state["next_eval"], state["elapsed"]
        self.population.load_state_dict(state["population"])
        self.agent.restore(state["agent"])
        if self.env is not None:
            self.env.load_state_dict(state["env"])
        for record, evaluations in zip(self.records, state["evaluations"]):
            record.evaluations = evaluations   # drop rows written after the checkpoint
            record.write()

    @property
    def loop_state(self) -> dict[str, Any] | None:
        return None if self.resume_state is None else self.resume_state["loop"]

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from drlbench.errors import UsageError

            raise UsageError("--tensorboard needs the tensorboard package: pip install 'drlbench[tensorboard]'") from None
        return [SummaryWriter(str(path / "tensorboard")) for path in self.paths]

    # --- called by loops --------------------------------------------------------------
    def check_finite(self, metrics: dict[str, torch.Tensor]) -> None:
        """Fail the run at the first update whose losses are NaN or infinite."""
        self.metrics = metrics
        if bool(torch.isfinite(torch.stack(list(metrics.values()))).all()):
            return
        bad = [f"{k} (seed {self.cfg.seeds[i]})" for k, v in metrics.items()
               for i in torch.nonzero(~torch.isfinite(v)).flatten().tolist()]
        raise NonFiniteError(f"non-finite {', '.join(bad)} at step {self.step}")

    def begin(self) -> None:
        """Evaluate the untrained agent (step 0) unless resuming; call before the first step."""
        if self.resume_state is None:
            self.evaluate()
            self.next_eval = self.cfg.eval_every_steps

    def after_step(self, loop_state: Callable[[], dict[str, Any]]) -> None:
        """Progress, evaluation, logging and checkpointing; call after every environment step."""
        rate = (self.step - (self.resume_state or {}).get("step", 0)) / max(time.monotonic() - self.started, 1e-9)
        if self.step >= self.next_eval:
            self.evaluate(rate)
            self.next_eval = (self.step // self.cfg.eval_every_steps + 1) * self.cfg.eval_every_steps
            if self.step < self.cfg.steps:
                self.save_checkpoint(loop_state())
        self.progress.update(self.step, rate)

    def evaluate(self, rate: float = 0.0) -> None:
        wall = self.elapsed()   # training time up to this step, before the evaluation episodes
        returns, lengths = self.evaluator(self.agent)
        for member, record in enumerate(self.records):
            r = returns[member].double()
            record.add_evaluation({
                "step": self.step, "return_mean": r.mean().item(),
                "return_std": r.std(unbiased=False).item(), "episodes": r.numel(),
                "length_mean": lengths[member].double().mean().item(), "wall_time_s": round(wall, 3)})
        if self.cfg.snapshots:   # the policy as evaluated, for `drlbench dataset collect`
            atomic_torch_save(self.paths[0] / "snapshots" / f"step_{self.step}.pt", self.agent.state_dict())
        means = returns.double().mean(1)
        self.progress.evaluation(self.step, means.mean().item(), returns.double().std(unbiased=False).item(), rate)
        if self.writers:
            for member, writer in enumerate(self.writers):
                writer.add_scalar("eval/return_mean", means[member].item(), self.step)
                for key, value in self.metrics.items():
                    writer.add_scalar(f"train/{key}", value[member].item(), self.step)
                writer.flush()

    def finish(self) -> None:
        if self.records[0].evaluations[-1]["step"] != self.step:
            self.evaluate()
        torch.save(self.agent.state_dict(), self.paths[0] / "agent.pt")
        reference = get_suite(self.cfg.suite).reference(self.cfg.env_id) if self.cfg.suite else None
        for record in self.records:
            if reference is not None:   # 100 (return - random) / (target - random); D4RL's min / max
                low, high = reference
                record.meta["final_score_normalized"] = 100.0 * (record.meta["final_score"] - low) / (high - low)
            record.meta["agent_file"] = str(Path("..") / self.paths[0].name / "agent.pt")
            record.meta["wall_time_s"] = round(self.elapsed(), 3)
            record.finish("completed")
        self.checkpoint_path.unlink(missing_ok=True)

    def fail(self, exc: BaseException) -> None:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        error = None if status == "interrupted" else f"{type(exc).__name__}: {exc}"
        for path, record in zip(self.paths, self.records):
            record.meta["wall_time_s"] = round(self.elapsed(), 3)
            record.finish(status, error)
            if status == "failed":
                (path / "error.txt").write_text(traceback.format_exc())

    def close(self) -> None:
        self.progress.close()
        if self.env is not None:
            self.env.close()
        self.evaluator.env.close()
        for writer in self.writers or []:
            writer.close()


def train(cfg: RunConfig, resume: bool = False) -> list[RunRecord]:
    """Run (or resume) one training run for every seed in `cfg.seeds`, batched as a population."""
    from drlbench.loops import get_loop

    torch.manual_seed(cfg.seeds[0])  # nothing should draw from the global stream; this pins it if it does
    session = Session(cfg, resume)
    loop = get_loop(get_agent(cfg.agent).loop).run
    try:
        loop(session)
        session.finish()
    except BaseException as exc:
        session.fail(exc)
        raise
    finally:
        session.close()
    return session.records
