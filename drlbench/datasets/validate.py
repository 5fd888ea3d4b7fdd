"""Checks on raw arrays and on an `OfflineDataset`; every failure is a one-line `UsageError`
that starts with the file (or dataset) it concerns."""
from __future__ import annotations

import numpy as np

from drlbench.errors import UsageError

from .core import OfflineDataset


def fail(source, message: str) -> UsageError:
    """`UsageError("<source>: <message>")`, forced onto one line."""
    return UsageError(" ".join(f"{source}: {message}".split()))


def first_nonfinite(array: np.ndarray):
    """(row, value) of the first NaN/inf along axis 0, or None."""
    a = np.asarray(array)
    if a.dtype.kind not in "fc" or a.size == 0:
        return None
    bad = ~np.isfinite(a)
    rows = bad.reshape(a.shape[0], -1).any(axis=1) if a.ndim > 1 else bad
    if not rows.any():
        return None
    row = int(np.argmax(rows))
    value = a[row][bad[row]][0] if a.ndim > 1 else a[row]
    return row, float(value)


def check_finite(source, key: str, array: np.ndarray, where=lambda row: f"row {row}") -> None:
    hit = first_nonfinite(array)
    if hit is not None:
        row, value = hit
        raise fail(source, f"{key!r} has a non-finite value ({value}) at {where(row)}")


def check_same_length(source, lengths: dict) -> None:
    """All arrays must have the same number of rows; the message lists every key and length."""
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k} {n}" for k, n in lengths.items())
        raise fail(source, f"arrays have different lengths: {listed}")


def check_flags(source, key: str, array: np.ndarray, where=lambda row: f"row {row}") -> np.ndarray:
    """A 0/1 (or bool) column as a bool array; anything else is an error naming the row."""
    a = np.asarray(array)
    if a.dtype == bool:
        return a
    bad = ~((a == 0) | (a == 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise fail(source, f"{key!r} holds {a[row]} at {where(row)}; expected 0/1")
    return a.astype(bool)


def validate(dataset: OfflineDataset, observation_space=None, action_space=None, *,
             action_tolerance: float = 1e-6) -> OfflineDataset:
    """Check a dataset (and, when given, its fit to the evaluation env's gymnasium spaces).

    Structure: non-empty, equal lengths, finite values, 0/1 terminals. Spaces: a Box observation
    space must have shape (obs_dim,); a Box action space shape (act_dim,) and every action within
    [low - tol, high + tol]; a Discrete action space act_dim 1 and integer actions in range.
    Returns the dataset; raises `UsageError` naming the first problem."""
    src = dataset.metadata.get("source", "dataset")
    tensors = {
        "observations": dataset.observations,
        "actions": dataset.actions,
        "rewards": dataset.rewards,
        "next_observations": dataset.next_observations,
        "terminals": dataset.terminals,
    }
    if dataset.size == 0:
        raise fail(src, "dataset is empty (0 transitions)")
    check_same_length(src, {k: int(t.shape[0]) for k, t in tensors.items()})
    if dataset.observations.ndim != 2 or dataset.actions.ndim != 2:
        raise fail(src, f"observations {tuple(dataset.observations.shape)} and actions "
                        f"{tuple(dataset.actions.shape)} must both be 2-D (N, dim)")
    if dataset.next_observations.shape != dataset.observations.shape:
        raise fail(src, f"next_observations has shape {tuple(dataset.next_observations.shape)}, "
                        f"observations {tuple(dataset.observations.shape)}")
    arrays = {k: t.detach().cpu().numpy() for k, t in tensors.items()}
    for key in ("observations", "actions", "rewards", "next_observations"):
        check_finite(src, key, arrays[key], where=lambda row: f"transition {row}")
    check_flags(src, "terminals", arrays["terminals"], where=lambda row: f"transition {row}")
    if observation_space is not None:
        _check_observation_space(src, dataset.obs_dim, observation_space)
    if action_space is not None:
        _check_action_space(src, arrays["actions"], action_space, action_tolerance)
    return dataset


def _check_observation_space(src, obs_dim: int, space) -> None:
    shape = tuple(getattr(space, "shape", None) or ())
    if shape != (obs_dim,):
        raise fail(src, f"observation dim {obs_dim} does not match the environment's "
                        f"observation space shape {shape} ({type(space).__name__})")


def _check_action_space(src, actions: np.ndarray, space, tol: float) -> None:
    from gymnasium import spaces

    act_dim = actions.shape[1]
    if isinstance(space, spaces.Discrete):
        if act_dim != 1:
            raise fail(src, f"action dim {act_dim} does not match the environment's "
                            f"Discrete({space.n}) action space (dim 1)")
        a = actions[:, 0]
        lo, hi = int(space.start), int(space.start + space.n - 1)
        bad = (a != np.round(a)) | (a < lo) | (a > hi)
        if bad.any():
            row = int(np.argmax(bad))
            raise fail(src, f"action {a[row]:g} at transition {row} is not an integer in "
                            f"the action space range [{lo}, {hi}]")
        return
    if not isinstance(space, spaces.Box):
        raise fail(src, f"unsupported action space {type(space).__name__}; expected Box or Discrete")
    if tuple(space.shape) != (act_dim,):
        raise fail(src, f"action dim {act_dim} does not match the environment's action "
                        f"space shape {tuple(space.shape)}")
    low = np.broadcast_to(np.asarray(space.low, np.float64), (act_dim,))
    high = np.broadcast_to(np.asarray(space.high, np.float64), (act_dim,))
    bad = (actions < low - tol) | (actions > high + tol)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        dim = int(np.argmax(bad[row]))
        raise fail(src, f"action {actions[row, dim]:g} at transition {row}, dim {dim} is "
                        f"outside the action space bounds [{low[dim]:g}, {high[dim]:g}]")
