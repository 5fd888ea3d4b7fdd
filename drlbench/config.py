"""Preset files + `--set` overrides -> one frozen, fully resolved configuration.

Agent presets live in `agents/<name>.toml`: a `[hyperparameters]` table (agent and loop keys,
flat) and optional `[suite.<suite>]` tables whose values replace the base ones for environments
of that suite. Suites live in `envs/<suite>.toml`: evaluation protocol, and per environment a
step budget and reference scores for normalisation.
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drlbench.errors import UsageError, unknown


def data_dir(kind: str) -> Path:
    """`agents/` or `envs/`: shipped inside the wheel, or at the repository root when editable."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_data" / kind, package.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"drlbench data directory {kind!r} not found next to {package}")


def _read_toml(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


# --- suites -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    eval_every_steps: int
    eval_episodes: int
    envs: dict[str, dict]   # env_id -> {"steps", "random_score", "target_score", sources...}

    def reference(self, env_id: str) -> tuple[float, float]:
        entry = self.envs[env_id]
        return float(entry["random_score"]), float(entry["target_score"])


def load_suites() -> dict[str, Suite]:
    suites = {}
    for path in sorted(data_dir("envs").glob("*.toml")):
        raw = _read_toml(path)
        suites[path.stem] = Suite(path.stem, raw["description"], raw["eval_every_steps"],
                                  raw["eval_episodes"], raw["envs"])
    return suites


def get_suite(name: str) -> Suite:
    suites = load_suites()
    if name not in suites:
        raise unknown("suite", name, suites)
    return suites[name]


def suite_of(env_id: str) -> Suite | None:
    """The first suite (alphabetically) listing `env_id`, or None."""
    return next((s for s in load_suites().values() if env_id in s.envs), None)


# --- agent presets ------------------------------------------------------------------------
def load_preset(agent: str, suite: str | None) -> dict[str, Any]:
    """Base hyperparameters of `agent`, with the suite's section applied on top."""
    raw = _read_toml(data_dir("agents") / f"{agent}.toml")
    values = dict(raw["hyperparameters"])
    values.update(raw.get("suite", {}).get(suite, {}) if suite else {})
    return values


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def parse_value(key: str, text: str, annotation) -> Any:
    """Parse a `--set key=text` value to `annotation`; a UsageError names what was expected."""
    origin = typing.get_origin(annotation)
    options = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    for option in options:
        try:
            return _parse_one(text, option)
        except ValueError:
            continue
    expected = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise UsageError(f"--set {key}={text}: expected {expected}")


def _parse_one(text: str, annotation) -> Any:
    text = text.strip()
    if annotation is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(text)
    if annotation is int:
        number = float(text)  # accepts 1e6
        if not number.is_integer():
            raise ValueError(text)
        return int(number)
    if annotation is float:
        return float(text)
    if annotation is str:
        return text
    if typing.get_origin(annotation) is tuple:
        inner = typing.get_args(annotation)[0]
        items = [t for t in text.strip("[]()").split(",") if t.strip()]
        return tuple(_parse_one(t, inner) for t in items)
    raise ValueError(f"unsupported type {annotation}")


def _check_type(key: str, value: Any, annotation) -> Any:
    """Values from TOML files: coerce lists to tuples and ints to floats, refuse the rest."""
    origin = typing.get_origin(annotation)
    options = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    for option in options:
        if typing.get_origin(option) is tuple and isinstance(value, (list, tuple)):
            return tuple(value)
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(option, type) and isinstance(value, option) and not (option is int and isinstance(value, bool)):
            return value
    raise UsageError(f"{key}={value!r}: expected {annotation}")


def build(classes: list[type], preset: dict[str, Any], overrides: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """Split preset values + `key=value` overrides among the dataclasses in `classes`.

    Every field of every class must be set; unknown keys are refused, naming the valid ones.
    Returns the instances and the parsed overrides.
    """
    types_by_key: dict[str, Any] = {}
    for cls in classes:
        types_by_key.update(_field_types(cls))
    values = {}
    for key, value in preset.items():
        if key not in types_by_key:
            raise unknown("hyperparameter in preset", key, types_by_key)
        values[key] = _check_type(key, value, types_by_key[key])
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"--set {item!r}: expected key=value")
        if key not in types_by_key:
            raise unknown("hyperparameter", key, types_by_key)
        parsed[key] = values[key] = parse_value(key, text, types_by_key[key])
    instances = []
    for cls in classes:
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in values]
        if missing:
            raise UsageError(f"preset is missing {', '.join(missing)} for {cls.__name__}")
        instances.append(cls(**{n: values[n] for n in names}))
    return instances, parsed


# --- the run configuration ----------------------------------------------------------------
@dataclass(frozen=True)
class RunConfig:
    agent: str
    label: str                   # agent name, plus a tag when hyperparameters were overridden
    env_id: str
    suite: str | None
    seeds: tuple[int, ...]
    steps: int                   # environment steps per seed (summed over its num_envs copies)
    num_envs: int
    device: str
    eval_every_steps: int
    eval_episodes: int
    out: Path
    batched: bool
    tensorboard: bool
    progress: str                # "bar", "lines" or "off"
    hyperparameters: Any         # the agent's Config dataclass instance
    loop: Any                    # the loop's config dataclass instance
    overrides: dict[str, Any] = field(default_factory=dict)

    def hyperparameter_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.loop), **dataclasses.asdict(self.hyperparameters)}
