"""`drlbench dataset collect`: D4RL-style datasets made with drlbench's own agents.

The D4RL recipe (Fu et al. 2020), with a behaviour agent trained here instead of downloaded:
- expert: the behaviour agent's final policy (trained for the suite's budget);
- medium: the first policy snapshot whose evaluation return lies between 1/3 and 1/2 of the way
  from the random score to the expert's (D4RL: "about a third of the expert"); if none does (a
  sudden jump in learning), the snapshot nearest 0.4 of the way;
- medium-replay: that run's replay buffer up to the medium snapshot (every transition it saw);
- medium-expert: medium and expert rollouts concatenated (N each);
- random: the uniform policy.
Policies act stochastically (sampled actions), as D4RL's. Rollouts run one environment reset with
seed `seed`, then autoreset; a dataset is a deterministic function of (env, quality, N, seed,
behaviour run). The behaviour run is an ordinary run record (with `snapshots/` and `replay.pt`)
under `<data>/behaviour/`, trained once and reused by every quality; `--policy RUN_DIR` names one.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from drlbench.errors import UsageError

SNAPSHOTS = "snapshots"
MEDIUM_BAND = (1 / 3, 1 / 2)


def rollouts(env_id: str, policy, transitions: int, seed: int) -> dict[str, np.ndarray]:
    """`transitions` steps of `policy` (obs (1, 1, d) -> action in [-1, 1]) in one environment."""
    from drlbench import envs
    from drlbench.harness import ActionAdapter

    env = envs.make(env_id, 1, "cpu")
    adapter = ActionAdapter(env.action_space, torch.device("cpu"))
    columns = {k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")}
    obs = env.reset([seed])
    with torch.no_grad():
        for _ in range(transitions):
            action = adapter(policy(obs.view(1, 1, -1)).reshape(1, -1))
            step = env.step(action)
            for key, value in (("observations", obs), ("actions", action), ("rewards", step.reward),
                               ("next_observations", step.final_obs), ("terminals", step.terminated),
                               ("timeouts", step.truncated & ~step.terminated)):
                columns[key].append(value[0].numpy().copy())
            obs = step.obs
    env.close()
    return {k: np.stack(v) for k, v in columns.items()}


def uniform_policy(action_dim: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    return lambda obs: torch.rand(1, 1, action_dim, generator=generator) * 2 - 1


def load_policy(run_path: Path, weights: Path, seed: int):
    """The agent of a run record with the weights in `weights`, acting stochastically from `seed`."""
    from drlbench import envs
    from drlbench.agents import get_agent
    from drlbench.config import build
    from drlbench.population import Population

    meta = json.loads((run_path / "run.json").read_text())
    agent_cls = get_agent(meta["agent"])
    names = {f for f in agent_cls.Config.__dataclass_fields__}
    (config,), _ = build([agent_cls.Config], {k: v for k, v in meta["hyperparameters"].items() if k in names}, [])
    env = agent_cls.wrap_env(envs.make(meta["env_id"], 1, "cpu"), config)
    agent = agent_cls(env.observation_space, env.action_space, config, Population([seed]))
    env.close()
    agent.load_state_dict(torch.load(weights, map_location="cpu", weights_only=False))
    agent.eval()
    return lambda obs: agent.act(obs, deterministic=False)


def snapshots(run_path: Path) -> list[tuple[int, float, Path]]:
    """(step, evaluation return, weights) of every snapshot a behaviour run kept, by step."""
    returns = {}
    csv = run_path / "evaluations.csv"
    if csv.exists():
        for line in csv.read_text().splitlines()[1:]:
            step, mean = line.split(",")[:2]
            returns[int(float(step))] = float(mean)
    found = []
    for path in (run_path / SNAPSHOTS).glob("step_*.pt"):
        step = int(path.stem.split("_")[1])
        found.append((step, returns.get(step, float("nan")), path))
    return sorted(found)


def pick_medium(found, random_score: float) -> tuple[int, float, Path]:
    expert = found[-1][1]
    fraction = [(s, (s[1] - random_score) / (expert - random_score)) for s in found]
    low, high = MEDIUM_BAND
    inside = [s for s, f in fraction if low <= f <= high]
    return inside[0] if inside else min(fraction, key=lambda sf: abs(sf[1] - (low + high) / 2))[0]


def replay_rows(run_path: Path, until_step: int, env_id: str) -> dict[str, np.ndarray]:
    """The behaviour run's replay buffer (rows in time order) up to `until_step`, in the D4RL layout."""
    from drlbench import envs
    from drlbench.harness import ActionAdapter

    state = torch.load(run_path / "replay.pt", map_location="cpu", weights_only=False)
    table = state["table"][0, :until_step]
    obs_dim, act_dim = state["obs_dim"], state["act_dim"]
    obs, action, reward, next_obs, terminal = table.split([obs_dim, act_dim, 1, obs_dim, 1], dim=-1)
    env = envs.make(env_id, 1, "cpu")
    action = ActionAdapter(env.action_space, torch.device("cpu"))(action)
    env.close()
    terminal = terminal.squeeze(-1) > 0.5
    ends = torch.ones_like(terminal)
    ends[:-1] = (next_obs[:-1] != obs[1:]).any(-1) | terminal[:-1]
    return {"observations": obs.numpy(), "actions": action.numpy(), "rewards": reward.squeeze(-1).numpy(),
            "next_observations": next_obs.numpy(), "terminals": terminal.numpy(),
            "timeouts": (ends & ~terminal).numpy()}


def train_behaviour(env_id: str, agent: str, seed: int, steps: int | None, folder: Path, quiet: bool,
                    overrides: list[str] = (), eval_every: int | None = None) -> Path:
    """Train (or finish, or reuse) the behaviour run; returns its run directory."""
    import dataclasses

    from drlbench.config import resolve
    from drlbench.harness import train
    from drlbench.records import RunRecord, run_dir

    config = resolve(agent, env_id, overrides, steps=steps, out=folder, progress="off" if quiet else "bar",
                     tag="behaviour", eval_every=eval_every)
    config = dataclasses.replace(config, seeds=(seed,), snapshots=True)
    path = run_dir(folder, config.env_id, config.label, seed)
    if (path / "run.json").exists() and RunRecord.load(path).meta.get("status") == "completed":
        return path
    torch.set_num_threads(1)
    train(config, resume=(path / "checkpoint.pt").exists())
    return path


def collect(env_id: str, quality: str, transitions: int, seed: int, out: Path, policy: Path | None = None,
            agent: str = "sac", steps: int | None = None, quiet: bool = False, overrides: list[str] = (),
            eval_every: int | None = None) -> tuple[Path, dict]:
    """Write the dataset; returns its path and its metadata."""
    from drlbench import __version__, envs
    from drlbench.config import suite_of
    from drlbench.datasets.d4rl import save_d4rl_hdf5
    from drlbench.datasets.registry import QUALITIES, data_folder

    if quality not in QUALITIES:
        raise UsageError(f"--quality {quality}: choose from {', '.join(QUALITIES)}")
    probe = envs.make(env_id, 1, "cpu")
    action_dim = probe.action_space.shape[0]
    probe.close()
    suite = suite_of(env_id)
    random_score = suite.reference(env_id)[0] if suite else None
    meta = {"env_id": env_id, "quality": quality, "seed": seed, "transitions": transitions,
            "drlbench_version": __version__, "recipe": "D4RL (Fu et al. 2020) with drlbench's own behaviour agent"}
    if quality == "random":
        data = rollouts(env_id, uniform_policy(action_dim, seed), transitions, seed)
        meta["behaviour_policy"] = "uniform random"
    else:
        run = Path(policy) if policy else train_behaviour(env_id, agent, seed, steps, data_folder() / "behaviour",
                                                          quiet, overrides, eval_every)
        if not (run / "run.json").exists():
            raise UsageError(f"--policy {run}: not a run directory (no run.json)")
        found = snapshots(run)
        if not found:
            raise UsageError(f"--policy {run}: the run kept no policy snapshots (train it with `dataset collect`)")
        if random_score is None:
            raise UsageError(f"{env_id} is in no suite: no random score to place the medium policy")
        medium, expert = pick_medium(found, random_score), found[-1]
        meta.update(behaviour_run=str(run), behaviour_agent=json.loads((run / "run.json").read_text())["agent"],
                    expert_step=expert[0], expert_return=expert[1], medium_step=medium[0], medium_return=medium[1])
        parts = []
        if quality in ("medium", "medium-expert"):
            parts.append(rollouts(env_id, load_policy(run, medium[2], seed), transitions, seed))
        if quality in ("expert", "medium-expert"):
            parts.append(rollouts(env_id, load_policy(run, expert[2], seed + 1), transitions, seed + 1))
        if quality == "medium-replay":
            parts.append(replay_rows(run, medium[0], env_id))
        for part in parts:   # each part ends an episode, so concatenated parts do not run into each other
            part["timeouts"][-1] = not part["terminals"][-1]
        data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        meta["behaviour_policy"] = {"medium": f"step {medium[0]}", "expert": f"step {expert[0]}",
                                    "medium-replay": f"replay up to step {medium[0]}",
                                    "medium-expert": f"steps {medium[0]} and {expert[0]}"}[quality]
    ends = data["terminals"] | data["timeouts"]
    episode_returns = np.add.reduceat(data["rewards"], np.r_[0, np.flatnonzero(ends)[:-1] + 1]) if ends.any() else []
    meta["behaviour_return_mean"] = float(np.mean(episode_returns)) if len(episode_returns) else float("nan")
    save_d4rl_hdf5(out, data["observations"], data["actions"], data["rewards"], data["terminals"], data["timeouts"],
                   next_observations=data["next_observations"], metadata=meta)
    return Path(out), meta
