"""Training loops. Each loop is a module here with a `Config` dataclass of its own settings
(preset files fill it in like any hyperparameter) and `run(session)`, and optionally `check(run_config)` (refusals made before any
record is written). An agent names its loop
in `Agent.loop`; the harness looks it up with `get_loop` and never names an agent.
"""
from __future__ import annotations

import importlib
from types import ModuleType


def get_loop(name: str) -> ModuleType:
    """The loop module `drlbench.loops.<name>` (off_policy, on_policy, streaming, ...)."""
    return importlib.import_module(f"drlbench.loops.{name}")
