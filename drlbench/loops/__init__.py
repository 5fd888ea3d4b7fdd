"""Training loops. Each loop is a module here with a `Config` dataclass of its own settings
(preset files fill it in like any hyperparameter) and `run(session)`, and optionally `check(run_config)` (refusals made before any
record is written). An agent names its loop
in `Agent.loop`; the harness looks it up with `get_loop` and never names an agent.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any


def get_loop(name: str) -> ModuleType:
    """The loop module `drlbench.loops.<name>` (off_policy, on_policy, streaming, ...)."""
    return importlib.import_module(f"drlbench.loops.{name}")


@dataclass
class MixedBatch:
    """What the hybrid loop hands `agent.update`: minibatches (each a `drlbench.agents.Batch`, leading
    shape (P, B)) from the fixed real dataset and from the simulator's FIFO buffer, for the value and
    policy losses (`real`, `sim`) and, drawn separately, for dynamics discriminators."""
    real: Any
    sim: Any
    discriminator_real: Any
    discriminator_sim: Any
