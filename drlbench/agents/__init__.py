"""Agent registry: name -> class. One file per agent in this package; every `Agent` subclass
with a `name` defined in a module here is registered (no list to edit when adding one)."""
from __future__ import annotations

import importlib
import pkgutil

from drlbench.agents.base import Agent, Batch
from drlbench.errors import unknown


def _discover() -> dict[str, type[Agent]]:
    found: dict[str, type[Agent]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, Agent) and obj.__module__ == module.__name__
                    and "name" in vars(obj)):
                found[obj.name] = obj
    return dict(sorted(found.items()))


AGENTS: dict[str, type[Agent]] = _discover()


def get_agent(name: str) -> type[Agent]:
    try:
        return AGENTS[name.lower().replace("-", "_")]   # dsac-t == dsac_t
    except KeyError:
        raise unknown("agent", name, AGENTS) from None


__all__ = ["AGENTS", "Agent", "Batch", "get_agent"]
