"""Minari datasets through the `minari` package, from a local root only (never downloads).

Minari stores episodes: observations have T+1 entries (initial and final), actions, rewards,
terminations and truncations T. Each step t is a transition (o[t], a[t], r[t], o[t+1],
terminations[t]); all T are kept, including a truncated last step, because o[T] is the real
successor here (unlike D4RL, where the time-out row's successor is not stored).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np

from drlbench.errors import UsageError

from .core import OfflineDataset, make_dataset
from ._files import file_sha256, plain
from .validate import check_finite, check_flags, fail, validate

# What minari raises (or asserts) on a broken dataset directory.
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, AssertionError)


def _import_minari():
    try:
        import minari
    except ImportError as e:
        raise UsageError(f"Minari datasets need the `minari` package (pip install minari==0.5.4): {e}")
    return minari


def default_root(root=None) -> Path:
    """`root`, else $MINARI_DATASETS_PATH, else ~/.minari/datasets (minari's own rule)."""
    if root is not None:
        return Path(root)
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def _data_dir(dataset_id_or_path, root) -> Path:
    """The dataset's `data/` directory: from a directory path, or an id under the local root
    (an id without `-vN` picks the highest local version)."""
    given = Path(dataset_id_or_path)
    if given.is_dir():
        return given / "data" if (given / "data").is_dir() else given
    base = default_root(root)
    dataset_id = str(dataset_id_or_path)
    if not re.search(r"-v\d+$", dataset_id):
        versions = sorted((p for p in base.glob(f"{dataset_id}-v*/data")
                           if re.search(r"-v\d+$", p.parent.name)),
                          key=lambda p: int(p.parent.name.rsplit("-v", 1)[1]))
        if versions:
            return versions[-1]
    data = base / dataset_id / "data"
    if data.is_dir():
        return data
    local = sorted(str(p.parent.parent.relative_to(base)) for p in base.glob("**/data/metadata.json"))
    listed = ", ".join(local[:10]) + (" ..." if len(local) > 10 else "") if local else "none"
    raise UsageError(f"Minari dataset {dataset_id!r} not found under {base} (local datasets: "
                     f"{listed}); drlbench never downloads: fetch it with `minari download "
                     f"{dataset_id}` or set MINARI_DATASETS_PATH")


def load_minari(dataset_id_or_path, *, root=None) -> OfflineDataset:
    """Read a local Minari dataset (id under `root`/$MINARI_DATASETS_PATH, or its directory)."""
    minari = _import_minari()
    from minari.dataset.minari_storage import MinariStorage

    data_dir = _data_dir(dataset_id_or_path, root)
    label = data_dir.parent
    try:
        dataset = minari.MinariDataset(data_dir)
        metadata = plain(MinariStorage.read_raw_metadata(data_dir))
        obs_space, act_space = dataset.observation_space, dataset.action_space
        _check_spaces(label, obs_space, act_space)
        columns, returns, lengths, truncations = _transitions(label, dataset.iterate_episodes())
    except UsageError:
        raise
    except _READ_ERRORS as e:
        reason = str(e).splitlines()[0] if str(e) else ""
        raise fail(label, f"not a readable Minari dataset ({type(e).__name__}: {reason})")
    hdf5 = data_dir / "main_data.hdf5"
    metadata.update(source=str(label), format="minari",
                    sha256=file_sha256(hdf5) if hdf5.is_file() else None)
    return validate(make_dataset(*columns, returns, lengths, truncations, metadata))


def _check_spaces(label, obs_space, act_space) -> None:
    from gymnasium import spaces

    if not (isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1):
        raise fail(label, f"observation space {type(obs_space).__name__}"
                          f"{getattr(obs_space, 'shape', '')} is not supported; expected a flat Box")
    if not ((isinstance(act_space, spaces.Box) and len(act_space.shape) == 1)
            or isinstance(act_space, spaces.Discrete)):
        raise fail(label, f"action space {type(act_space).__name__} is not supported; "
                          f"expected a flat Box or Discrete")


def _transitions(label, episodes):
    """Episode-wise conversion: ((obs, act, rew, next_obs, term), returns, lengths, truncations)."""
    parts = {k: [] for k in ("obs", "act", "rew", "next", "term")}
    returns, lengths, truncated = [], [], 0
    for ep in episodes:
        obs = np.asarray(ep.observations)
        act = np.asarray(ep.actions)
        act = act.reshape(len(act), -1)
        rew = np.asarray(ep.rewards)
        steps = len(rew)
        sizes = {"observations": len(obs), "actions": len(act), "rewards": steps,
                 "terminations": len(ep.terminations), "truncations": len(ep.truncations)}
        if sizes["observations"] != steps + 1 or any(
                sizes[k] != steps for k in ("actions", "terminations", "truncations")):
            listed = ", ".join(f"{k} {n}" for k, n in sizes.items())
            raise fail(label, f"episode {ep.id}: expected T+1 observations and T of the rest, "
                              f"got {listed}")
        if steps == 0:
            continue
        where = lambda row, i=ep.id: f"episode {i}, step {row}"  # noqa: E731
        for key, value in (("observations", obs), ("actions", act), ("rewards", rew)):
            check_finite(label, key, value, where)
        term = check_flags(label, "terminations", np.asarray(ep.terminations), where)
        trunc = check_flags(label, "truncations", np.asarray(ep.truncations), where)
        parts["obs"].append(obs[:-1])
        parts["next"].append(obs[1:])
        parts["act"].append(act)
        parts["rew"].append(rew)
        parts["term"].append(term)
        returns.append(float(rew.astype(np.float64).sum()))
        lengths.append(steps)
        truncated += int(trunc.sum())
    if not returns:
        raise fail(label, "dataset is empty (no episode with a step)")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    columns = (cat["obs"], cat["act"], cat["rew"], cat["next"], cat["term"])
    return columns, returns, lengths, truncated


@contextlib.contextmanager
def _datasets_root(root):
    """Point minari at `root` for the duration (minari reads $MINARI_DATASETS_PATH per call)."""
    if root is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def save_minari(dataset_id: str, episodes, *, env_id: str | None = None, observation_space=None,
                action_space=None, root=None, ref_min_score: float | None = None,
                ref_max_score: float | None = None, algorithm_name: str | None = None,
                author: str | None = None, description: str | None = None,
                data_format: str = "hdf5") -> Path:
    """Create a Minari dataset `dataset_id` under `root` (default: $MINARI_DATASETS_PATH or
    ~/.minari/datasets) with `minari.create_dataset_from_buffers`.

    episodes: mappings with `observations` (T+1, obs_dim), `actions` (T, act_dim) (or (T,) for
    Discrete), `rewards`, `terminations`, `truncations` (T,). env_id: a registered gymnasium id,
    stored as the dataset's env spec; its spaces are used unless spaces are given (both spaces
    are required without env_id). ref_min_score/ref_max_score: both or neither (with only one,
    minari would roll out 100 random-policy episodes). Minari's "please set author..." warnings
    are silenced. Returns the dataset directory."""
    minari = _import_minari()
    from minari.data_collector import EpisodeBuffer

    if (ref_min_score is None) != (ref_max_score is None):
        raise UsageError("save_minari: give both ref_min_score and ref_max_score, or neither")
    if observation_space is None or action_space is None:
        if env_id is None:
            raise UsageError("save_minari: give env_id, or both observation_space and action_space")
        import gymnasium as gym

        env = gym.make(env_id)
        observation_space = observation_space or env.observation_space
        action_space = action_space or env.action_space
        env.close()
    buffers = [_episode_buffer(EpisodeBuffer, i, ep, observation_space, action_space)
               for i, ep in enumerate(episodes)]
    target = default_root(root) / dataset_id
    if target.exists():
        raise fail(target, f"Minari dataset {dataset_id!r} already exists")
    try:
        with _datasets_root(root), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"minari")
            minari.create_dataset_from_buffers(
                dataset_id, buffers, env=env_id, observation_space=observation_space,
                action_space=action_space, ref_min_score=ref_min_score,
                ref_max_score=ref_max_score, algorithm_name=algorithm_name, author=author,
                description=description, data_format=data_format,
            )
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _episode_buffer(buffer_cls, index, episode, obs_space, act_space):
    from gymnasium import spaces

    obs = np.asarray(episode["observations"], dtype=obs_space.dtype)
    act = np.asarray(episode["actions"])
    if isinstance(act_space, spaces.Discrete):
        act = act.reshape(-1).astype(np.int64)
    else:
        act = act.astype(act_space.dtype).reshape(len(act), *act_space.shape)
    rew = np.asarray(episode["rewards"], dtype=np.float64).reshape(-1)
    term = np.asarray(episode["terminations"], dtype=bool).reshape(-1)
    trunc = np.asarray(episode["truncations"], dtype=bool).reshape(-1)
    steps = len(rew)
    if len(obs) != steps + 1 or not (len(act) == len(term) == len(trunc) == steps):
        raise UsageError(f"save_minari: episode {index}: expected T+1 observations and T of the "
                         f"rest, got observations {len(obs)}, actions {len(act)}, rewards {steps}, "
                         f"terminations {len(term)}, truncations {len(trunc)}")
    return buffer_cls(observations=obs, actions=act, rewards=rew, terminations=term,
                      truncations=trunc)
