"""The off-policy loop: environment -> replay buffer -> agent.update (SAC, TD3, ...)."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from drlbench.buffer import ReplayBuffer
from drlbench.domains import hp
from drlbench.errors import UsageError
from drlbench.harness import NonFiniteError, Session
from drlbench.records import atomic_torch_save


@dataclass(frozen=True)
class Config:
    buffer_size: int = hp("[1, inf)")  # transitions kept per member
    batch_size: int = hp("[1, inf)", at_most="buffer_size")
    random_steps: int = hp("[0, inf)", at_most="steps", soft=True)  # uniform-random actions for the first steps of each member
    learning_starts: int = hp("[0, inf)", at_most="steps")  # no updates before this many environment steps
    updates_per_step: float = hp("(0, inf)")  # gradient updates per environment step (UTD ratio)
    cuda_graph: bool = hp()   # sample + update replayed as CUDA graphs (drlbench.cuda_graph); --device cuda, sac/td3
    compile: bool = hp()      # the update's tensor-only parts (Agent.compiled_parts) run through torch.compile


def has_cpp_compiler() -> bool:
    """Whether Inductor finds a C++ compiler (it compiles its CPU kernels): $CXX, g++, c++ or clang++."""
    return any(map(shutil.which, (os.environ.get("CXX", "g++"), "c++", "clang++")))


def check(run_config) -> None:
    """Refuse `cuda_graph = true` or `compile = true` where it cannot run, before any run record is written."""
    from drlbench.agents import AGENTS, get_agent

    if run_config.loop.compile:
        compiled = [name for name, cls in AGENTS.items() if cls.compiled_parts]
        if not get_agent(run_config.agent).compiled_parts:
            raise UsageError(f"compile=true: compiled updates are written for {', '.join(compiled)}, "
                             f"not {run_config.agent}")
        if run_config.loop.cuda_graph:
            raise UsageError("compile=true and cuda_graph=true: choose one")
        if str(run_config.device) == "cpu" and not has_cpp_compiler():
            raise UsageError("compile=true on CPU needs a C++ compiler (g++, c++ or clang++; or set CXX): none found")
    if not run_config.loop.cuda_graph:
        return
    from drlbench.cuda_graph import graphed_agents

    if not str(run_config.device).startswith("cuda"):
        raise UsageError(f"cuda_graph=true needs --device cuda (this run's device is {run_config.device})")
    if not get_agent(run_config.agent).graph_cycle:
        raise UsageError(f"cuda_graph=true: CUDA graph capture is written for {', '.join(graphed_agents())}, "
                         f"not {run_config.agent}")


def run(session: Session) -> None:
    """env -> replay buffer -> agent.update, for P members x N environments each.

    Time limits: the buffer stores `terminated` only, so truncated transitions bootstrap from
    their true final observation (`Step.final_obs`) and terminal ones do not.

    With `compile`, the agent's `compiled_parts` run through torch.compile (Agent.compile_parts).
    With `cuda_graph`, updates are CUDA graph replays (drlbench.cuda_graph.GraphedUpdate) and
    their losses are checked for NaN/inf at each evaluation and at the end, not after every update.
    """
    cfg: Config = session.cfg.loop
    agent, env, pop = session.agent, session.env, session.population
    members, n = session.members, session.cfg.num_envs
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    buffer = ReplayBuffer(pop, cfg.buffer_size, obs_dim, act_dim)
    state = session.loop_state
    if state is None:
        obs, update_debt = env.reset(session.train_seeds), 0.0
    else:
        buffer.load_state_dict(state["buffer"])
        obs, update_debt = state["obs"], state["update_debt"]
    if cfg.compile:
        agent.compile_parts()
    graphed = None
    if cfg.cuda_graph:
        from drlbench.cuda_graph import GraphedUpdate

        graphed = GraphedUpdate(agent, buffer, cfg.batch_size)
    checked_at = session.step
    session.begin()

    while session.step < session.cfg.steps:
        member_obs = obs.view(members, n, obs_dim)
        if session.step < cfg.random_steps:
            action = pop.rand(n, act_dim) * 2.0 - 1.0
        else:
            action = agent.act(member_obs, deterministic=False)
        step = env.step(session.adapter(action.reshape(members * n, act_dim)))
        buffer.add(member_obs, action, step.reward.view(members, n),
                   step.final_obs.view(members, n, obs_dim), step.terminated.view(members, n))
        obs = step.obs
        session.step += n
        if session.step >= cfg.learning_starts:
            update_debt += n * cfg.updates_per_step
            while update_debt >= 1.0:
                if graphed is None:
                    session.check_finite(agent.update(buffer.sample(cfg.batch_size)))
                else:
                    session.metrics = graphed()
                update_debt -= 1.0
        if graphed is not None and (session.step >= session.next_eval or session.step >= session.cfg.steps):
            if graphed.saw_nonfinite():   # one host sync per evaluation
                session.check_finite(session.metrics)   # names the members if the latest update is bad
                raise NonFiniteError(f"non-finite losses in an update between step {checked_at} and {session.step}")
            checked_at = session.step
        session.after_step(lambda: {"buffer": buffer.state_dict(), "obs": obs, "update_debt": update_debt})
    if session.cfg.snapshots:   # every transition in order (buffer_size >= steps), for medium-replay datasets
        atomic_torch_save(session.paths[0] / "replay.pt", {**buffer.state_dict(), "obs_dim": obs_dim,
                                                           "act_dim": act_dim})

