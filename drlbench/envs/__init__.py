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

Changed physics (a dynamics gap, for sim-to-real agents such as H2O). An ID may carry physical
parameters after a `?`, comma-separated (`&` also accepted):

    Pendulum-v1?g=15                   torch-native Pendulum with g = 15 (gymnasium's default: 10)
    CartPole-v1?masspole=0.2,length=1  any constant the backend lists in `physics_parameters`
    HalfCheetah-v5?gravity=2           MuJoCo: gravity x2 (H2O's paper setting)
    Walker2d-v5?friction=0.3           MuJoCo: every geom's friction x0.3
    Hopper-v5?mass=1.5,joint_noise=0.1 MuJoCo: body masses x1.5, actions + N(0, 0.1^2) noise

Torch-native classic control takes the physical constants themselves (Pendulum g, m, l; CartPole
gravity, masscart, masspole, length, force_mag; MountainCar force, gravity; MountainCarContinuous
power, gravity; Acrobot g, link_length_1, link_mass_1, link_mass_2, link_com_pos_1, link_com_pos_2,
link_moi); gymnasium MuJoCo takes multipliers of the loaded model (`gravity` scales
`model.opt.gravity`, `friction` every `geom_friction`, `mass` every `body_mass`) and `joint_noise`, the
standard deviation of Gaussian noise added to every action before the step (the stored action is the
policy's). `make(env_id, physics={"g": 15})` is the same as `make("Pendulum-v1?g=15")`. Unknown
names, values out of range and backends without physics parameters are refused with a UsageError
naming the valid choices. `resolve` keeps the parameters, sorted, in the canonical ID: that string is
what run records store (`sim_env` in run.json), so a reader can tell the simulator from the real env.
The CLI takes it as `drlbench run AGENT --env REAL --sim-env "Pendulum-v1?g=15"`.
"""
from __future__ import annotations

import importlib
import math
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
    "llm": "drlbench.llm.tasks",      # preference tasks of the LLM track (llm:bt-seq ...), no environment steps
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
    if "?" in env_id and env_id.partition("?")[0].lower().startswith("llm:"):
        return resolve_with_physics(env_id)   # LLM tasks carry their parameters in the ID: llm:len-bias?q=0.9
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
    """(backend prefix, backend-local ID) of a canonical or user-given ID (physics parameters dropped)."""
    canonical = resolve(parse_physics(env_id)[0])
    prefix, _, name = canonical.rpartition(":")
    return (prefix or _default_backend(name)), name


def parse_physics(env_id: str) -> tuple[str, dict[str, float]]:
    """`"Pendulum-v1?g=15,m=2"` -> `("Pendulum-v1", {"g": 15.0, "m": 2.0})`; no `?` -> no parameters."""
    base, sep, query = env_id.partition("?")
    physics: dict[str, float] = {}
    if not sep:
        return env_id, physics
    for item in re.split(r"[,&]", query):
        if not item.strip():
            continue
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"{env_id!r}: physics parameter {item.strip()!r} is not name=value")
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{env_id!r}: {key}={text.strip()}: expected a number") from None
        physics[key] = value
    return base, physics


def physics_spec(env_id: str, physics: dict[str, float]) -> str:
    """The canonical ID with parameters: sorted names, values as Python writes floats."""
    if not physics:
        return env_id
    return env_id + "?" + ",".join(f"{k}={_number(v)}" for k, v in sorted(physics.items()))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def check_physics(env_id: str, physics: dict[str, float]) -> None:
    """Refuse parameters `env_id`'s backend does not have, and values outside their range."""
    if not physics:
        return
    prefix, name = split(env_id)
    module = backend(prefix)
    allowed = module.physics_parameters(name) if hasattr(module, "physics_parameters") else {}
    if not allowed:
        raise UsageError(f"{env_id}: no physics parameters to change; dynamics gaps are available for "
                         "torch-native classic control (Pendulum-v1?g=15) and gymnasium MuJoCo "
                         "(HalfCheetah-v5?gravity=2)")
    for key, value in physics.items():
        if key not in allowed:
            kind = getattr(module, "PARAMETER_KIND", "physics parameter")
            raise UsageError(f"unknown {kind} {key!r} of {name}; choose from: {', '.join(sorted(allowed))}")
        domain = allowed[key]
        if not (math.isfinite(value) and domain.contains(value)):
            raise UsageError(f"{name}?{key}={_number(value)}: {key} must be {domain.describe(float)}")


def resolve_with_physics(env_id: str) -> str:
    """`resolve` for an ID that may carry `?name=value` physics parameters, which are checked."""
    base, physics = parse_physics(env_id)
    canonical = resolve(base)
    check_physics(canonical, physics)
    return physics_spec(canonical, physics)


def make(env_id: str, num_envs: int = 1, device: str | torch.device = "cpu", seed: int | None = None,
         physics: dict[str, float] | None = None, **options) -> VecEnv:
    """A batched environment whose tensors live on `device`; reset with `seed` if one is given.

    `physics` (or `?name=value` parameters in `env_id`) changes the dynamics (see the module
    docstring); `options` go to the backend (e.g. `action_repeat` for dm_control)."""
    base, parsed = parse_physics(env_id)
    parsed.update(physics or {})
    prefix, name = split(base)
    if parsed:
        check_physics(base, parsed)
        options["physics"] = parsed
    env = backend(prefix).make(name, num_envs, device, **options)
    if seed is not None:
        env.reset(seed)
    return env


__all__ = ["BACKENDS", "Step", "VecEnv", "backend", "check_physics", "make", "parse_physics", "physics_spec",
           "resolve", "resolve_with_physics", "split"]
