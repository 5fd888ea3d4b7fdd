"""Off-policy throughput on one device: SAC and TD3 with P = 1, 10, 100 seeds batched as one
population, eager updates vs CUDA-graph updates (drlbench.cuda_graph) vs compiled updates (the loop's
`compile=true`: Agent.compile_parts, torch.compile; Triton kernels on CUDA), on environments that run
on the device: torch-native Pendulum-v1 and MuJoCo Warp HalfCheetah-v5 (`warp:HalfCheetah-v5`,
when the warp extra is installed and the device is CUDA).

    # on one H100 (about 4 minutes, of which ~1 min compiling Warp's kernels when the cache is cold):
    python benchmarks/offpolicy_gpu.py --device cuda --json benchmarks/results/offpolicy_gpu_h100.json
    # CPU smoke test (eager only, small networks, P = 1 and 10):
    taskset -c 1 env OMP_NUM_THREADS=1 python benchmarks/offpolicy_gpu.py --device cpu --steps 50

What one "step" is: the off-policy loop's body (drlbench/loops/off_policy.py) with one
environment per member and one update per environment step (SAC/TD3's UTD 1): `agent.act`
(stochastic), the batched env step, `buffer.add`, then one update of every member. Columns:
- loop it/s: loop iterations per second; env steps/s = P x that (every member steps once);
- updates/s: the update alone (minibatch sampling + agent.update), calls per second; member
  updates/s = P x that;
- graph/eager, compile/eager: the same column's ratio over eager, on the same device in the same run.
Eager updates sample with `ReplayBuffer.sample` (the loop's path); graph updates replay
`sample_device_size` + `update` (one graph per phase of the update cycle). Acting and the
environment step stay eager in both modes. Networks: the presets' 256-256 unless --hidden; batch
256 unless --batch-size. The buffer is pre-filled with --prefill random-action steps (untimed).
Each number is one timed block of --steps iterations (stopped early after --max-seconds), after
--warmup untimed iterations (which include the graph capture or the compilation), with a device synchronise at
both ends. On CPU only eager runs (CUDA graphs need a CUDA device) and the defaults shrink
(P = 1, 10; 64-64 networks; batch 64) so that the script is a smoke test there.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from env_throughput import human  # noqa: E402
from warp_throughput import cpu_name  # noqa: E402

from drlbench import envs  # noqa: E402
from drlbench.agents import get_agent  # noqa: E402
from drlbench.buffer import ReplayBuffer  # noqa: E402
from drlbench.config import build, load_preset  # noqa: E402
from drlbench.harness import ActionAdapter  # noqa: E402
from drlbench.loops.off_policy import Config as OffPolicyConfig  # noqa: E402
from drlbench.population import Population  # noqa: E402


class Setup:
    """One population of P seeds (0..P-1) training `agent` on `env_id`, one env per member."""

    def __init__(self, agent: str, env, members: int, device: str, hidden: str, batch_size: int, capacity: int):
        cls = get_agent(agent)
        (hp, _), _ = build([cls.Config, OffPolicyConfig], load_preset(agent, None),
                           [f"hidden_sizes={hidden}", f"batch_size={batch_size}"])
        self.population = Population(list(range(members)), device)
        self.env = cls.wrap_env(env, hp)
        self.agent = cls(self.env.observation_space, self.env.action_space, hp, self.population)
        self.adapter = ActionAdapter(self.env.action_space, self.population.device)
        self.obs_dim = self.env.observation_space.shape[0]
        self.act_dim = self.env.action_space.shape[0]
        self.buffer = ReplayBuffer(self.population, capacity, self.obs_dim, self.act_dim)
        self.members, self.batch_size = members, batch_size
        self.obs = self.env.reset([1000 * s for s in range(members)])

    def env_step(self, random: bool = False) -> None:
        """The off-policy loop's act -> env.step -> buffer.add, N = 1 env per member."""
        member_obs = self.obs.view(self.members, 1, self.obs_dim)
        if random:
            action = self.population.rand(1, self.act_dim) * 2.0 - 1.0
        else:
            action = self.agent.act(member_obs, deterministic=False)
        step = self.env.step(self.adapter(action.reshape(self.members, self.act_dim)))
        self.buffer.add(member_obs, action, step.reward.view(self.members, 1),
                        step.final_obs.view(self.members, 1, self.obs_dim), step.terminated.view(self.members, 1))
        self.obs = step.obs

    def eager_update(self) -> None:
        self.agent.update(self.buffer.sample(self.batch_size))


def timed(fn, steps: int, max_seconds: float, sync) -> float:
    """Calls per second of `fn` over one block of up to `steps` calls (fewer past max_seconds)."""
    sync()
    start = time.perf_counter()
    done = 0
    while done < steps:
        fn()
        done += 1
        if done % 10 == 0 and time.perf_counter() - start > max_seconds:
            break
    sync()
    return done / (time.perf_counter() - start)


def measure(agent: str, env_id: str, env, members: int, mode: str, args, sync) -> dict:
    """One row; `env` has P sub-environments (built once per env and P: Warp builds are slow)."""
    setup = Setup(agent, env, members, args.device, args.hidden, args.batch_size,
                  max(args.prefill + 2 * (args.warmup + args.steps) + 16, args.batch_size))
    for _ in range(args.prefill):
        setup.env_step(random=True)
    if mode == "graph":
        from drlbench.cuda_graph import GraphedUpdate

        update = GraphedUpdate(setup.agent, setup.buffer, args.batch_size)
    else:
        if mode == "compile":
            setup.agent.compile_parts()
        update = setup.eager_update

    def loop_iteration():
        setup.env_step()
        update()

    for _ in range(args.warmup):   # eager warm-up and graph capture happen here
        loop_iteration()
    loop_rate = timed(loop_iteration, args.steps, args.max_seconds, sync)
    update_rate = timed(update, args.steps, args.max_seconds, sync)
    if mode == "graph":
        assert update.captured and not update.saw_nonfinite()
    return {"env": env_id, "agent": agent, "P": members, "mode": mode, "loop_it_per_s": loop_rate,
            "env_steps_per_s": members * loop_rate, "updates_per_s": update_rate,
            "member_updates_per_s": members * update_rate}


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else cpu_name()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--agents", nargs="+", default=["sac", "td3"])
    parser.add_argument("--envs", nargs="+", default=None,
                        help="default: Pendulum-v1 and warp:HalfCheetah-v5 on CUDA, Pendulum-v1 on CPU")
    parser.add_argument("--P", nargs="+", type=int, default=None,
                        help="seeds per population (default 1 10 100; CPU: 1 10)")
    parser.add_argument("--modes", nargs="+", default=None, choices=["eager", "graph", "compile"],
                        help="default: eager graph compile on CUDA, eager on CPU")
    parser.add_argument("--steps", type=int, default=1000, help="timed iterations per number")
    parser.add_argument("--max-seconds", type=float, default=3.0, help="stop a timed block after this long")
    parser.add_argument("--warmup", type=int, default=20, help="untimed loop iterations first (capture included)")
    parser.add_argument("--prefill", type=int, default=None, help="random-action steps before (default: batch size)")
    parser.add_argument("--hidden", default=None, help="hidden sizes, e.g. 256,256 (CPU default 64,64)")
    parser.add_argument("--batch-size", type=int, default=None, help="minibatch per member (default 256; CPU 64)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and the device here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    args.envs = args.envs or (["Pendulum-v1", "warp:HalfCheetah-v5"] if cuda else ["Pendulum-v1"])
    args.P = args.P or ([1, 10, 100] if cuda else [1, 10])
    args.modes = args.modes or (["eager", "graph", "compile"] if cuda else ["eager"])
    args.hidden = args.hidden or ("256,256" if cuda else "64,64")
    args.batch_size = args.batch_size or (256 if cuda else 64)
    args.prefill = args.batch_size if args.prefill is None else args.prefill
    notes = []
    if not cuda:
        args.modes = [m for m in args.modes if m != "graph"]
        notes.append("CUDA graphs need a CUDA device: eager only on CPU, small networks; a smoke test, "
                     "not a measurement of the GPU path")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    name = device_name(args.device)
    print(f"python {platform.python_version()}, torch {torch.__version__}; device {args.device} ({name}); "
          f"hidden {args.hidden}, batch {args.batch_size}, {args.steps} timed iterations (max {args.max_seconds} s), "
          f"{args.threads} CPU thread(s), CPU affinity {sorted(os.sched_getaffinity(0))}")
    rows = []
    print()
    print("| env | agent | P | mode | loop it/s | env steps/s | updates/s | member updates/s |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for env_id in args.envs:
        try:
            envs.make(env_id, 1, args.device).close()
        except Exception as exc:   # the warp extra missing, no GPU for Warp, ...
            notes.append(f"{env_id} skipped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        for members in args.P:
            env = envs.make(env_id, members, args.device)
            for agent in args.agents:
                for mode in args.modes:
                    row = measure(agent, env_id, env, members, mode, args, sync)
                    rows.append(row)
                    print(f"| {env_id} | {agent} | {members} | {mode} | {human(row['loop_it_per_s'])} | "
                          f"{human(row['env_steps_per_s'])} | {human(row['updates_per_s'])} | "
                          f"{human(row['member_updates_per_s'])} |", flush=True)
            env.close()
    ratios = []
    for row in rows:
        if row["mode"] != "eager":
            eager = next((r for r in rows if r["mode"] == "eager" and
                          (r["env"], r["agent"], r["P"]) == (row["env"], row["agent"], row["P"])), None)
            if eager:
                ratios.append((row, row["loop_it_per_s"] / eager["loop_it_per_s"],
                               row["updates_per_s"] / eager["updates_per_s"]))
    if ratios:
        print("\n| env | agent | P | mode | loop / eager | updates / eager |")
        print("|---|---|---:|---|---:|---:|")
        for row, loop_ratio, update_ratio in ratios:
            print(f"| {row['env']} | {row['agent']} | {row['P']} | {row['mode']} | {loop_ratio:.3g}x | "
                  f"{update_ratio:.3g}x |")
    for note in notes:
        print(f"\nnote: {note}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "device": args.device, "device_name": name, "torch": torch.__version__,
            "python": platform.python_version(), "settings": {k: (str(v) if isinstance(v, Path) else v)
                                                             for k, v in vars(args).items()},
            "notes": notes, "rows": rows}, indent=1) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
