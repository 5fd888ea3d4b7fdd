"""drlbench SAC and TD3 vs stable-baselines3 and SBX (SB3's JAX version), side by side, one CPU thread each.

drlbench runs twice per repeat: as a user's default run ("drlbench", eager), and with the off-policy
loop's `compile=true` ("drlbench compile": the update's tensor-only parts through torch.compile, as
SBX's update goes through XLA); `--libraries` picks a subset.

    taskset -c 1 .venv/bin/python benchmarks/offpolicy_vs_peers.py --agents sac,td3 \
        --warmup 1000 --steps 2000 --update-steps 1000 --repeats 5 --out runs/offpolicy_vs_peers

(or `--cpu 1` instead of taskset: the process pins itself, and the SBX worker inherits the pin.)

Settings, the same on all three (HalfCheetah-v5): 256-256 ReLU networks (actor and two critics),
batch 256, buffer 1e6, gamma 0.99, tau 0.005, Adam 3e-4 for every network, one gradient update per
environment step, `--warmup` uniform-random environment steps (no updates), then `--steps` timed
learning steps. Per agent:
- SAC: learned temperature starting at 1, target entropy -|A| (6 on HalfCheetah), actor and
  temperature updated every step, targets every step (the paper's Table 1; SB3's defaults); the
  temperature loss on the actor loss's sampled actions (`alpha_resample=false` on drlbench, whose
  preset re-samples after the actor step as softlearning does; SB3 and SBX do not).
  SBX 0.28.0: `ent_coef="auto"` (learned, init 1.0; SBX also takes "auto_0.1" etc.),
  `target_entropy="auto"` (-|A|), `policy_delay=1` (its default; >1 is an SBX extension),
  learning_rate 3e-4 (qf_learning_rate defaults to it), net_arch passed as [256, 256].
- TD3: the TD3 authors' code settings (drlbench's preset, SB3 as in offpolicy_vs_sb3.py): policy
  delay 2, target noise 0.2 clipped at 0.5, Gaussian exploration noise 0.1
  (NormalActionNoise(0, 0.1) on SB3 and SBX). SBX 0.28.0's TD3 defaults already are policy_delay 2,
  target noise 0.2 clipped at 0.5, learning_rate 3e-4, batch 256, net_arch [256, 256], but with no
  exploration noise (action_noise=None) and learning_starts 100: all passed explicitly.
SBX 0.28.0's policies (both agents) default to net_arch [256, 256] for actor and critics, 2
critics, ReLU, no layer norm, no dropout, optax.adam; SAC's actor is a tanh-squashed Gaussian
(log_std_init -3 only matters for gSDE, off here). n_steps=1 (plain one-step targets) on both.
SBX's settings as the model holds them are written to the JSON (`sbx_settings`).

What is timed, per library and repeat (wall clock, `time.perf_counter`):
- steps/s: `--steps` learning steps (environment step + replay insert + one gradient update),
  no evaluation inside; `steps` updates in the window, asserted on each side (drlbench
  `agent.updates`, SB3 and SBX `model._n_updates`).
  drlbench and SB3: benchmarks/offpolicy_vs_sb3.py's functions, imported (drlbench's harness
  clocked at the end of steps warmup and warmup + steps; SB3 `learn(warmup)` then
  `learn(steps)`). SBX (benchmarks/_sbx_worker.py, own venv, subprocess): `learn(warmup)`, then 2
  untimed learning steps that JIT-compile its update (two variants for TD3's delay offsets) and
  its action function (their time is reported as compile_s), then `learn(steps)`.
- updates/s alone: then, on the buffer that run filled (warmup + steps transitions, no
  environment), `--update-steps` gradient updates, one at a time as in the loop: drlbench
  `agent.update(buffer.sample(256))` (the harness's finiteness check left out); SB3 and SBX
  `model.train(gradient_steps=1, batch_size=256)` (SB3's buffer sample + update + logger).
  Update counts asserted on each side.
- drlbench compile: the same, with `compile=true`; its first 2 learning steps compile the update
  (Inductor; about 10 s cold, less with Inductor's on-disk cache warm) and run before the clock
  starts, as SBX's JIT steps do (reported as compile_s); then `--steps` timed steps as above.
Repeats alternate SB3, SBX, drlbench, drlbench compile (SBX's process starts fresh each repeat;
drlbench's runs share one process, so the compiled run's later repeats find the kernels compiled);
the table gives medians and ratios to SBX, the JSON every repeat.

One thread each: torch.set_num_threads(1) and OMP/MKL/OpenBLAS_NUM_THREADS=1 here and in the
worker; for JAX, XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
JAX_PLATFORMS=cpu. Pinning (taskset or --cpu) applies to all three.

SBX's venv (default /work/venvs/sbx, beside the repository) is created on first use: `python -m
venv`, torch at drlbench's version first (SB3 needs torch; left alone, pip takes the newest CUDA
build and ~3 GB of nvidia wheels), then sbx-rl 0.28.0 (pulls jax, flax, optax,
stable-baselines3), gymnasium[mujoco] and mujoco 3.17.0 (drlbench's MuJoCo).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offpolicy_vs_sb3 import ENV, drlbench_timed, sb3_steps_per_second  # noqa: E402

SBX_VERSION = "0.28.0"
MUJOCO_VERSION = "3.17.0"
WORKER = Path(__file__).resolve().with_name("_sbx_worker.py")
DEFAULT_VENV = Path(__file__).resolve().parents[2] / "venvs" / "sbx"   # beside the repository
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
BATCH = 256
LIBRARIES = ("stable-baselines3", "sbx", "drlbench", "drlbench compile")
COMPILE_UNTIMED = 2   # learning steps before the clock with compile=true: its first updates compile (SAC, TD3)


# ----------------------------------------------------------------------------- SBX's venv
def ensure_venv(venv: Path) -> Path:
    """SBX's interpreter, creating the venv (idempotent)."""
    python = venv / "bin" / "python"
    probe = (f"import sbx, jax, gymnasium, mujoco; assert sbx.__version__ == {SBX_VERSION!r}, sbx.__version__; "
             f"assert mujoco.__version__ == {MUJOCO_VERSION!r}, mujoco.__version__; gymnasium.make({ENV!r})")
    if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
        return python
    print(f"creating SBX's virtual environment in {venv} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    for packages in ([torch_pin], [f"sbx-rl=={SBX_VERSION}", "gymnasium[mujoco]", f"mujoco=={MUJOCO_VERSION}",
                                   torch_pin]):
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    subprocess.run([str(python), "-c", probe], check=True)
    print(f"SBX's venv ready in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return python


def sbx_run(python: Path, agent: str, warmup: int, steps: int, update_steps: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
        req.write_text(json.dumps({"agent": agent, "warmup": warmup, "steps": steps, "update_steps": update_steps,
                                   "seed": seed}), encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "XLA_FLAGS": XLA_FLAGS, "JAX_PLATFORMS": "cpu"}
        env.pop("PYTHONPATH", None)
        proc = subprocess.run([str(python), str(WORKER), "time", "--request", str(req), "--result", str(res)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"SBX worker failed with exit code {proc.returncode}:\n{proc.stdout[-3000:]}")
        return json.loads(res.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- drlbench and SB3
def updates_per_second(update, count, n: int) -> float:
    """n calls of `update()`, timed; `count()` must grow by exactly n."""
    before = count()
    start = time.perf_counter()
    for _ in range(n):
        update()
    elapsed = time.perf_counter() - start
    assert count() - before == n, (count() - before, n)
    return n / elapsed


def sb3_run(agent: str, warmup: int, steps: int, update_steps: int, seed: int) -> dict:
    """offpolicy_vs_sb3.sb3_steps_per_second, keeping its model for the update-alone timing."""
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    models, learn = [], OffPolicyAlgorithm.learn

    def keep(self, *args, **kwargs):
        models.append(self)
        return learn(self, *args, **kwargs)

    OffPolicyAlgorithm.learn = keep
    try:
        rate = sb3_steps_per_second(agent, warmup, steps, seed)
    finally:
        OffPolicyAlgorithm.learn = learn
    model = models[-1]
    alone = (updates_per_second(lambda: model.train(gradient_steps=1, batch_size=BATCH),
                                lambda: model._n_updates, update_steps) if update_steps else None)
    return {"steps_per_second": rate, "updates_per_second_alone": alone,
            "buffer_size_at_update_timing": int(model.replay_buffer.size())}


def drlbench_run(agent: str, warmup: int, steps: int, update_steps: int, seed: int, compiled: bool = False) -> dict:
    """offpolicy_vs_sb3.drlbench_timed, keeping its agent and replay buffer. With `compiled`, the run
    has compile=true and its first COMPILE_UNTIMED learning steps (which compile) are left out of
    the clock, as SBX's JIT compilation is (their time is reported as compile_s)."""
    from drlbench.buffer import ReplayBuffer
    from drlbench.harness import Session

    kept: dict = {}
    after_step, sample = Session.after_step, ReplayBuffer.sample

    def keep_agent(self, loop_state):
        kept["agent"] = self.agent
        after_step(self, loop_state)

    def keep_buffer(self, *args, **kwargs):
        kept["buffer"] = self
        return sample(self, *args, **kwargs)

    Session.after_step, ReplayBuffer.sample = keep_agent, keep_buffer
    try:
        rate, untimed_s = drlbench_timed(agent, warmup, steps, seed, ("compile=true",) if compiled else (),
                                         COMPILE_UNTIMED if compiled else 0)
    finally:
        Session.after_step, ReplayBuffer.sample = after_step, sample
    ours, buffer = kept["agent"], kept["buffer"]
    alone = (updates_per_second(lambda: ours.update(buffer.sample(BATCH)), lambda: ours.updates, update_steps)
             if update_steps else None)
    size = getattr(buffer, "size", None)
    return {"steps_per_second": rate, "updates_per_second_alone": alone, **({"compile_s": untimed_s} if compiled else {}),
            "buffer_size_at_update_timing": int(size) if isinstance(size, (int, torch.Tensor)) else None}


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="sac,td3", help="comma-separated: sac, td3")
    parser.add_argument("--steps", type=int, default=2000, help="timed learning steps per run")
    parser.add_argument("--warmup", type=int, default=1000, help="uniform-random steps before (no updates)")
    parser.add_argument("--update-steps", type=int, default=None,
                        help="timed gradient updates alone per run (default: --steps; 0: none)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help=f"comma-separated, from: {', '.join(LIBRARIES)}")
    parser.add_argument("--cpu", type=int, help="pin this process and the SBX worker to this core")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"SBX's venv (default {DEFAULT_VENV})")
    parser.add_argument("--out", type=Path, default=Path("runs/offpolicy_vs_peers"))
    args = parser.parse_args()
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    if not agents or any(a not in ("sac", "td3") for a in agents):
        parser.error("--agents: sac and/or td3")
    args.libraries = [lib.strip() for lib in args.libraries.split(",") if lib.strip()]
    if not args.libraries or any(lib not in LIBRARIES for lib in args.libraries):
        parser.error(f"--libraries: from {', '.join(LIBRARIES)}")
    update_steps = args.steps if args.update_steps is None else args.update_steps
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    torch.set_num_threads(1)
    python = ensure_venv(args.venv)
    affinity = sorted(os.sched_getaffinity(0))
    load_before = os.getloadavg()[0]

    runs: list[dict] = []
    sbx_meta: dict = {}
    for agent in agents:
        for repeat in range(args.repeats):
            for library in args.libraries:
                if library == "stable-baselines3":
                    res = sb3_run(agent, args.warmup, args.steps, update_steps, repeat)
                elif library.startswith("drlbench"):
                    res = drlbench_run(agent, args.warmup, args.steps, update_steps, repeat,
                                       compiled=library == "drlbench compile")
                else:
                    res = sbx_run(python, agent, args.warmup, args.steps, update_steps, repeat)
                    sbx_meta[agent] = {k: res.pop(k) for k in ("settings", "versions", "jax_devices", "xla_flags")}
                runs.append({"agent": agent, "library": library, "repeat": repeat, "seed": repeat, **res})
                alone = res["updates_per_second_alone"]
                print(f"{agent} repeat {repeat}: {library:<18} {res['steps_per_second']:7.1f} steps/s"
                      + (f", {alone:7.1f} updates/s alone" if alone else ""), file=sys.stderr, flush=True)
    load_after = os.getloadavg()[0]
    report(runs, agents, args, update_steps, affinity, load_before, load_after, sbx_meta)


def median(runs: list[dict], agent: str, library: str, key: str) -> float | None:
    values = [r[key] for r in runs if r["agent"] == agent and r["library"] == library and r[key] is not None]
    return statistics.median(values) if values else None


def report(runs, agents, args, update_steps, affinity, load_before, load_after, sbx_meta) -> None:
    import stable_baselines3

    versions = next(iter(sbx_meta.values()))["versions"] if sbx_meta else {}
    print(f"\n{ENV}: {args.steps} learning steps after {args.warmup} uniform-random steps, then {update_steps} "
          f"updates alone; one thread each, CPUs {affinity}; median of {args.repeats} alternating repeats. "
          f"torch {torch.__version__}, stable-baselines3 {stable_baselines3.__version__}; SBX {versions.get('sbx')} "
          f"(jax {versions.get('jax')}, flax {versions.get('flax')}, its SB3 {versions.get('stable_baselines3')}). "
          f"1-min load average {load_before:.2f} before, {load_after:.2f} after\n")
    print("| library | agent | steps/s | updates/s alone | steps/s / SBX's | updates/s alone / SBX's |")
    print("|---|---|---|---|---|---|")
    for agent in agents:
        sbx = median(runs, agent, "sbx", "steps_per_second")
        sbx_alone = median(runs, agent, "sbx", "updates_per_second_alone")
        for library in args.libraries:
            rate = median(runs, agent, library, "steps_per_second")
            alone = median(runs, agent, library, "updates_per_second_alone")
            alone_s = f"{alone:.1f}" if alone else "-"
            ratio = f"{rate / sbx:.2f}x" if sbx else "-"
            ratio_alone = f"{alone / sbx_alone:.2f}x" if alone and sbx_alone else "-"
            print(f"| {library} | {agent.upper()} | {rate:.1f} | {alone_s} | {ratio} | {ratio_alone} |")
        untimed = [r["compile_s"] for r in runs if r["agent"] == agent and r.get("compile_s") is not None]
        if untimed:   # SBX compiles in every repeat (a fresh process); drlbench's later runs reuse the graphs
            print(f"\n{agent.upper()}: untimed first {COMPILE_UNTIMED} learning steps (JIT/compile), s per repeat: "
                  + "; ".join(f"{lib} " + ", ".join(f"{r['compile_s']:.1f}" for r in runs if r["agent"] == agent
                                                   and r["library"] == lib and r.get("compile_s") is not None)
                              for lib in ("sbx", "drlbench compile") if lib in args.libraries))
    print("\n(ratio = library / SBX: at least 1 means as fast as SBX or faster)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "offpolicy_vs_peers.json"
    payload = {"env": ENV, "agents": agents, "warmup": args.warmup, "steps": args.steps,
               "update_steps": update_steps, "repeats": args.repeats, "cpus": affinity,
               "load_average_1min": [load_before, load_after], "torch": torch.__version__,
               "stable_baselines3": stable_baselines3.__version__, "sbx": sbx_meta,
               "medians": {agent: {lib: {k: median(runs, agent, lib, k)
                                         for k in ("steps_per_second", "updates_per_second_alone")}
                                   for lib in args.libraries} for agent in agents},
               "runs": runs}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(f"every repeat: {path}")


if __name__ == "__main__":
    main()
