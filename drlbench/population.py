"""Seeds as a batch dimension: one population member per seed, each with its own random stream.

Every tensor an agent owns carries a leading population axis P. Member p draws all its
randomness (initial weights, exploration noise, minibatch indices) from its own generator,
seeded by its own seed, so member p's run does not depend on which other seeds share the batch.
"""
from __future__ import annotations

import torch


class Population:
    def __init__(self, seeds: list[int] | tuple[int, ...], device: str | torch.device = "cpu"):
        if not seeds:
            raise ValueError("a population needs at least one seed")
        self.seeds = tuple(int(s) for s in seeds)
        self.device = torch.device(device)
        self.generators = [torch.Generator(device=self.device) for _ in self.seeds]
        for generator, seed in zip(self.generators, self.seeds):
            generator.manual_seed(seed)

    @property
    def size(self) -> int:
        return len(self.seeds)

    def _draw(self, fn, shape, **kwargs) -> torch.Tensor:
        draws = [fn(*shape, generator=g, device=self.device, **kwargs) for g in self.generators]
        return draws[0].unsqueeze(0) if len(draws) == 1 else torch.stack(draws)

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal noise of shape (P, *shape), member p from generator p."""
        return self._draw(torch.randn, shape)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) noise of shape (P, *shape)."""
        return self._draw(torch.rand, shape)

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        """Integers in [0, high) of shape (P, *shape)."""
        draws = [torch.randint(high, shape, generator=g, device=self.device) for g in self.generators]
        return draws[0].unsqueeze(0) if len(draws) == 1 else torch.stack(draws)

    def state_dict(self) -> dict:
        return {"seeds": list(self.seeds), "rng": [g.get_state() for g in self.generators]}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["seeds"]) != self.seeds:
            raise ValueError(f"checkpoint seeds {state['seeds']} != population seeds {list(self.seeds)}")
        for generator, rng in zip(self.generators, state["rng"]):
            generator.set_state(rng)
