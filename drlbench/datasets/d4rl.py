"""D4RL HDF5 files: read with `d4rl.qlearning_dataset(env, terminate_on_end=False)` semantics,
write in the same layout.

Layout: top-level `observations` (N, obs_dim), `actions` (N, act_dim), `rewards` (N,) or (N, 1),
`terminals` (N,) or (N, 1), optional `timeouts`, `next_observations`, `infos/*`, `metadata/*`.

What `qlearning_dataset` does, reproduced here (d4rl/__init__.py):
- rows i = 0 .. N-2 only (the file's last row is never a transition), s' = observations[i+1];
  the file's `next_observations` is NOT used, even when present;
- a row is dropped when it is the episode's final time step: `timeouts[i]` when the file has a
  `timeouts` key (also when the row is a terminal too); without that key D4RL falls back to a
  step counter against `env._max_episode_steps` (here: `max_episode_steps`, None = no fallback);
- `terminals` = the file's terminals (timeouts never become terminals, even with
  `terminate_on_end=True`, which only keeps the final-step rows).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from drlbench.errors import UsageError

from .core import OfflineDataset, make_dataset
from ._files import atomic_path, file_sha256, plain
from .validate import check_finite, check_flags, check_same_length, fail, validate


REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
OPTIONAL_KEYS = ("timeouts", "next_observations", "infos/qpos", "infos/qvel",
                 "infos/action_log_probs")


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise UsageError(f"D4RL HDF5 files need the `h5py` package (pip install h5py): {e}")
    return h5py


def load_d4rl_hdf5(path, *, max_episode_steps: int | None = None, terminate_on_end: bool = False,
                   use_stored_next_observations: bool = False) -> OfflineDataset:
    """Read a D4RL HDF5 file into an OfflineDataset exactly as `qlearning_dataset` would.

    max_episode_steps: only used when the file has no `timeouts` key, reproducing D4RL's
        fallback counter (including its quirk: after a terminal the counter restarts at 1, so
        the next episode's fallback time-out comes one step early). None: no fallback, only the
        last row is dropped.
    terminate_on_end: D4RL's flag; True keeps the final-step rows (still not terminals).
    use_stored_next_observations: take s' from the file's `next_observations` (same rows).
        Differs from D4RL only where observations[i+1] is not the successor: at terminal rows,
        D4RL's s' is the next episode's first observation.
    Raises UsageError (one line, naming the file) for anything malformed.
    """
    path = Path(path)
    raw, metadata = _read_file(path)
    n_rows = raw["observations"].shape[0]

    terminals = raw["terminals"]
    final = _final_steps(terminals, raw.get("timeouts"), max_episode_steps, terminate_on_end)
    rows = np.arange(n_rows - 1)
    if not terminate_on_end:
        rows = rows[~final[: n_rows - 1]]
    if rows.size == 0:
        raise fail(path, f"no transitions: {n_rows} row(s), and qlearning_dataset drops the last "
                         f"row and every time-out row")

    observations = raw["observations"]
    if use_stored_next_observations:
        if "next_observations" not in raw:
            raise fail(path, "use_stored_next_observations=True but the file has no "
                             "'next_observations' key")
        next_observations = raw["next_observations"][rows]
    else:
        next_observations = observations[rows + 1]

    returns, lengths = _episodes(raw["rewards"], terminals | final)
    metadata.update(
        source=str(path), format="d4rl-hdf5", sha256=file_sha256(path),
        raw_rows=int(n_rows), has_timeouts="timeouts" in raw,
        has_next_observations="next_observations" in raw,
    )
    if "next_observations" in raw:
        stored, paired = raw["next_observations"][rows], observations[rows + 1]
        metadata["next_observation_mismatches"] = int((stored != paired).any(axis=1).sum())
    dataset = make_dataset(
        observations[rows], raw["actions"][rows], raw["rewards"][rows], next_observations,
        terminals[rows], returns, lengths, int(final.sum()), metadata,
    )
    return validate(dataset)


def _final_steps(terminals, timeouts, max_episode_steps, terminate_on_end) -> np.ndarray:
    """Per raw row: is it `final_timestep` in qlearning_dataset's loop (extended to the last row)?"""
    if timeouts is not None:
        return timeouts.copy()
    final = np.zeros(len(terminals), dtype=bool)
    if max_episode_steps is None:
        return final
    step = 0
    for i, terminal in enumerate(terminals):
        final[i] = step == max_episode_steps - 1
        if final[i] and not terminate_on_end:
            step = 0
            continue
        if terminal or final[i]:
            step = 0
        step += 1
    return final


def _episodes(rewards: np.ndarray, ends: np.ndarray):
    """Returns and lengths of the episodes closed by `ends`; a trailing unfinished one is left out."""
    end_rows = np.flatnonzero(ends)
    if end_rows.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], end_rows[:-1] + 1])
    returns = np.add.reduceat(rewards[: end_rows[-1] + 1].astype(np.float64), starts)
    return returns, end_rows - starts + 1


def _read_file(path: Path):
    """Arrays by key (checked and reshaped) and the metadata dict."""
    if not path.is_file():
        raise fail(path, "no such file")
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in REQUIRED_KEYS if not isinstance(f.get(k), h5py.Dataset)]
            if missing:
                found = ", ".join(sorted(f.keys())) or "nothing"
                noun = "key" if len(missing) == 1 else "keys"
                raise fail(path, f"not a D4RL dataset: missing {noun} "
                                 f"{', '.join(map(repr, missing))} (found: {found})")
            raw = {k: f[k][()] for k in REQUIRED_KEYS + OPTIONAL_KEYS
                   if isinstance(f.get(k), h5py.Dataset)}
            metadata = _read_metadata(f)
    except (OSError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else repr(e)
        raise fail(path, f"not a readable HDF5 file, or a truncated one ({reason})")
    _check_raw(path, raw)
    return raw, metadata


def _check_raw(path: Path, raw: dict) -> None:
    for key, value in raw.items():
        if np.ndim(value) == 0:
            raise fail(path, f"{key!r} is a scalar, expected one entry per row")
    check_same_length(path, {k: len(v) for k, v in raw.items()})
    if len(raw["observations"]) == 0:
        raise fail(path, "dataset is empty (0 rows)")
    for key in ("observations", "actions", "next_observations"):
        if key in raw:
            raw[key] = _as_matrix(path, key, raw[key])
    if "next_observations" in raw and raw["next_observations"].shape != raw["observations"].shape:
        raise fail(path, f"'next_observations' has shape {raw['next_observations'].shape}, "
                         f"'observations' {raw['observations'].shape}")
    for key in ("rewards", "terminals", "timeouts"):
        if key in raw:
            raw[key] = _as_column(path, key, raw[key])
    for key in ("observations", "actions", "rewards", "next_observations"):
        if key in raw:
            check_finite(path, key, raw[key])
    for key in ("terminals", "timeouts"):
        if key in raw:
            raw[key] = check_flags(path, key, raw[key])


def _as_matrix(path, key, a: np.ndarray) -> np.ndarray:
    if a.ndim == 1:
        return a[:, None]
    if a.ndim != 2:
        raise fail(path, f"{key!r} has shape {a.shape}; expected (N, dim)")
    return a


def _as_column(path, key, a: np.ndarray) -> np.ndarray:
    if a.ndim == 2 and a.shape[1] == 1:
        return a[:, 0]
    if a.ndim != 1:
        raise fail(path, f"{key!r} has shape {a.shape}; expected (N,) or (N, 1)")
    return a


def _read_metadata(f) -> dict:
    """Root attributes, `metadata` group attributes, and everything below `metadata/` keyed by
    its path relative to `metadata/` (attributes of sub-objects as `<path>/<attr>`)."""
    h5py = _h5py()
    out = {name: plain(value) for name, value in f.attrs.items()}
    group = f.get("metadata")
    if not isinstance(group, h5py.Group):
        return out
    out.update({name: plain(value) for name, value in group.attrs.items()})

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            out[name] = plain(item[()])
        out.update({f"{name}/{a}": plain(v) for a, v in item.attrs.items()})

    group.visititems(visit)
    return out


def save_d4rl_hdf5(path, observations, actions, rewards, terminals, timeouts,
                   next_observations=None, infos: dict | None = None, metadata: dict | None = None,
                   *, compression: str | None = None) -> Path:
    """Write raw per-step arrays in the D4RL layout (float32 data, bool flags), atomically.

    infos: {name: (N, ...) array} written as `infos/<name>`; metadata: nested dict written under
    `metadata/` (str, numbers, bools, arrays, lists; dicts become groups);
    compression: an h5py filter such as "gzip". Returns the path."""
    path = Path(path)
    columns = {
        "observations": np.asarray(observations, np.float32),
        "actions": np.asarray(actions, np.float32),
        "rewards": np.asarray(rewards, np.float32).reshape(-1),
        "terminals": np.asarray(terminals, bool).reshape(-1),
        "timeouts": np.asarray(timeouts, bool).reshape(-1),
    }
    if next_observations is not None:
        columns["next_observations"] = np.asarray(next_observations, np.float32)
    for name, value in (infos or {}).items():
        columns[f"infos/{name}"] = np.asarray(value)
    check_same_length(path, {k: len(v) for k, v in columns.items()})
    h5py = _h5py()
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in columns.items():
                f.create_dataset(key, data=value, compression=compression)
            _write_metadata(f.create_group("metadata"), metadata or {})
    return path


def _write_metadata(group, metadata: dict) -> None:
    h5py = _h5py()
    for key, value in metadata.items():
        if isinstance(value, dict):
            _write_metadata(group.create_group(key), value)
        elif isinstance(value, str) or (isinstance(value, (list, tuple)) and value
                                        and all(isinstance(v, str) for v in value)):
            group.create_dataset(key, data=value, dtype=h5py.string_dtype())
        elif value is None:
            raise TypeError(f"metadata {key!r}: None cannot be stored in HDF5")
        else:
            group.create_dataset(key, data=np.asarray(value))
