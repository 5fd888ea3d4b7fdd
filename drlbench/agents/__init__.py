"""Agent registry: name -> class. One file per agent in this package."""
from __future__ import annotations

from drlbench.agents.base import Agent, Batch
from drlbench.agents.sac import SAC
from drlbench.agents.td3 import TD3
from drlbench.errors import unknown

AGENTS: dict[str, type[Agent]] = {cls.name: cls for cls in (SAC, TD3)}


def get_agent(name: str) -> type[Agent]:
    try:
        return AGENTS[name.lower()]
    except KeyError:
        raise unknown("agent", name, AGENTS) from None


__all__ = ["AGENTS", "Agent", "Batch", "get_agent"]
