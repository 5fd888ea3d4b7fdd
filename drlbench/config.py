"""Preset files + `--set` overrides -> one frozen, fully resolved configuration.

Agent presets live in `agents/<name>.toml`: a `[hyperparameters]` table (agent and loop keys,
flat) and optional `[suite.<suite>]` tables whose values replace the base ones for environments
of that suite. Suites live in `envs/<suite>.toml`: evaluation protocol, and per environment a
step budget and reference scores for normalisation.
"""
from __future__ import annotations

import dataclasses
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drlbench.domains import INT64_MAX, RELATIONS, Domain, domain_of, quantity
from drlbench.errors import UsageError, unknown


def data_dir(kind: str) -> Path:
    """`agents/` or `envs/`: shipped inside the wheel, or at the repository root when editable."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_data" / kind, package.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"drlbench data directory {kind!r} not found next to {package}")


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not a valid TOML file ({exc})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror})") from None


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
def preset_path(agent: str) -> Path:
    return data_dir("agents") / f"{agent}.toml"


def load_preset(agent: str, suite: str | None, path: Path | None = None) -> dict[str, Any]:
    """Base hyperparameters of `agent` (from its shipped preset, or the file `path`), with the
    suite's section applied on top."""
    path = Path(path) if path is not None else preset_path(agent)
    if not path.is_file():
        raise UsageError(f"{path}: no such preset file for agent {agent!r}")
    raw = _read_toml(path)
    if not isinstance(raw.get("hyperparameters"), dict):
        raise UsageError(f"{path}: no [hyperparameters] table")
    values = dict(raw["hyperparameters"])
    section = raw.get("suite", {}).get(suite, {}) if suite else {}
    if not isinstance(section, dict):
        raise UsageError(f"{path}: [suite.{suite}] is not a table")
    values.update(section)
    return {PRESET_SOURCE: str(path), **values}


PRESET_SOURCE = "__preset__"   # load_preset's key naming the file, for messages


def parse_value(key: str, text: str, annotation) -> Any:
    """Parse a `--set key=text` value to `annotation`; a UsageError names what was expected."""
    origin = typing.get_origin(annotation)
    options = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    for option in options:
        try:
            return _parse_one(text, option)
        except ValueError:
            continue
    raise UsageError(f"--set {key}={text}: expected {_type_name(annotation)}")


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
        if not number.is_integer() or abs(number) > INT64_MAX:
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
        if option is int and isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
            continue
        if isinstance(option, type) and isinstance(value, option) and not (option is int and isinstance(value, bool)):
            return value
    raise UsageError(f"{key}={value!r}: expected {_type_name(annotation)}")


def _type_name(annotation) -> str:
    names = {int: "an integer (within +-2^63)", float: "a number", str: "a string", bool: "true or false"}
    origin = typing.get_origin(annotation)
    options = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    return " or ".join(f"a list like [{'1, 2' if typing.get_args(o)[0] is int else '0.5, 1'}]"
                       if typing.get_origin(o) is tuple else names.get(o, str(o)) for o in options)


def fields_of(classes: list[type]) -> dict[str, tuple[Any, Domain | None]]:
    """key -> (type annotation, domain) over the dataclasses in `classes`."""
    found = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            found[f.name] = (hints[f.name], domain_of(f))
    return found


def _check_domain(where: str, key: str, value: Any, annotation, domain: Domain | None) -> None:
    if domain is None or domain.contains(value):
        return
    each = "each item of " if isinstance(value, tuple) else ""
    raise UsageError(f"{where}{key}={_show(value)}: {each}{key} must be {domain.describe(annotation)}")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(map(_show, value)) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def build(classes: list[type], preset: dict[str, Any], overrides: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """Split preset values + `key=value` overrides among the dataclasses in `classes`.

    Every field of every class must be set; unknown keys, values of the wrong type and values
    outside a field's domain are refused, naming the valid ones. Returns the instances and the
    parsed overrides.
    """
    preset = dict(preset)
    source = preset.pop(PRESET_SOURCE, "preset")
    declared = fields_of(classes)
    values = {}
    for key, value in preset.items():
        if key not in declared:
            raise unknown(f"hyperparameter in {source}:", key, declared)
        annotation, domain = declared[key]
        try:
            values[key] = _check_type(key, value, annotation)
        except UsageError as exc:
            raise UsageError(f"{source}: {exc}") from None
        _check_domain(f"{source}: ", key, values[key], annotation, domain)
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"--set {item!r}: expected key=value")
        if key not in declared:
            raise unknown("hyperparameter", key, declared)
        annotation, domain = declared[key]
        parsed[key] = values[key] = parse_value(key, text, annotation)
        _check_domain("--set ", key, values[key], annotation, domain)
    instances = []
    for cls in classes:
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in values]
        if missing:
            raise UsageError(f"{source} is missing {', '.join(missing)} for {cls.__name__}")
        instances.append(cls(**{n: values[n] for n in names}))
    return instances, parsed


def check_relations(cfg: "RunConfig") -> list[str]:
    """Cross-field relations (`at_most`, `below`, `divides`) on the resolved run: refuses a broken
    one, and returns the warnings of broken soft ones."""
    warnings = []
    values = {**cfg.hyperparameter_dict(), "steps": cfg.steps, "num_envs": cfg.num_envs}
    for key, (_, domain) in fields_of([type(cfg.loop), type(cfg.hyperparameters)]).items():
        if domain is None:
            continue
        value = values[key]
        for relation, bound in domain.relations():
            limit = quantity(bound, values)
            holds, wording = RELATIONS[relation]
            if holds(value, limit):
                continue
            shown = f"{wording} {bound}={_show(limit)}"
            if domain.soft:
                warnings.append(f"{key}={_show(value)}: {key} should {shown}; {_SOFT.get(key, 'continuing')}")
                continue
            raise UsageError(f"{key}={_show(value)}: {key} must {shown}" + _why(key, bound))
    return warnings


_SOFT = {"random_steps": "every training action will be uniformly random",
         "batch_size": "the last minibatch of each epoch will be smaller (stable-baselines3 warns too)"}


def _why(key: str, bound: str) -> str:
    return " (--steps), or nothing would train" if bound == "steps" else ""


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
    dataset: str | None = None   # offline loop: the dataset file (steps then count gradient steps)
    eval_env: str | None = None  # the environment that evaluates the policy, when env_id names a dataset
    snapshots: bool = False      # keep the policy at every evaluation (and the replay buffer): dataset collection
    sim_env: str | None = None   # training interaction happens here ("Pendulum-v1?g=15"); evaluation in `environment`

    @property
    def environment(self) -> str:
        """The environment ID to make for evaluation (the real one), and for training unless `sim_env`."""
        return self.eval_env or self.env_id

    @property
    def training_environment(self) -> str:
        """The environment the agent interacts with while training: the simulator if there is one."""
        return self.sim_env or self.environment

    @property
    def steps_unit(self) -> str:
        return "gradient steps" if self.dataset else "environment steps"

    def hyperparameter_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.loop), **dataclasses.asdict(self.hyperparameters)}


# --- resolution: (agent, env, --set, suite) -> RunConfig -------------------------------------
def check_device(name: str) -> None:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r}: choose from cpu, cuda, cuda:N") from None
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise UsageError(f"--device {name}: choose from cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available here; choose from: cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                         f"choose from cuda:0 to cuda:{torch.cuda.device_count() - 1}")


def resolve(agent: str, env: str, overrides: list[str] = (), *, steps: int | None = None, num_envs: int = 1,
            device: str = "cpu", eval_every: int | None = None, eval_episodes: int | None = None,
            out: Path = Path("runs"), batched: bool = False, tensorboard: bool = False, progress: str = "bar",
            tag: str | None = None, preset: Path | None = None, dataset: str | None = None,
            sim_env: str | None = None) -> RunConfig:
    """The RunConfig of one variant (seeds=()): the agent's preset for the environment's suite,
    `--set` overrides, the step budget, the evaluation protocol and the label. Every refusal
    (unknown names, types, domains, relations, the loop's own checks) happens here, before
    anything is written. Used by every verb that trains.

    `sim_env` (`--sim-env`, an ID with physics parameters such as "Pendulum-v1?g=15"): the agent
    trains by interacting with this simulator and is evaluated in the real environment, `env` (or,
    when `env` names a dataset, the dataset's environment; the run then belongs to the dataset's
    task, next to the offline agents). Loops that learn from a dataset alone refuse it; loops that
    need one (`NEEDS_SIM_ENV`, the hybrid loop) require it."""
    import hashlib
    import json

    from drlbench import envs
    from drlbench.agents import get_agent
    from drlbench.loops import get_loop

    agent_cls = get_agent(agent)
    loop_module = get_loop(agent_cls.loop)
    eval_env = None
    needs_sim = getattr(loop_module, "NEEDS_SIM_ENV", False)
    if sim_env is not None and not getattr(loop_module, "USES_TRAINING_ENV", True):
        raise UsageError(f"--sim-env {sim_env}: {agent_cls.name} learns from a dataset alone and interacts with "
                         "no environment; agents that train in a simulator: "
                         + ", ".join(sorted(n for n, c in _agents().items() if c.loop != "offline")))
    if needs_sim and sim_env is None:
        raise UsageError(f"{agent_cls.name} trains in a simulator as well as on the data: add --sim-env ENV, "
                         "e.g. --sim-env 'Pendulum-v1?g=15' (see `drlbench run --help`)")
    if getattr(loop_module, "NEEDS_DATASET", False):
        env_id, dataset, eval_env = offline_task(env, dataset)
    elif sim_env is not None and dataset is None and env is not None and _names_dataset(env):
        env_id, _, eval_env = offline_task(env, None)   # an online agent on a dataset's task: the real env
    elif dataset is not None:
        raise UsageError(f"--dataset {dataset}: {agent_cls.name} learns online; offline agents: "
                         + ", ".join(sorted(n for n, c in _agents().items() if c.loop == "offline")))
    elif env is None:
        raise UsageError("the following arguments are required: --env")
    else:
        env_id = envs.resolve(env)
        if env_id.startswith("llm:") and not getattr(loop_module, "LLM_TASKS", False):
            raise UsageError(f"{env_id} is a task of the LLM track; agents that train on it: "
                             + ", ".join(sorted(n for n, c in _agents().items()
                                                if getattr(get_loop(c.loop), "LLM_TASKS", False))))
    if sim_env is not None:
        sim_env = _check_sim_env(sim_env, eval_env or env_id)
    suite = suite_of(env_id)
    (hyperparameters, loop), parsed = build(
        [agent_cls.Config, loop_module.Config], load_preset(agent_cls.name, suite.name if suite else None, preset),
        list(overrides))
    check_device(device)
    steps = steps or (suite.envs[env_id]["steps"] if suite else None)
    if steps is None:
        raise UsageError(f"--steps is required: {env_id} is in no suite (see `drlbench list envs`)")
    label = tag or agent_cls.name
    if (parsed or preset) and not tag:   # a variant: named by what differs from the shipped preset
        changed = {**(_differences(agent_cls, loop_module, hyperparameters, loop, suite) if preset else {}), **parsed}
        digest = hashlib.sha1(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:8]
        label = f"{agent_cls.name}-{digest}"
    if sim_env is not None and not needs_sim and not tag:   # sim-only training of an online agent
        label = label.replace(agent_cls.name, f"{agent_cls.name}-sim", 1)
    config = RunConfig(
        agent=agent_cls.name, label=label, env_id=env_id, suite=suite.name if suite else None,
        seeds=(), steps=steps, num_envs=num_envs, device=device,
        eval_every_steps=eval_every or (suite.eval_every_steps if suite else 5000),
        eval_episodes=eval_episodes or (suite.eval_episodes if suite else 10),
        out=Path(out), batched=batched, tensorboard=tensorboard, progress=progress,
        hyperparameters=hyperparameters, loop=loop, overrides=parsed, dataset=dataset, eval_env=eval_env,
        sim_env=sim_env)
    warnings = check_relations(config)
    if hasattr(loop_module, "check"):
        loop_module.check(config)   # a loop's own refusals
    for warning in warnings:       # only once nothing was refused
        print(f"drlbench: warning: {warning}", file=sys.stderr)
    return config


def _names_dataset(env: str) -> bool:
    """Whether `env` names a dataset (and no environment)."""
    from drlbench import datasets, envs

    try:
        envs.resolve(env)
        return False
    except UsageError:
        pass
    try:
        datasets.locate(env)
        return True
    except UsageError:
        return False


def _check_sim_env(sim_env: str, real_env: str) -> str:
    """The canonical simulator ID; refused unless its spaces are the real environment's."""
    from drlbench import envs

    canonical = envs.resolve_with_physics(sim_env)
    sim, real = envs.make(canonical, 1, "cpu"), envs.make(real_env, 1, "cpu")
    try:
        same = (sim.observation_space.shape == real.observation_space.shape
                and sim.action_space == real.action_space)
    finally:
        sim.close()
        real.close()
    if not same:
        raise UsageError(f"--sim-env {sim_env}: its spaces ({sim.observation_space}, {sim.action_space}) are not "
                         f"the real environment {real_env}'s ({real.observation_space}, {real.action_space})")
    return canonical


def _agents() -> dict:
    from drlbench.agents import AGENTS

    return AGENTS


def offline_task(env: str | None, dataset: str | None) -> tuple[str, str, str]:
    """(task name, dataset path, evaluation environment) of an offline run: the dataset is named by
    `--env NAME` or given by `--dataset PATH`; it is read and checked against the evaluation
    environment's spaces here, so a bad file is refused before anything is written."""
    from drlbench import datasets, envs

    source = dataset if dataset is not None else env
    if source is None:
        raise UsageError("an offline agent needs a dataset: --env NAME (see `drlbench dataset list`) or --dataset PATH")
    path = datasets.locate(source)
    data = datasets.load(path)
    eval_env = datasets.evaluation_env(data, path)
    if dataset is not None and env is not None and not datasets.registry.looks_like_dataset(env):
        eval_env = envs.resolve(env)
    if eval_env is None:
        raise UsageError(f"{path}: the dataset does not name its environment; add --env ENV")
    eval_env = envs.resolve(eval_env)
    probe = envs.make(eval_env, 1, "cpu")
    try:
        datasets.validate(data, probe.observation_space, probe.action_space)
    finally:
        probe.close()
    return path.stem if path.suffix else path.name, str(path.resolve()), eval_env


def _differences(agent_cls, loop_module, hyperparameters, loop, suite) -> dict[str, Any]:
    (shipped, shipped_loop), _ = build([agent_cls.Config, loop_module.Config],
                                       load_preset(agent_cls.name, suite.name if suite else None), [])
    ours = {**dataclasses.asdict(loop), **dataclasses.asdict(hyperparameters)}
    theirs = {**dataclasses.asdict(shipped_loop), **dataclasses.asdict(shipped)}
    return {k: v for k, v in ours.items() if theirs[k] != v}


# --- what users may set -----------------------------------------------------------------------
def preset_comments(path: Path) -> dict[str, str]:
    """key -> the comment beside it in a preset's [hyperparameters] table (continuation lines joined)."""
    comments: dict[str, str] = {}
    section, key = "", None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and key and line[:1].isspace():
            comments[key] += " " + stripped.lstrip("#").strip()
            continue
        key = None
        if stripped.startswith("["):
            section = stripped.strip("[]").strip()
        name, sep, rest = line.partition("=")
        if section == "hyperparameters" and sep and name.strip().isidentifier():
            key = name.strip()
            comments[key] = rest.partition(" #")[2].strip()
    return comments


def describe_agent(agent: str) -> str:
    """Every hyperparameter of `agent` (and its loop): default, domain, and the preset's source comment."""
    from drlbench.agents import get_agent
    from drlbench.loops import get_loop

    agent_cls = get_agent(agent)
    path = preset_path(agent_cls.name)
    base = load_preset(agent_cls.name, None)
    base.pop(PRESET_SOURCE)
    comments = preset_comments(path)
    raw = _read_toml(path)
    rows = [("hyperparameter", "type", "default", "domain", "source (preset comment)")]
    for key, (annotation, domain) in fields_of([agent_cls.Config, get_loop(agent_cls.loop).Config]).items():
        allowed = domain.describe(annotation) if domain else "-"
        relation = domain.relation_text() if domain else ""
        rows.append((key, _type_name(annotation).split(" (")[0].removeprefix("an ").removeprefix("a "),
                     _show(base[key]) if key in base else "-", allowed + (f"; {relation}" if relation else ""),
                     comments.get(key, "")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{agent_cls.name}: {agent_cls.summary}", f"loop: {agent_cls.loop}; preset: {path}", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    for suite, values in raw.get("suite", {}).items():
        lines.append(f"suite {suite}: " + ", ".join(f"{k}={_show(_plain(v))}" for k, v in values.items()))
    lines.append("Set any of them with `drlbench run AGENT --env ENV --set key=value`.")
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
