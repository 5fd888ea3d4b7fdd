"""`drlbench import FORMAT SOURCE`: runs made with other libraries, as ordinary run records.

Statistics read run records only (README, "Run records"), so runs made elsewhere are brought in
by writing records: `OUT/<env_id>/<label>/seed_<seed>/run.json` + `evaluations.csv`, with
`"imported_from": {"format", "path", ...}` in run.json saying where every number came from.
`stats`, `report` and `compare` then read them like any other record.

Formats (what one evaluations.csv row is made of):
- `sb3`: stable-baselines3 / RL Zoo. `evaluations.npz` of `EvalCallback` (arrays `timesteps`,
  `results` (evaluations, episodes), `ep_lengths`): one row per evaluation, the mean and std of
  its episode returns. Without it, the training episodes of `monitor.csv` / `N.monitor.csv`
  (`Monitor`; several files of one run are merged by time): one row per window of `window`
  episodes, counted back from the last, at the cumulative step count. A folder is walked: every
  directory holding one of these files is one run (a Zoo folder `logs/<algo>/` holds
  `<env>_<n>/` per run; runs of other environments than --env are left out).
- `tensorboard`: event files (`*tfevents*`), read with the tensorboard package's
  EventAccumulator; every directory holding event files is one run. The scalar tag is
  `tag_name`, else the first present of `eval/mean_reward` (SB3's evaluations; one row per
  point), `charts/episodic_return` (CleanRL's training episodes; windows of `window`
  episodes) and `rollout/ep_rew_mean` (SB3's running mean of training episodes).
- `rliable`: a score dict {algorithm: (runs, tasks) array} as `.npz` (numpy, no pickle) or
  `.json`; `envs` names the task columns in order. rliable scores are normalised, so by default
  they are turned back into returns with the suite's reference scores (raw = random + x (target
  - random)); `scores="raw"` takes them as returns. One record per (algorithm, task, run), seed
  = run index, with a single row at step 0.
- `adastop`: adastop's CSVs (first column the run index, one column per agent), one file or a
  folder of them (one per interim, in natural order): agent A's i-th score is its seed i.

Seeds: the first group (or the whole match) of `seed_from_path` searched in the run's path
relative to SOURCE (SOURCE's name when SOURCE is the run), else 0, 1, ... in natural path order.
Unknown fields are written as `nan` (and `episodes` as 0). Everything is read and checked before
anything is written: bad input is one UsageError line and leaves OUT untouched; an existing
record is never replaced.
"""
from __future__ import annotations

import csv
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drlbench.errors import UsageError
from drlbench.records import FORMAT_VERSION, RunRecord, atomic_write, now, run_dir

FORMATS = ("sb3", "tensorboard", "rliable", "adastop")
SCORE_KINDS = ("raw", "normalized")
EVAL_TAG, EPISODE_TAG, ROLLOUT_TAG = "eval/mean_reward", "charts/episodic_return", "rollout/ep_rew_mean"
TB_TAGS = (EVAL_TAG, EPISODE_TAG, ROLLOUT_TAG)
WINDOW = 10   # training episodes per row, by default (monitor.csv, charts/episodic_return)
NAN = float("nan")


@dataclass
class Imported:
    """One run to write: where it goes and what its records hold."""

    label: str
    env_id: str
    seed: int
    rows: list[dict]
    source: dict                     # run.json "imported_from"
    eval_episodes: int | None = None
    wall_time_s: float | None = None
    suite: str | None = None
    path: Path | None = field(default=None)


# --- helpers ----------------------------------------------------------------------------------
def _natural(path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def _row(step: int, returns, lengths=None, wall: float = NAN) -> dict:
    returns = np.asarray(returns, dtype=np.float64).ravel()
    lengths = None if lengths is None else np.asarray(lengths, dtype=np.float64).ravel()
    return {"step": int(step), "return_mean": float(returns.mean()),
            "return_std": float(returns.std()) if returns.size > 1 else (0.0 if returns.size == 1 else NAN),
            "episodes": int(returns.size),
            "length_mean": float(lengths.mean()) if lengths is not None and lengths.size else NAN,
            "wall_time_s": float(wall)}


def _score_row(score: float) -> dict:
    """A single final score (rliable, adastop): no steps, episodes or times are known."""
    return {"step": 0, "return_mean": float(score), "return_std": NAN, "episodes": 0,
            "length_mean": NAN, "wall_time_s": NAN}


def _windows(returns: np.ndarray, steps: np.ndarray, lengths, walls, window: int) -> list[dict]:
    """Rows of `window` consecutive episodes, counted back from the last (the first may be shorter)."""
    rows = []
    end = len(returns)
    while end > 0:
        start = max(0, end - window)
        rows.append(_row(steps[end - 1], returns[start:end],
                         None if lengths is None else lengths[start:end],
                         NAN if walls is None else walls[end - 1]))
        end = start
    return rows[::-1]


def _finite(values: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise UsageError(f"{what}: non-finite value {values[index]} at index {index if len(index) > 1 else index[0]}")


def check_label(label: str) -> str:
    if not label or label != label.strip() or label in (".", "..") or any(c in label for c in "/\\\0"):
        raise UsageError(f"label {label!r}: expected a name usable as a directory (no '/', not empty)")
    return label


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def resolve_env(env: str) -> str:
    from drlbench import envs

    return envs.resolve(env)


# --- seeds from paths -------------------------------------------------------------------------
def assign_seeds(paths: list[Path], pattern: str | None, source: Path | None = None) -> list[int]:
    """Seeds of runs found at `paths`: the regex's first group (or match) searched in each path
    relative to `source` (its own name when the path is `source`), else 0, 1, ..."""
    if pattern is None:
        return list(range(len(paths)))
    if source is not None:
        paths = [Path(source.name) if p == source else p.relative_to(source) for p in paths]
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--seed-from-path {pattern!r}: not a regular expression ({exc})") from None
    seeds, owner = [], {}
    for path in paths:
        match = regex.search(path.as_posix())
        if match is None:
            raise UsageError(f"--seed-from-path {pattern!r} does not match {path.as_posix()}")
        text = match.group(1) if regex.groups else match.group(0)
        if text is None or not text.isdigit():
            raise UsageError(f"--seed-from-path {pattern!r}: {text!r} in {path.as_posix()} is not a seed "
                             "(a non-negative integer)")
        seed = int(text)
        if seed in owner:
            raise UsageError(f"--seed-from-path {pattern!r}: seed {seed} found twice ({owner[seed].as_posix()} "
                             f"and {path.as_posix()})")
        owner[seed] = path
        seeds.append(seed)
    return seeds


def _require(source: Path) -> Path:
    if not source.exists():
        raise UsageError(f"{source}: no such file or directory")
    return source


# --- stable-baselines3 / RL Zoo ---------------------------------------------------------------
def _is_monitor(path: Path) -> bool:
    return path.name == "monitor.csv" or path.name.endswith(".monitor.csv")


def read_eval_npz(path: Path) -> tuple[list[dict], int]:
    """EvalCallback's evaluations.npz -> (rows, episodes per evaluation)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{path}: not a numpy .npz file ({type(exc).__name__}: {exc})") from None
    if not isinstance(arrays, dict) or not {"timesteps", "results"} <= set(arrays):
        raise UsageError(f"{path}: not an EvalCallback evaluations.npz (needs arrays timesteps and results; "
                         f"it has: {', '.join(sorted(arrays)) or 'none'})")
    try:
        steps = np.asarray(arrays["timesteps"], dtype=np.float64).ravel()
        results = np.asarray(arrays["results"], dtype=np.float64)
        lengths = np.asarray(arrays["ep_lengths"], dtype=np.float64) if "ep_lengths" in arrays else None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path}: arrays are not numeric ({exc})") from None
    if results.ndim == 1:
        results = results[:, None]
    if results.ndim != 2 or results.shape[0] != steps.size or results.shape[1] == 0:
        raise UsageError(f"{path}: results has shape {results.shape}, expected (evaluations, episodes) with "
                         f"{steps.size} evaluations (the length of timesteps)")
    if steps.size == 0:
        raise UsageError(f"{path}: holds no evaluation")
    if lengths is not None and lengths.size != results.size:
        raise UsageError(f"{path}: ep_lengths has shape {lengths.shape}, results {results.shape}")
    _finite(steps, f"{path} timesteps")
    _finite(results, f"{path} results")
    if np.any(np.diff(steps) < 0):
        raise UsageError(f"{path}: timesteps are not in increasing order")
    lengths = None if lengths is None else lengths.reshape(results.shape)
    rows = [_row(steps[i], results[i], None if lengths is None else lengths[i]) for i in range(steps.size)]
    return rows, int(results.shape[1])


def read_monitor(path: Path) -> tuple[float, np.ndarray]:
    """A Monitor file -> (t_start, array of (return, length, time since t_start) per episode)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            first = fh.readline()
            if not first.startswith("#"):
                raise UsageError(f"{path}: not a Monitor file (the first line is not the '#{{...}}' header)")
            try:
                header = json.loads(first[1:])
                t_start = float(header.get("t_start", 0.0)) if isinstance(header, dict) else 0.0
            except (ValueError, TypeError):
                raise UsageError(f"{path}: not a Monitor file (unreadable '#' header line)") from None
            reader = csv.DictReader(fh)
            missing = {"r", "l", "t"} - set(reader.fieldnames or ())
            if missing:
                raise UsageError(f"{path}: not a Monitor file (no column {', '.join(sorted(missing))})")
            episodes = []
            for number, row in enumerate(reader, start=3):
                try:
                    episodes.append((float(row["r"]), float(row["l"]), float(row["t"])))
                except (TypeError, ValueError):
                    raise UsageError(f"{path} line {number}: r={row['r']!r}, l={row['l']!r}, t={row['t']!r} "
                                     "are not numbers") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    table = np.array(episodes, dtype=np.float64).reshape(-1, 3)
    _finite(table, f"{path} episodes")
    return t_start, table


def read_monitors(paths: list[Path], window: int) -> tuple[list[dict], dict]:
    """Monitor files of one run (one per parallel env) -> rows of `window` training episodes."""
    merged, starts = [], []
    for path in paths:
        t_start, table = read_monitor(path)
        starts.append(t_start)
        merged.extend((t_start + t, r, l) for r, l, t in table)
    if not merged:
        raise UsageError(f"{paths[0]}: holds no finished episode")
    merged.sort(key=lambda e: e[0])
    clock, returns, lengths = (np.array(column) for column in zip(*merged))
    steps = np.cumsum(lengths)
    walls = clock - min(starts)
    rows = _windows(returns, steps, lengths, walls, window)
    return rows, {"training_episodes": int(returns.size), "training_steps": int(steps[-1]),
                  "wall_time_s": float(walls[-1])}


def _zoo_env(name: str) -> str | None:
    """`CartPole-v1` of an RL Zoo run folder `CartPole-v1_3` (None for other names)."""
    match = re.fullmatch(r"(.+-v\d+)_(\d+)", name)
    return match.group(1) if match else None


def find_sb3_runs(source: Path, env_id: str, env_given: str) -> list[Path]:
    """Directories (or the file) that are one SB3 run each."""
    _require(source)
    if source.is_file():
        if source.name.endswith(".npz") or _is_monitor(source):
            return [source]
        raise UsageError(f"{source}: not an SB3 log file (expected evaluations.npz or monitor.csv)")
    found = sorted({p.parent for p in source.rglob("*") if p.is_file()
                    and (p.name == "evaluations.npz" or _is_monitor(p))}, key=_natural)
    if not found:
        raise UsageError(f"{source}: no evaluations.npz or monitor.csv under it (not an SB3 / RL Zoo log folder)")
    zoo = {p: _zoo_env(p.name) for p in found}
    if all(zoo.values()):   # RL Zoo: logs/<algo>/<env>_<n>/
        kept = [p for p in found if zoo[p] in (env_id, env_given)]
        if not kept:
            raise UsageError(f"{source}: an RL Zoo folder with runs of {', '.join(sorted(set(zoo.values())))}, "
                             f"none of {env_id}")
        found = kept
    return found


def read_sb3_run(path: Path, window: int) -> tuple[list[dict], dict, int | None, float | None]:
    """(rows, imported_from extras, evaluation episodes, wall time) of one SB3 run."""
    if path.is_file():
        npz, monitors = (path, []) if path.name.endswith(".npz") else (None, [path])
    else:
        npz = path / "evaluations.npz" if (path / "evaluations.npz").is_file() else None
        monitors = sorted((p for p in path.iterdir() if p.is_file() and _is_monitor(p)), key=_natural)
    extra, wall, episodes = {}, None, None
    training = None
    if monitors:
        training_rows, training = read_monitors(monitors, window)
        extra.update(monitor_files=[p.name for p in monitors], training_episodes=training["training_episodes"],
                     training_steps=training["training_steps"])
        wall = training["wall_time_s"]
    if npz is not None:
        rows, episodes = read_eval_npz(npz)
        extra.update(file=npz.name, score="evaluation episodes of EvalCallback (evaluations.npz)")
    else:
        rows = training_rows
        extra.update(score=f"training episodes of Monitor (monitor.csv), mean of windows of {window} episodes",
                     window=window)
    return rows, extra, episodes, wall


# --- TensorBoard ------------------------------------------------------------------------------
def _is_events(path: Path) -> bool:
    return "tfevents" in path.name


def find_event_runs(source: Path) -> list[Path]:
    _require(source)
    if source.is_file():
        if not _is_events(source):
            raise UsageError(f"{source}: not a TensorBoard event file (its name has no 'tfevents')")
        return [source]
    found = sorted({p.parent for p in source.rglob("*") if p.is_file() and _is_events(p)}, key=_natural)
    if not found:
        raise UsageError(f"{source}: no TensorBoard event file (*tfevents*) under it")
    return found


def read_scalars(path: Path) -> dict[str, list]:
    """{tag: [(wall_time, step, value), ...]} of the event files at `path` (a file or a directory)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise UsageError("importing TensorBoard files needs the tensorboard package: "
                         "pip install 'drlbench[tensorboard]'") from None
    files = [path] if path.is_file() else sorted((p for p in path.iterdir() if p.is_file() and _is_events(p)),
                                                 key=_natural)
    scalars: dict[str, list] = {}
    for file in files:   # one accumulator per file: a directory one reads only the newest file
        accumulator = EventAccumulator(str(file), size_guidance={"scalars": 0})
        try:
            accumulator.Reload()
        except Exception as exc:  # the reader raises its own DataLossError and friends
            raise UsageError(f"{file}: unreadable TensorBoard event file ({type(exc).__name__}: {exc})") from None
        for tag in accumulator.Tags().get("scalars", []):   # torch's SummaryWriter, tensorboardX
            scalars.setdefault(tag, []).extend((e.wall_time, e.step, e.value) for e in accumulator.Scalars(tag))
        for tag in accumulator.Tags().get("tensors", []):   # tf.summary.scalar (TF2) writes tensors
            points = [(e.wall_time, e.step, _scalar(e.tensor_proto)) for e in accumulator.Tensors(tag)]
            if points and all(value is not None for _, _, value in points):
                scalars.setdefault(tag, []).extend(points)
    return scalars


def _scalar(proto) -> float | None:
    """The value of a single-number tensor proto, else None."""
    from tensorboard.util import tensor_util

    try:
        array = tensor_util.make_ndarray(proto)
    except Exception:  # noqa: BLE001 - any undecodable tensor is "not a scalar"
        return None
    return float(array) if array.size == 1 and np.issubdtype(array.dtype, np.number) else None


def read_tensorboard_run(path: Path, tag_name: str | None, window: int | None) -> tuple[list[dict], dict, float]:
    scalars = read_scalars(path)
    if not scalars:
        raise UsageError(f"{path}: no scalars (not a TensorBoard event file, or an empty one)")
    if tag_name is not None:
        if tag_name not in scalars:
            raise UsageError(f"{path}: no scalar tag {tag_name!r}; it has: {', '.join(sorted(scalars))}")
        tag = tag_name
    else:
        tag = next((t for t in TB_TAGS if t in scalars), None)
        if tag is None:
            raise UsageError(f"{path}: none of the tags {', '.join(TB_TAGS)}; it has: "
                             f"{', '.join(sorted(scalars))}; pass --tag-name")
    points = sorted(scalars[tag], key=lambda p: (p[1], p[0]))
    wall, steps, values = (np.array(column, dtype=np.float64) for column in zip(*points))
    _finite(values, f"{path} tag {tag!r}")
    if window is None:
        window = WINDOW if tag == EPISODE_TAG else 1
    start = float(wall.min())
    rows = _windows(values, steps.astype(np.int64), None, wall - start, window)
    score = {EVAL_TAG: "evaluation means logged by SB3's EvalCallback",
             EPISODE_TAG: "training episode returns (CleanRL)",
             ROLLOUT_TAG: "running mean of training episode returns (SB3)"}.get(tag, "the tag's values")
    if window > 1:
        score += f", mean of windows of {window} points"
    return rows, {"tag": tag, "window": window, "score": score}, float(wall.max() - start)


# --- score files: rliable dicts and adastop CSVs ----------------------------------------------
def read_score_dict(path: Path) -> dict[str, np.ndarray]:
    """An rliable score dict {algorithm: (runs, tasks)} from .npz or .json (pickles are refused)."""
    _require(path)
    if path.is_dir():
        raise UsageError(f"{path}: a directory; expected one .npz or .json score dict")
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle", ".p"):
        raise UsageError(f"{path}: pickle files are not read (loading one can run code); save the dict with "
                         "numpy.savez(PATH, **score_dict) or as JSON")
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                raw = {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise UsageError(f"{path}: not a numpy .npz score dict ({type(exc).__name__}: {exc})") from None
    elif suffix == ".json":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{path}: unreadable JSON ({type(exc).__name__}: {exc})") from None
        if not isinstance(raw, dict):
            raise UsageError(f"{path}: expected a JSON object {{algorithm: [[score per task] per run]}}")
    else:
        raise UsageError(f"{path}: expected a .npz or .json score dict, got {suffix or 'no extension'}")
    if not raw:
        raise UsageError(f"{path}: the score dict is empty")
    scores = {}
    for name, value in raw.items():
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise UsageError(f"{path}: {name!r} is not a rectangular numeric (runs, tasks) array") from None
        if array.ndim != 2 or 0 in array.shape:
            hint = (" (a (runs, tasks, checkpoints) array: keep the last checkpoint, [..., -1])"
                    if array.ndim == 3 else "")
            raise UsageError(f"{path}: {name!r} has shape {array.shape}, expected (runs, tasks){hint}")
        _finite(array, f"{path} {name!r}")
        scores[str(name)] = array
    return scores


def read_adastop_csvs(source: Path) -> tuple[dict[str, list[float]], list[Path]]:
    """adastop CSVs (index column, one column per agent) -> {agent: scores in order}."""
    _require(source)
    files = [source] if source.is_file() else sorted(source.glob("*.csv"), key=_natural)
    if not files:
        raise UsageError(f"{source}: no .csv file in it")
    scores: dict[str, list[float]] = {}
    for path in files:
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise UsageError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
        if len(rows) < 2 or len(rows[0]) < 2:
            raise UsageError(f"{path}: not an adastop CSV (expected a header 'index,agent,...' and a row per run)")
        agents = [name.strip() for name in rows[0][1:]]
        if "" in agents or len(set(agents)) != len(agents):
            raise UsageError(f"{path}: header {rows[0]!r} needs distinct agent names after the index column")
        for number, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != len(rows[0]):
                raise UsageError(f"{path} line {number}: {len(row)} cells, the header has {len(rows[0])}")
            for agent, cell in zip(agents, row[1:]):
                try:
                    value = float(cell)
                except ValueError:
                    raise UsageError(f"{path} line {number}: {agent} score {cell!r} is not a number") from None
                if not math.isfinite(value):
                    raise UsageError(f"{path} line {number}: {agent} score {cell!r} is not finite")
                scores.setdefault(agent, []).append(value)
    return scores, files


def _select(available: list[str], wanted: list[str] | None, what: str, path: Path) -> list[str]:
    if wanted is None:
        return available
    missing = [name for name in wanted if name not in available]
    if missing:
        raise UsageError(f"{path}: no {what} {missing[0]!r}; it has: {', '.join(available)}")
    return wanted


def _raw_scores(values: np.ndarray, env_id: str, kind: str) -> tuple[np.ndarray, str | None]:
    """Returns from `values` (normalised ones are mapped back with the suite's reference scores)."""
    if kind == "raw":
        return values, None
    from drlbench.results import reference_scores

    random_score, target_score, suite = reference_scores(env_id)
    return random_score + values * (target_score - random_score), suite


# --- the import -------------------------------------------------------------------------------
def collect(fmt: str, source: Path, *, agent: str | None, env: str, seed_from_path: str | None = None,
            tag_name: str | None = None, window: int | None = None, scores: str | None = None) -> list[Imported]:
    """Read and check everything `drlbench import` would write; writes nothing."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown import format {fmt!r}; choose from: {', '.join(FORMATS)}")
    source = Path(source)
    if tag_name is not None and fmt != "tensorboard":
        raise UsageError(f"--tag-name is for the tensorboard format, not {fmt}")
    if window is not None and fmt not in ("sb3", "tensorboard"):
        raise UsageError(f"--window is for the sb3 and tensorboard formats, not {fmt}")
    if scores is not None and fmt not in ("rliable", "adastop"):
        raise UsageError(f"--scores is for the rliable and adastop formats, not {fmt} (its scores are returns)")
    if seed_from_path is not None and fmt in ("rliable", "adastop"):
        raise UsageError(f"--seed-from-path is for the sb3 and tensorboard formats; {fmt} runs are numbered "
                         "in file order")
    origin = {"format": fmt, "path": str(source.absolute())}

    if fmt in ("sb3", "tensorboard"):
        if agent is None:
            raise UsageError(f"import {fmt} needs --agent LABEL (the label the runs get)")
        label = check_label(agent)
        env_id = resolve_env(env)
        paths = find_sb3_runs(source, env_id, env) if fmt == "sb3" else find_event_runs(source)
        seeds = assign_seeds(paths, seed_from_path, source)
        found = []
        for path, seed in zip(paths, seeds):
            if fmt == "sb3":
                rows, extra, episodes, wall = read_sb3_run(path, window or WINDOW)
            else:
                rows, extra, wall = read_tensorboard_run(path, tag_name, window)
                episodes = None
            found.append(Imported(label, env_id, seed, rows, {**origin, "path": str(path.absolute()), **extra},
                                  eval_episodes=episodes, wall_time_s=wall))
        if fmt == "tensorboard":
            tags = sorted({run.source["tag"] for run in found})
            if len(tags) > 1:
                raise UsageError(f"{source}: the runs log different tags ({', '.join(tags)}); pass --tag-name")
        return found

    kind = scores or ("normalized" if fmt == "rliable" else "raw")
    if fmt == "rliable":
        table = read_score_dict(source)
        env_ids = [resolve_env(e) for e in _names(env) or []]
        if not env_ids:
            raise UsageError("import rliable needs --env with one environment per task column, comma-separated")
        if len(set(env_ids)) != len(env_ids):
            raise UsageError(f"--env {env}: an environment is named twice")
        tasks = {name: array.shape[1] for name, array in table.items()}
        if len(set(tasks.values())) > 1:
            raise UsageError(f"{source}: algorithms have different task counts "
                             f"({', '.join(f'{k}: {v}' for k, v in tasks.items())})")
        count = next(iter(tasks.values()))
        if count != len(env_ids):
            raise UsageError(f"{source}: {count} task column(s) but --env names {len(env_ids)} "
                             f"({', '.join(env_ids)})")
        found = []
        for name in _select(list(table), _names(agent), "algorithm", source):
            label = check_label(name)
            for t, env_id in enumerate(env_ids):
                raw, suite = _raw_scores(table[name][:, t], env_id, kind)
                for run, value in enumerate(raw):
                    found.append(Imported(label, env_id, run, [_score_row(value)],
                                          {**origin, "key": name, "run": run, "task": t, "scores": kind,
                                           "score": "final score from an rliable score dict"}, suite=suite))
        return found

    table, files = read_adastop_csvs(source)
    env_id = resolve_env(env)
    if "," in env:
        raise UsageError(f"--env {env}: an adastop CSV holds scores on one environment")
    found = []
    for name in _select(list(table), _names(agent), "agent column", source):
        label = check_label(name)
        raw, suite = _raw_scores(np.asarray(table[name]), env_id, kind)
        for run, value in enumerate(raw):
            found.append(Imported(label, env_id, run, [_score_row(value)],
                                  {**origin, "files": [f.name for f in files], "column": name, "run": run,
                                   "scores": kind, "score": "final score from an adastop CSV"}, suite=suite))
    return found


def record_meta(run: Imported) -> dict:
    """run.json of an imported run: the fields statistics read, and where they came from."""
    last = run.rows[-1]
    return {"format": FORMAT_VERSION, "agent": run.label, "label": run.label, "env_id": run.env_id,
            "suite": run.suite, "seed": run.seed, "steps": last["step"], "steps_done": last["step"],
            "num_envs": None, "eval_episodes": run.eval_episodes, "hyperparameters": {},
            "status": "completed", "error": None, "started_at": None, "ended_at": None,
            "imported_at": now(), "final_score": last["return_mean"],
            "best_score": max(r["return_mean"] for r in run.rows), "wall_time_s": run.wall_time_s,
            "imported_from": run.source}


def import_runs(fmt: str, source: Path, out: Path, **options) -> list[Imported]:
    """Read everything, check that no record would be replaced, then write the records."""
    found = collect(fmt, source, **options)
    if not found:
        raise UsageError(f"{source}: nothing to import")
    owners: dict[Path, Imported] = {}
    for run in found:
        run.path = run_dir(out, run.env_id, run.label, run.seed)
        if run.path in owners:
            raise UsageError(f"two imported runs would both be {run.path} ({owners[run.path].source['path']} and "
                             f"{run.source['path']}); use --seed-from-path")
        owners[run.path] = run
        if run.path.exists():
            raise UsageError(f"{run.path} exists; remove it, or import under another --agent or --out")
    for run in found:
        run.path.mkdir(parents=True)
        RunRecord(run.path, record_meta(run), run.rows).write()
    return found


# --- export -----------------------------------------------------------------------------------
def export_score_dict(scores: dict[str, np.ndarray], path: Path) -> None:
    """Write {label: (runs, tasks)} as rliable users load it: `dict(np.load(path))` or JSON."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **{label: np.asarray(array, dtype=np.float64) for label, array in scores.items()})
        atomic_write(path, buffer.getvalue())
    elif path.suffix.lower() == ".json":
        text = json.dumps({label: np.asarray(array).tolist() for label, array in scores.items()}, indent=1)
        atomic_write(path, (text + "\n").encode("utf-8"))
    else:
        raise UsageError(f"--export rliable {path}: expected a .npz or .json file name")


def check_export_path(path: Path) -> None:
    """Refuse an export path before any work: wrong extension, or a folder that cannot hold it."""
    import os

    path = Path(path)
    if path.suffix.lower() not in (".npz", ".json"):
        raise UsageError(f"--export rliable {path}: expected a .npz or .json file name")
    if path.is_dir():
        raise UsageError(f"--export rliable {path}: is a directory")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise UsageError(f"--export rliable {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--export rliable {path}: folder {parent} is not writable")
