"""SBX's side of benchmarks/offpolicy_vs_peers.py; runs inside SBX's own virtual environment
(sbx-rl 0.28.0 with its JAX, flax and stable-baselines3 pins), never imports drlbench. The driver
starts it once per repeat:

    python _sbx_worker.py time --request request.json --result result.json

The request holds the agent (sac, td3), the seed, `warmup` (uniform-random steps, no updates),
`steps` (timed learning steps: one environment step + one gradient update each) and `update_steps`
(then timed gradient updates alone on the filled buffer, no environment). The settings are the
driver's (benchmarks/offpolicy_vs_peers.py docstring): the same as its SB3 runs, every one passed
explicitly rather than left to SBX's defaults.

JIT: SBX compiles its update (`_train`, one variant per policy-delay offset: two for TD3) and its
action function on first use. Those compilations are kept out of the timed windows: after the
`warmup` random steps the model takes COMPILE_STEPS untimed learning steps (timed separately,
reported as `compile_s`), then the `steps` window starts; the window holds exactly `steps` updates
(asserted), as on the other libraries' side. Every update ends with `.item()` on its losses
(SBX's logger), so JAX's asynchronous dispatch cannot move work out of the window.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# One XLA CPU thread (set before jax is imported; the driver sets them too).
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

ENV = "HalfCheetah-v5"
COMPILE_STEPS = 2   # untimed learning steps before the window: compiles both TD3 policy-delay offsets
BATCH = 256


def make_model(agent: str, warmup: int, seed: int):
    import gymnasium as gym
    import numpy as np
    from sbx import SAC, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    env = gym.make(ENV)
    common = dict(buffer_size=1_000_000, learning_starts=warmup, batch_size=BATCH, tau=0.005, gamma=0.99,
                  train_freq=1, gradient_steps=1, learning_rate=3e-4, seed=seed, verbose=0,
                  policy_kwargs={"net_arch": [256, 256]})
    if agent == "sac":
        # policy_delay=1: actor and temperature every update (SBX's default, the paper's)
        return SAC("MlpPolicy", env, ent_coef="auto", target_entropy="auto", policy_delay=1, **common)
    dims = env.action_space.shape[0]
    return TD3("MlpPolicy", env, policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5,
               action_noise=NormalActionNoise(np.zeros(dims), 0.1 * np.ones(dims)), **common)


def describe(model) -> dict:
    """The settings SBX actually runs with, read back from the model."""
    keys = ("learning_rate", "qf_learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma",
            "gradient_steps", "policy_delay", "target_policy_noise", "target_noise_clip", "ent_coef_init",
            "target_entropy")
    out = {k: getattr(model, k) for k in keys if hasattr(model, k)}
    out["train_freq"] = str(model.train_freq)
    out["action_noise"] = repr(model.action_noise)
    out["policy"] = type(model.policy).__name__
    for k in ("net_arch_pi", "net_arch_qf", "n_critics", "layer_norm", "dropout_rate"):
        if hasattr(model.policy, k):
            out[f"policy.{k}"] = repr(getattr(model.policy, k))
    for k in ("activation_fn", "optimizer_class"):
        if hasattr(model.policy, k):
            out[f"policy.{k}"] = getattr(getattr(model.policy, k), "__name__", repr(getattr(model.policy, k)))
    return json.loads(json.dumps(out, default=repr))


def time_run(req: dict) -> dict:
    import jax
    import torch

    torch.set_num_threads(1)
    agent, warmup, steps, seed = req["agent"], req["warmup"], req["steps"], req["seed"]
    model = make_model(agent, warmup, seed)
    model.learn(warmup)
    assert model._n_updates == 0, model._n_updates
    start = time.perf_counter()
    model.learn(COMPILE_STEPS, reset_num_timesteps=False)
    compile_s = time.perf_counter() - start
    updates = model._n_updates
    assert updates == COMPILE_STEPS, (updates, COMPILE_STEPS)
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    elapsed = time.perf_counter() - start
    assert model._n_updates - updates == steps, (model._n_updates - updates, steps)

    # The update alone: gradient_steps=1 per call (a minibatch draw from SB3's buffer + the jitted
    # update + the logger's .item()), as in the loop above, on the buffer the run filled.
    n = req["update_steps"]
    rate_alone = None
    if n:
        before = model._n_updates
        start = time.perf_counter()
        for _ in range(n):
            model.train(gradient_steps=1, batch_size=BATCH)
        alone = time.perf_counter() - start
        assert model._n_updates - before == n, (model._n_updates - before, n)
        rate_alone = n / alone
    import flax
    import gymnasium
    import mujoco
    import sbx
    import stable_baselines3

    return {"steps_per_second": steps / elapsed, "updates_per_second_alone": rate_alone, "compile_s": compile_s,
            "updates_in_window": steps, "buffer_size_at_update_timing": int(model.replay_buffer.size()),
            "settings": describe(model),
            "versions": {"sbx": sbx.__version__, "jax": jax.__version__, "jaxlib": jax.lib.__version__
                         if hasattr(jax.lib, "__version__") else None, "flax": flax.__version__,
                         "stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
                         "gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__},
            "jax_devices": [str(d) for d in jax.devices()], "xla_flags": os.environ.get("XLA_FLAGS")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["time"])
    parser.add_argument("--request", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    with open(args.request, encoding="utf-8") as f:
        req = json.load(f)
    result = time_run(req)
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
