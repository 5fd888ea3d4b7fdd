"""One off-policy training update -- `buffer.sample_device_size` + `agent.update` -- captured as
CUDA graphs and replayed (the off-policy loop's `cuda_graph = true`; SAC and TD3).

A replay launches the whole update (P members' minibatch draws, both critics, actor, temperature,
Adam, Polyak) as one graph: no Python, no per-kernel launch cost. The standard recipe, with what
this code base needs on top:

- warm-up: the first `warmup` updates run eagerly on a side stream (Adam creates its state, the
  allocator settles), then the graphs are captured; every later update is a replay.
- randomness: each population member draws from its own `torch.Generator`; every generator is
  registered with every graph (`CUDAGraph.register_generator_state`), so a replay reads the
  generator's current Philox offset and advances it as the eager ops would. Eager draws between
  replays (exploration noise in `agent.act`) and replays share one stream per member, and a
  replay draws what the same eager update would have drawn from that state.
- buffer size: it grows every step while the buffer fills; `ReplayBuffer.sample_device_size`
  reads it from a device tensor that `add` updates, so one graph serves every size.
- optimizers: Adam must be `capturable` to be captured (its step count lives on the device);
  `make_optimizers_capturable` switches an agent's optimizers in place, state unchanged.
- Python branches: `agent.updates` and `if updates % k == 0` (SAC's target update interval,
  TD3's policy delay) cannot live in a graph. The update cycle has `k` phases (`updates % k`);
  one graph is captured per phase and the phase's graph replays, while `agent.updates` advances
  in Python. Capture starts at phase k - 1, the phase that takes the branch, so state the branch
  sets (TD3's `last_actor` metrics) is the graph's own output when the other phases return it.
- no host sync inside: instead of `Session.check_finite` after every update, each graph ORs
  "some loss is not finite" into a device flag; the loop reads it once per evaluation.

Agents whose update has other Python-side state or host syncs must not be graphed: an agent
opts in by naming its cycle's config field in `Agent.graph_cycle` (SAC, TD3; subclasses that change
the update set it back to None).
"""
from __future__ import annotations

import torch

from drlbench.agents.base import Agent
from drlbench.buffer import ReplayBuffer


def graphed_agents() -> list[str]:
    """The agents whose `update` is written to be captured (`Agent.graph_cycle` set)."""
    from drlbench.agents import AGENTS

    return [name for name, cls in AGENTS.items() if cls.graph_cycle]


def cycle_length(agent: Agent) -> int:
    """Phases of the agent's update cycle: one graph each. Refuses agents not written for graphs."""
    if not agent.graph_cycle:
        raise ValueError(f"CUDA graph capture is written for {', '.join(graphed_agents())}, not {agent.name}")
    return int(getattr(agent.config, agent.graph_cycle))


def make_optimizers_capturable(agent: Agent) -> None:
    """Switch every optimizer in `agent.optimizers` to `capturable=True` in place: same objects,
    same moments and step counts (a step count kept as a host tensor moves to its parameter's
    device, float32, as Adam keeps it when capturable)."""
    for optimizer in agent.optimizers.values():
        for group in optimizer.param_groups:
            if "capturable" not in group:
                raise ValueError(f"{type(optimizer).__name__} has no capturable mode")
            group["capturable"] = True
            for param in group["params"]:
                state = optimizer.state.get(param)
                if state and torch.is_tensor(state.get("step")) and state["step"].device != param.device:
                    state["step"] = state["step"].to(device=param.device, dtype=torch.float32)
        if hasattr(optimizer, "state_changed"):   # LeanAdam keeps lists of its state tensors
            optimizer.state_changed()


class GraphedUpdate:
    """`update()` = one `agent.update(buffer.sample_device_size(batch_size))`: eager for the
    first `warmup` calls (and until the cycle reaches the capture phase), a graph replay after.
    Returns the update's metrics; under graphs these are the graph's static output tensors,
    overwritten by the next replay of the same phase."""

    def __init__(self, agent: Agent, buffer: ReplayBuffer, batch_size: int, warmup: int = 3):
        device = buffer.table.device
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device; the buffer is on {device}")
        self.agent, self.buffer, self.batch_size = agent, buffer, batch_size
        self.cycle = cycle_length(agent)
        self.warmup = warmup
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.outputs: dict[int, dict[str, torch.Tensor]] = {}
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=device)   # sticky: some loss was NaN/inf
        self.metrics: dict[str, torch.Tensor] = {}
        self.side_stream = torch.cuda.Stream(device=device)
        buffer.size_tensor   # start keeping the size on the device

    def _update(self) -> dict[str, torch.Tensor]:
        metrics = self.agent.update(self.buffer.sample_device_size(self.batch_size))
        self.nonfinite.logical_or_(~torch.isfinite(torch.stack(list(metrics.values()))).all())
        return metrics

    def __call__(self) -> dict[str, torch.Tensor]:
        if not self.graphs:
            if self.warmup > 0 or self.agent.updates % self.cycle != self.cycle - 1:
                self.side_stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(self.side_stream):
                    self.metrics = self._update()
                torch.cuda.current_stream().wait_stream(self.side_stream)
                self.warmup = max(self.warmup - 1, 0)
                return self.metrics
            self.capture()
        phase = self.agent.updates % self.cycle
        self.graphs[phase].replay()
        self.agent.updates += 1
        self.metrics = self.outputs[phase]
        return self.metrics

    def capture(self) -> None:
        """One graph per phase, from the current phase on. Capturing runs no kernel: parameters,
        optimizer state and generators are untouched, and `agent.updates` is put back."""
        make_optimizers_capturable(self.agent)
        start = self.agent.updates
        torch.cuda.synchronize()
        for k in range(self.cycle):
            phase = (start + k) % self.cycle
            graph = torch.cuda.CUDAGraph()
            for generator in self.agent.population.generators:
                graph.register_generator_state(generator)
            with torch.cuda.graph(graph):
                outputs = self._update()
            self.graphs[phase], self.outputs[phase] = graph, outputs
        self.agent.updates = start

    def saw_nonfinite(self) -> bool:
        """Whether any update so far produced a NaN or infinite metric (one host sync)."""
        return bool(self.nonfinite)
