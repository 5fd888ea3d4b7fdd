"""d3rlpy's side of benchmarks/offline_vs_d3rlpy.py; runs inside d3rlpy's own virtual environment
(d3rlpy 2.8.1 pins gymnasium 1.0.0), never imports drlbench. The driver starts it once per run:

    python _d3rlpy_worker.py train|time --request request.json --result result.json

The request holds the agent (bc, td3_bc, iql, prdc), drlbench's resolved hyperparameters for it, the
D4RL-layout HDF5 file, the evaluation environment, the seed and the budgets. `train` trains with
d3rlpy's own `fit` loop and evaluates the deterministic policy every `eval_every` gradient steps
(and at step 0) on gymnasium's environment; `time` clocks `fit` between two gradient steps (no
evaluation inside). The result is JSON: evaluations, what d3rlpy fitted (scalers), its config.

Data, read as `d4rl.qlearning_dataset` reads it (what drlbench's loader does): a row with
`timeouts` ends an episode and is dropped (d3rlpy drops the last row of a non-terminated episode);
a `terminals` row that is not a time-out ends a terminated episode and is kept with its terminal
flag; the file's last row is never a transition (made a time-out here). Time-outs are never
terminals.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

EVAL_SEED_BASE = 10**9   # drlbench/harness.py: episode k of seed s is reset with 10**9 + 1000 s + k


def read_d4rl(path: str):
    """(observations, actions, rewards, terminals, timeouts) as d3rlpy's MDPDataset wants them."""
    import h5py

    with h5py.File(path, "r") as f:
        obs = np.asarray(f["observations"][()], dtype=np.float32)
        actions = np.asarray(f["actions"][()], dtype=np.float32)
        rewards = np.asarray(f["rewards"][()], dtype=np.float32).reshape(-1)
        terminals = np.asarray(f["terminals"][()]).reshape(-1).astype(bool)
        timeouts = (np.asarray(f["timeouts"][()]).reshape(-1).astype(bool) if "timeouts" in f
                    else np.zeros_like(terminals))
    if obs.ndim == 1:
        obs = obs[:, None]
    if actions.ndim == 1:
        actions = actions[:, None]
    terminals = terminals & ~timeouts   # a time-out row is dropped whether or not it is a terminal
    terminals[-1], timeouts[-1] = False, True   # qlearning_dataset never uses the last row
    return obs, actions, rewards, terminals.astype(np.float32), timeouts.astype(np.float32)


def make_dataset(path: str):
    import d3rlpy

    obs, actions, rewards, terminals, timeouts = read_d4rl(path)
    dataset = d3rlpy.dataset.MDPDataset(obs, actions, rewards, terminals, timeouts,
                                        action_space=d3rlpy.ActionSpace.CONTINUOUS)
    info = {"raw_rows": int(len(obs)), "episodes": len(dataset.episodes),
            "transitions": int(dataset.transition_count),
            "terminated_episodes": int(sum(e.terminated for e in dataset.episodes))}
    return dataset, info


def make_algo(agent: str, hp: dict, steps: int, low, high):
    """The d3rlpy algorithm whose settings match drlbench's resolved hyperparameters `hp`."""
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.optimizers import AdamFactory
    from d3rlpy.optimizers.lr_schedulers import CosineAnnealingLRFactory
    from d3rlpy.preprocessing import MinMaxActionScaler, ReturnBasedRewardScaler, StandardObservationScaler

    def encoder():
        return VectorEncoderFactory(hidden_units=list(hp["hidden_sizes"]), activation="relu")

    common = dict(
        batch_size=int(hp["batch_size"]),
        # drlbench standardises with the dataset's mean and population std + 1e-3 (float64 sums);
        # d3rlpy's StandardObservationScaler fits the same (over the same transitions), eps = 1e-3
        observation_scaler=StandardObservationScaler(eps=1e-3) if hp["normalize_states"] else None,
        # dataset actions are env units (Pendulum torque in [-2, 2]); drlbench maps them to [-1, 1]
        # with the evaluation environment's bounds, d3rlpy with these bounds (and back at predict)
        action_scaler=MinMaxActionScaler(minimum=np.asarray(low, np.float64), maximum=np.asarray(high, np.float64)),
    )
    if hp["normalize_rewards"] == "return_range":   # r * 1000 / (max - min episode return)
        common["reward_scaler"] = ReturnBasedRewardScaler(multiplier=1000.0)
    elif hp["normalize_rewards"] != "none":
        raise SystemExit(f"normalize_rewards={hp['normalize_rewards']!r} has no d3rlpy counterpart here")
    if agent == "bc":
        config = d3rlpy.algos.BCConfig(learning_rate=hp["actor_lr"], policy_type="deterministic",
                                       encoder_factory=encoder(), optim_factory=AdamFactory(), **common)
    elif agent == "td3_bc":
        config = d3rlpy.algos.TD3PlusBCConfig(
            actor_learning_rate=hp["actor_lr"], critic_learning_rate=hp["critic_lr"],
            actor_encoder_factory=encoder(), critic_encoder_factory=encoder(),
            actor_optim_factory=AdamFactory(), critic_optim_factory=AdamFactory(),
            gamma=hp["gamma"], tau=hp["tau"], n_critics=2, target_smoothing_sigma=hp["policy_noise"],
            target_smoothing_clip=hp["noise_clip"], alpha=hp["alpha"], update_actor_interval=int(hp["policy_delay"]),
            **common)
    elif agent == "iql":
        if hp["value_lr"] != hp["critic_lr"]:
            raise SystemExit("d3rlpy's IQL trains Q and V with one optimiser: value_lr must equal critic_lr")
        if (hp["log_std_min"], hp["log_std_max"]) != (-5.0, 2.0):
            raise SystemExit("d3rlpy's IQL fixes the policy's log std range to [-5, 2]")
        schedule = (CosineAnnealingLRFactory(T_max=int(steps)) if hp["actor_lr_schedule"] == "cosine" else None)
        config = d3rlpy.algos.IQLConfig(
            actor_learning_rate=hp["actor_lr"], critic_learning_rate=hp["critic_lr"],
            actor_encoder_factory=encoder(), critic_encoder_factory=encoder(), value_encoder_factory=encoder(),
            actor_optim_factory=AdamFactory(lr_scheduler_factory=schedule), critic_optim_factory=AdamFactory(),
            gamma=hp["gamma"], tau=hp["tau"], n_critics=2, expectile=hp["expectile"],
            weight_temp=hp["temperature"], max_weight=hp["max_weight"], **common)
    elif agent == "prdc":
        if (hp["reward_scale"], hp["reward_shift"]) != (1.0, 0.0):
            raise SystemExit("d3rlpy's PRDC has no reward scale/shift: use reward_scale=1 reward_shift=0")
        import d3rlpy.algos.qlearning.prdc as prdc
        from sklearn.neighbors import NearestNeighbors

        # d3rlpy searches with every core (n_jobs=-1); one core here, as drlbench (and as the timing is run)
        prdc.PRDC._nbsr = NearestNeighbors(n_neighbors=1, algorithm="auto", n_jobs=1)
        config = d3rlpy.algos.PRDCConfig(
            actor_learning_rate=hp["actor_lr"], critic_learning_rate=hp["critic_lr"],
            actor_encoder_factory=encoder(), critic_encoder_factory=encoder(),
            actor_optim_factory=AdamFactory(), critic_optim_factory=AdamFactory(),
            gamma=hp["gamma"], tau=hp["tau"], n_critics=2, target_smoothing_sigma=hp["policy_noise"],
            target_smoothing_clip=hp["noise_clip"], alpha=hp["alpha"], beta=hp["beta"],
            update_actor_interval=int(hp["policy_delay"]), **common)
    else:
        raise SystemExit(f"unknown agent {agent!r}")
    return config.create(device=False)   # CPU


def build(algo, dataset) -> dict:
    """Fit the scalers and build the networks now (fit() skips both when done), and say what was fitted."""
    from d3rlpy.algos.utility import build_scalers_with_transition_picker

    build_scalers_with_transition_picker(algo, dataset)
    algo.build_with_dataset(dataset)
    cfg, fitted = algo.config, {}
    if cfg.observation_scaler is not None:
        fitted["obs_mean"] = np.asarray(cfg.observation_scaler.mean).tolist()
        fitted["obs_std"] = np.asarray(cfg.observation_scaler.std).tolist()
    if cfg.reward_scaler is not None:
        fitted["return_max"], fitted["return_min"] = cfg.reward_scaler.return_max, cfg.reward_scaler.return_min
    fitted["action_min"] = np.asarray(cfg.action_scaler.minimum).tolist()
    fitted["action_max"] = np.asarray(cfg.action_scaler.maximum).tolist()
    return fitted


def evaluate(algo, env_id: str, seed: int, episodes: int) -> tuple[list[float], list[int]]:
    """drlbench's protocol: the deterministic policy, episode k reset with 10**9 + 1000 seed + k."""
    import gymnasium as gym

    env = gym.make(env_id)
    low, high = env.action_space.low, env.action_space.high
    returns, lengths = [], []
    for k in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED_BASE + 1000 * seed + k)
        total, length, done = 0.0, 0, False
        while not done:
            action = algo.predict(np.asarray(obs, np.float32)[None])[0]
            obs, reward, terminated, truncated, _ = env.step(np.clip(action, low, high))
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    env.close()
    return returns, lengths


def fit_quietly(algo, dataset, steps: int, per_epoch: int, **kwargs) -> None:
    import d3rlpy

    algo.fit(dataset, n_steps=steps, n_steps_per_epoch=per_epoch, show_progress=False, save_interval=10**9,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory(), experiment_name="offline_vs_d3rlpy", **kwargs)


def train(req: dict) -> dict:
    import d3rlpy

    steps, every, seed = req["steps"], req["eval_every"], req["seed"]
    if steps % every:
        raise SystemExit(f"steps {steps} is not a multiple of eval_every {every}")
    d3rlpy.seed(seed)
    dataset, info = make_dataset(req["dataset"])
    algo = make_algo(req["agent"], req["hyperparameters"], steps, req["action_low"], req["action_high"])
    fitted = build(algo, dataset)
    rows, train_time, clock = [], 0.0, [time.perf_counter()]
    final_returns: list[float] = []

    def record(step: int) -> None:
        nonlocal train_time, final_returns
        train_time += time.perf_counter() - clock[0]
        returns, lengths = evaluate(algo, req["eval_env"], seed, req["eval_episodes"])
        rows.append({"step": step, "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
                     "episodes": len(returns), "length_mean": float(np.mean(lengths)),
                     "wall_time_s": round(train_time, 3)})
        final_returns = returns
        print(f"d3rlpy {req['agent']} seed {seed} step {step}: {rows[-1]['return_mean']:.1f}",
              file=sys.stderr, flush=True)
        clock[0] = time.perf_counter()

    record(0)
    fit_quietly(algo, dataset, steps, every, epoch_callback=lambda algo_, epoch, total: record(total))
    assert algo.grad_step == steps, (algo.grad_step, steps)
    return {"evaluations": rows, "final_episode_returns": final_returns, "train_wall_time_s": round(train_time, 3),
            "dataset": info, "fitted": fitted, "d3rlpy_config": json.loads(algo.config.serialize()),
            "versions": versions()}


def time_steps(req: dict) -> dict:
    """Steps/s of d3rlpy's fit loop between gradient steps `warmup` and `warmup + steps`, and the
    share of it spent drawing minibatches (d3rlpy builds each one transition by transition)."""
    import d3rlpy

    warmup, steps = req["warmup"], req["steps"]
    d3rlpy.seed(req["seed"])
    dataset, _ = make_dataset(req["dataset"])
    algo = make_algo(req["agent"], req["hyperparameters"], warmup + steps, req["action_low"], req["action_high"])
    build(algo, dataset)
    sampling = {"time": 0.0, "on": False}
    sample = dataset.sample_transition_batch

    def timed_sample(batch_size):
        start = time.perf_counter()
        batch = sample(batch_size)
        if sampling["on"]:
            sampling["time"] += time.perf_counter() - start
        return batch

    dataset.sample_transition_batch = timed_sample
    clock = {}

    def callback(algo_, epoch, total):
        if total in (warmup, warmup + steps):
            clock[total] = time.perf_counter()
            sampling["on"] = total == warmup

    fit_quietly(algo, dataset, warmup + steps, warmup + steps, callback=callback)
    elapsed = clock[warmup + steps] - clock[warmup]
    return {"steps_per_second": steps / elapsed, "update_steps_per_second": steps / (elapsed - sampling["time"]),
            "sampling_fraction": sampling["time"] / elapsed, "versions": versions()}


def versions() -> dict:
    import d3rlpy
    import gymnasium

    return {"d3rlpy": d3rlpy.__version__, "torch": torch.__version__, "gymnasium": gymnasium.__version__,
            "numpy": np.__version__, "torch_threads": torch.get_num_threads()}


def quiet_d3rlpy() -> None:
    """d3rlpy logs every epoch through structlog at info level; keep errors only."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def main() -> None:
    parser = argparse.ArgumentParser(description="d3rlpy's side of benchmarks/offline_vs_d3rlpy.py")
    parser.add_argument("mode", choices=["train", "time"])
    parser.add_argument("--request", required=True, help="JSON file: what to run")
    parser.add_argument("--result", required=True, help="JSON file written at the end")
    args = parser.parse_args()
    torch.set_num_threads(1)
    quiet_d3rlpy()
    with open(args.request, encoding="utf-8") as f:
        req = json.load(f)
    result = train(req) if args.mode == "train" else time_steps(req)
    tmp = args.result + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.result)


if __name__ == "__main__":
    main()
