"""`drlbench.envs.make`: the one entry point to every environment family.

An environment ID names its backend with an optional prefix:

    Pendulum-v1, CartPole-v1, ...      torch-native classic control (drlbench.envs.torch_classic)
    gym:Pendulum-v1                    gymnasium's own implementation, any registered gymnasium ID
    HalfCheetah-v5, Hopper-v5, ...     gymnasium (MuJoCo v5 and every other gymnasium ID)
    dmc:cheetah-run                    dm_control suite            (extra: drlbench[dmc])
    MiniGrid-Empty-8x8-v0              MiniGrid                    (extra: drlbench[minigrid])
    warp:HalfCheetah-v5                MuJoCo Warp, GPU MuJoCo     (extra: drlbench[warp])

Without a prefix, the five classic-control IDs go to the torch-native backend (the same dynamics as
gymnasium's, on any torch device), MiniGrid IDs to the MiniGrid backend, everything else to
gymnasium. Short names resolve to the newest registered version (HalfCheetah -> HalfCheetah-v5,
Pendulum -> Pendulum-v1). `resolve` returns the canonical ID, which run records store.

A backend is a module with `ENV_IDS` (or `env_ids()`, for open-ended sets), `EXTRA` (the pip extra
that installs its packages, None if always installed) and `make(env_id, num_envs, device, **options)`.
"""
from __future__ import annotations

import importlib
import re
from functools import cache
from types import ModuleType

import torch

from drlbench.envs.base import Step, VecEnv
from drlbench.errors import UsageError, unknown

BACKENDS = {
    "torch": "drlbench.envs.torch_classic",
    "gym": "drlbench.envs.gymnasium_backend",
    "dmc": "drlbench.envs.dmc",
    "minigrid": "drlbench.envs.minigrid",
    "warp": "drlbench.envs.warp",
}
_VERSION = re.compile(r"^(?P<name>.+)-v(?P<version>\d+)$")


def backend(prefix: str) -> ModuleType:
    """The backend module for `prefix`; a UsageError naming the extra if its packages are missing."""
    try:
        return importlib.import_module(BACKENDS[prefix])
    except ModuleNotFoundError as exc:
        extra = {"dmc": "dmc", "minigrid": "minigrid", "warp": "warp"}.get(prefix)
        if extra is None or (exc.name or "").startswith("drlbench"):
            raise
        raise UsageError(f"the {prefix} backend needs {exc.name}: pip install 'drlbench[{extra}]'") from None


def _with_short_names(env_ids) -> dict[str, str]:
    """Lower-cased ID -> ID, plus each versioned name's short form -> its newest version."""
    ids: dict[str, str] = {}
    newest: dict[str, tuple[int, str]] = {}
    for env_id in env_ids:
        ids[env_id.lower()] = env_id
        match = _VERSION.match(env_id)
        if match:
            name, version = match["name"].lower(), int(match["version"])
            if name not in newest or version > newest[name][0]:
                newest[name] = (version, env_id)
    for short, (_, env_id) in newest.items():
        ids.setdefault(short, env_id)
    return ids


@cache
def _gymnasium_ids() -> dict[str, str]:
    import gymnasium as gym

    return _with_short_names(i for i in gym.registry if "/" not in i and not i.startswith("GymV"))


def _default_backend(env_id: str) -> str:
    from drlbench.envs.torch_classic import ENV_IDS as TORCH_IDS

    if env_id in TORCH_IDS:
        return "torch"
    if env_id.startswith("MiniGrid-") or env_id.startswith("BabyAI-"):
        return "minigrid"
    return "gym"


def _backend_ids(prefix: str) -> dict[str, str]:
    module = backend(prefix)
    ids = module.env_ids() if hasattr(module, "env_ids") else module.ENV_IDS
    return _with_short_names(ids)


def resolve(env_id: str) -> str:
    """Canonical ID (prefix kept only where it is not the default); a UsageError with close matches."""
    prefix, _, name = env_id.rpartition(":")
    if prefix and prefix not in BACKENDS:
        raise unknown("environment backend", prefix, sorted(BACKENDS))
    if not prefix and name.lower().startswith(("minigrid-", "babyai-")):
        prefix = "minigrid"
    ids = _gymnasium_ids() if prefix in ("", "gym") else _backend_ids(prefix)
    try:
        canonical = ids[name.lower()]
    except KeyError:
        what = f"{prefix} env" if prefix else "env"
        raise unknown(what, name if prefix else env_id, sorted(set(ids.values()))) from None
    return canonical if prefix in ("", _default_backend(canonical)) else f"{prefix}:{canonical}"


def split(env_id: str) -> tuple[str, str]:
    """(backend prefix, backend-local ID) of a canonical or user-given ID."""
    canonical = resolve(env_id)
    prefix, _, name = canonical.rpartition(":")
    return (prefix or _default_backend(name)), name


def make(env_id: str, num_envs: int = 1, device: str | torch.device = "cpu", seed: int | None = None,
         **options) -> VecEnv:
    """A batched environment whose tensors live on `device`; reset with `seed` if one is given.

    `options` go to the backend (e.g. `action_repeat` for dm_control)."""
    prefix, name = split(env_id)
    env = backend(prefix).make(name, num_envs, device, **options)
    if seed is not None:
        env.reset(seed)
    return env


__all__ = ["BACKENDS", "Step", "VecEnv", "backend", "make", "resolve", "split"]
