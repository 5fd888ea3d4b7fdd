"""Hyperparameter domains, property-tested: for every agent and every field, a value just outside
the declared domain is refused before anything runs, and the values at (or just inside) each
finite end are accepted by a real, tiny run."""
import dataclasses
import math
import typing

import pytest

from drlbench.agents import AGENTS
from drlbench.config import fields_of, resolve
from drlbench.domains import Domain, domain_of, hp
from drlbench.errors import UsageError
from drlbench.loops import get_loop

ENV = {"stream_q": "CartPole", "stream_td": "CartPole"}
ENV.update({name: "llm:bt-seq?contexts=2,max_len=3,sft_steps=10,demos=64"   # LLM track: a tiny preference task
            for name, cls in AGENTS.items() if cls.loop == "preference"})
ENV.update({name: "llm:arith?demos=128,max_len=1,modulus=4,sft_steps=20"   # group methods: a tiny verifiable task
            for name, cls in AGENTS.items() if cls.loop == "group"})
# Small networks and schedules that make a few environment steps train (each key only if the agent has it).
TINY = {"learning_starts": "0", "random_steps": "0", "batch_size": "4", "buffer_size": "100",
        "hidden_sizes": "[8]", "q_hidden_sizes": "[8]", "n_steps": "4", "vf_batch_size": "4", "num_pairs": "16"}
# Values other fields need for a boundary value to make sense (relations between fields).
COMPANIONS = {
    ("buffer_size", 1): {"batch_size": "1"},
    ("batch_size", 1): {"normalize_advantage": "false"},
    ("n_steps", 1): {"batch_size": "2", "vf_batch_size": "2", "--num-envs": "2"},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    """A small random Pendulum dataset in the D4RL layout, for the offline agents."""
    from drlbench.datasets.collect import collect

    path, _ = collect("Pendulum-v1", "random", 400, 0, tmp_path_factory.mktemp("data") / "pendulum-random.hdf5")
    return str(path)


def offline(agent: str) -> bool:
    return AGENTS[agent].loop in ("offline", "hybrid")


SIM = {"hybrid": "Pendulum-v1?g=12"}   # loops that also train in a simulator (--sim-env)


def fields(agent: str) -> dict:
    cls = AGENTS[agent]
    return fields_of([cls.Config, get_loop(cls.loop).Config])


def integer(annotation) -> bool:
    return annotation is int or typing.get_args(annotation)[:1] == (int,)


def text(value, annotation) -> str:
    value = int(value) if integer(annotation) else value
    return f"[{value}]" if typing.get_origin(annotation) is tuple else repr(value)


def test_every_field_of_every_agent_and_loop_declares_a_domain():
    for name, cls in AGENTS.items():
        for config in (cls.Config, get_loop(cls.loop).Config):
            for f in dataclasses.fields(config):
                assert domain_of(f) is not None, f"{name}: {config.__name__}.{f.name} has no domain"


def test_domain_membership_and_text():
    d = Domain.parse("(0, 1]")
    assert not d.contains(0.0) and d.contains(1e-9) and d.contains(1.0) and not d.contains(1.0000001)
    assert not d.contains(math.nan) and d.interval() == "(0, 1]"
    assert Domain.parse("[1, inf)").contains((1, 2)) and not Domain.parse("[1, inf)").contains((1, 0))
    both = Domain.parse("(-inf, inf)", choices=("auto",))
    assert both.contains("auto") and both.contains(-3.0) and not both.contains("manual")
    assert both.describe(float | str) == "auto or a number in (-inf, inf)"
    assert Domain.parse("[0, inf)").boundaries(integer=True) == ([0], [-1])
    assert Domain.parse("(0, 1]").boundaries(integer=False) == ([1e-6, 1.0], [0.0, 1.000001])
    with pytest.raises(ValueError):
        hp("0 to 1")


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_values_outside_the_domain_are_refused(agent, dataset):
    env = ENV.get(agent, "Pendulum")
    data = dataset if offline(agent) else None
    for key, (annotation, domain) in fields(agent).items():
        outside = domain.boundaries(integer(annotation))[1] if domain.numeric else []
        bad = [text(v, annotation) for v in outside] + (["not-a-choice"] if domain.choices else [])
        if annotation is bool:
            bad = ["maybe"]
        for value in bad:
            with pytest.raises(UsageError) as info:
                resolve(agent, env, [f"{key}={value}"], steps=10**6, dataset=data,
                        sim_env=SIM.get(AGENTS[agent].loop))
            assert key in str(info.value) and "\n" not in str(info.value), (agent, key, value, info.value)


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_boundary_values_inside_the_domain_train(agent, run_cli, tmp_path, dataset):
    env = ENV.get(agent, "Pendulum")
    data = ["--dataset", dataset] if offline(agent) else []
    if AGENTS[agent].loop in SIM:
        data += ["--sim-env", SIM[AGENTS[agent].loop]]
    own = fields(agent)
    tiny = {k: v for k, v in TINY.items() if k in own}
    tried = 0
    for key, (annotation, domain) in own.items():
        if not domain.numeric:
            continue
        for value in domain.boundaries(integer(annotation))[0]:
            extra = {k: v for k, v in COMPANIONS.get((key, value), {}).items() if k in own or k.startswith("--")}
            sets = {**tiny, **{k: v for k, v in extra.items() if not k.startswith("--")}, key: text(value, annotation)}
            options = [x for k, v in extra.items() if k.startswith("--") for x in (k, v)]
            out = tmp_path / f"{key}-{tried}"
            code, _, err = run_cli("run", agent, "--env", env, "--steps", "8", "--eval-episodes", "1",
                                   "--eval-every", "1000", "--quiet", "--out", out, *options, *data,
                                   "--set", *(f"{k}={v}" for k, v in sets.items()))
            assert code == 0, f"{agent} {key}={value}: {err}"
            tried += 1
    assert tried >= 2
