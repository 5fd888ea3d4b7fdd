"""D4RL normalised score: 100 * (return - REF_MIN) / (REF_MAX - REF_MIN).

Reference values are D4RL's (`d4rl/infos.py`, as restated in the specs): the Gym-MuJoCo v0/v1/v2
datasets reuse `<env>-random-v0`, Adroit v1 reuses `<env>-human-v0`. Only exact D4RL dataset
names are recognised; anything else (Minari ids, gymnasium ids, dense maze2d variants, flow,
carla, bullet) gives None so the caller can fall back to its own reference scores.
"""
from __future__ import annotations

import numpy as np

# env prefix -> (REF_MIN, REF_MAX)
_LOCOMOTION = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
_ADROIT = {
    "pen": (96.262799, 3076.8331017826877),
    "door": (-56.512833, 2880.5693087298737),
    "hammer": (-274.856578, 12794.134825156867),
    "relocate": (-6.425911, 4233.877797728884),
}
_MAZE2D = {"umaze": (23.85, 161.86), "medium": (13.13, 277.39), "large": (6.7, 273.99)}
_ANTMAZE = ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")


def _reference_table() -> dict[str, tuple[float, float]]:
    table = {}
    for env, ref in _LOCOMOTION.items():
        for dset in ("random", "medium", "expert", "medium-replay", "medium-expert"):
            table[f"{env}-{dset}-v0"] = ref
        for version in ("v1", "v2"):
            for dset in ("random", "medium", "expert", "medium-replay", "full-replay", "medium-expert"):
                table[f"{env}-{dset}-{version}"] = ref
    for env, ref in _ADROIT.items():
        for dset in ("human", "cloned", "expert"):
            for version in ("v0", "v1"):
                table[f"{env}-{dset}-{version}"] = ref
    for maze, ref in _MAZE2D.items():
        table[f"maze2d-{maze}-v1"] = ref
    for maze in _ANTMAZE:
        for version in ("v0", "v2"):
            table[f"antmaze-{maze}-{version}"] = (0.0, 1.0)
    for task in ("complete", "partial", "mixed"):
        table[f"kitchen-{task}-v0"] = (0.0, 4.0)
    return table


D4RL_REF_SCORES: dict[str, tuple[float, float]] = _reference_table()


def d4rl_reference(name: str) -> tuple[float, float] | None:
    """(REF_MIN, REF_MAX) for a D4RL dataset/env name such as `hopper-medium-v2`, else None."""
    return D4RL_REF_SCORES.get(str(name).strip().lower())


def normalized_score(env_name_or_dataset_name: str, returns):
    """D4RL normalised score x100 for one return (float) or many (float64 array); None when the
    name is not a D4RL dataset name."""
    ref = d4rl_reference(env_name_or_dataset_name)
    if ref is None:
        return None
    low, high = ref
    scores = 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)
    return float(scores) if scores.ndim == 0 else scores
