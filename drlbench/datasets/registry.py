"""Dataset names, the data folder, and which environment evaluates a dataset.

A dataset is named by its file stem in the data folder (`DRLBENCH_DATA`, default
`~/.cache/drlbench/datasets`): `pendulum-medium-replay` is `<data>/pendulum-medium-replay.hdf5`,
`hopper-medium-v2` a real D4RL file a user copied there. A Minari dataset is a directory (with
`data/metadata.json`) given by path. The evaluation environment is the file's `metadata/env_id`
(drlbench writes it), else the D4RL domain's gymnasium v5 environment, else `--env`.
"""
from __future__ import annotations

import os
from pathlib import Path

from drlbench.errors import UsageError

QUALITIES = ("random", "medium", "expert", "medium-replay", "medium-expert")
# D4RL locomotion domains -> the gymnasium environment that evaluates them (same observation layout)
D4RL_ENVS = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "ant": "Ant-v5"}


def data_folder() -> Path:
    if os.environ.get("DRLBENCH_DATA"):
        return Path(os.environ["DRLBENCH_DATA"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "drlbench" / "datasets"


def dataset_name(env_id: str, quality: str) -> str:
    """`Pendulum-v1`, `medium-replay` -> `pendulum-medium-replay` (the name `collect` writes by default)."""
    short = env_id.split(":")[-1].rsplit("-v", 1)[0].lower()
    return f"{short}-{quality}"


def available() -> list[str]:
    folder = data_folder()
    return sorted(p.stem for p in folder.glob("*.hdf5")) if folder.is_dir() else []


def looks_like_dataset(text: str) -> bool:
    """A path to a dataset file or directory, or a name with a quality in it (hopper-medium-v2)."""
    return (text.endswith((".hdf5", ".h5")) or os.sep in text
            or any(f"-{q}" in text.lower() for q in QUALITIES))


def locate(source: str) -> Path:
    """A dataset path or name -> its path; a missing name says which command makes it."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    named = data_folder() / f"{source}.hdf5"
    if named.exists():
        return named
    if os.sep in source or source.endswith((".hdf5", ".h5")):
        raise UsageError(f"dataset file {source} does not exist")
    quality = next((q for q in sorted(QUALITIES, key=len, reverse=True) if source.lower().endswith(q)), None)
    env = source[: -len(quality) - 1] if quality else source
    hint = (f"make it with `drlbench dataset collect --env {env.capitalize()} --quality {quality}`"
            if quality else "see `drlbench dataset list`")
    if source.lower().startswith(tuple(D4RL_ENVS)) and source.endswith(("-v0", "-v1", "-v2")):
        hint = f"copy the D4RL file to {named} (drlbench cannot download it)"
    known = ", ".join(available()) or "none yet"
    raise UsageError(f"unknown dataset {source!r} (not in {data_folder()}; there: {known}); {hint}")


def evaluation_env(dataset, path: Path) -> str | None:
    """The environment that evaluates a dataset: its own record of it, else its D4RL domain's."""
    import json

    meta = dataset.metadata
    if meta.get("env_id"):
        return str(meta["env_id"])
    spec = meta.get("env_spec")
    spec = json.loads(spec) if isinstance(spec, str) and spec.startswith("{") else spec
    if isinstance(spec, dict) and spec.get("id"):
        return str(spec["id"])
    return D4RL_ENVS.get(path.stem.split("-")[0].lower())


_CACHE: dict = {}


def load(source, observation_space=None, action_space=None):
    """Read a D4RL file or a Minari directory (path or name) and check it against the spaces."""
    from drlbench.datasets.d4rl import load_d4rl_hdf5
    from drlbench.datasets.minari_format import load_minari
    from drlbench.datasets.validate import validate

    path = locate(str(source)).resolve()
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:   # one read per process (resolution checks it, the loop trains on it)
        _CACHE.clear()
        _CACHE[key] = load_minari(path) if path.is_dir() else load_d4rl_hdf5(path)
    return validate(_CACHE[key], observation_space, action_space)
