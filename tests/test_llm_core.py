"""LLM track core: exact evaluation (against Monte Carlo), the optimum by enumeration, labels, the
reference cache, determinism, the CLI end to end and its refusals. Small task variants throughout,
so every test takes seconds."""
import csv
import json

import pytest
import torch

from drlbench.llm.policy import TinyLM, stack
from drlbench.llm.tasks import make, task_spec

SMALL = "llm:bt-seq?contexts=3,max_len=4,sft_steps=30,demos=256"


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """Every test caches references in one temporary data folder."""
    monkeypatch.setenv("DRLBENCH_DATA", str(tmp_path_factory.getbasetemp() / "llm-data"))


def policy(task, seed):
    return TinyLM(task.spec.model, [torch.Generator().manual_seed(seed)])


def test_every_response_enumerated_and_probabilities_sum_to_one():
    task = make("bt-seq", physics={"contexts": 3, "max_len": 4})
    assert task.num_responses == 1 + 4 + 16 + 64 + 256   # n < 4 then EOS, or 4 tokens
    assert len({tuple(t) for t in task.tokens.tolist()}) == task.num_responses
    logp = task.leaf_logprobs(stack([policy(task, 0), policy(task, 1)]))
    assert logp.shape == (2, 3, task.num_responses)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 3), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["bt-seq", "len-bias", "bt-seq-intransitive"])
def test_exact_reward_kl_and_win_rate_match_monte_carlo(name):
    task = make(name, physics={"contexts": 3, "max_len": 4})
    pi, ref = policy(task, 0), policy(task, 1)
    exact = task.evaluate(task.leaf_logprobs(pi), task.leaf_logprobs(ref))
    n = 20_000
    g = torch.Generator().manual_seed(7)
    contexts = torch.randint(3, (1, n), generator=g)
    y, mask, logp = pi.sample(contexts, [g])
    y_ref, _, _ = ref.sample(contexts, [g])
    ref_logp = ref.token_logprobs(contexts, y, mask).detach()
    samples = {"reward": task.reward(contexts, y)[0],
               "kl": (logp - ref_logp).sum(-1)[0],
               "win_rate": torch.sigmoid(task.preference_logit(contexts, y, y_ref))[0],
               "length": (y != 0).sum(-1)[0].float()}
    for key, values in samples.items():
        values = values.double()
        se = values.std() / n ** 0.5
        assert abs(values.mean() - exact[key][0]) < 4 * se + 1e-6, (key, values.mean(), exact[key][0], se)


def test_optimum_by_enumeration():
    task = make("bt-seq", physics={"contexts": 3, "max_len": 4})
    ref = task.leaf_logprobs(policy(task, 1))
    star, j_star = task.optimum(ref)
    at_star, at_ref = task.evaluate(star, ref), task.evaluate(ref, ref)
    assert abs(at_star["regret"].item()) < 1e-6 and abs(at_star["score"].item() - 1) < 1e-5
    assert abs(at_ref["score"].item()) < 1e-12 and at_ref["regret"].item() > 0
    beta, r = task.spec.beta, task.rewards.double()
    # J* = beta log Z is the value of pi*, and regret(pi) = beta KL(pi || pi*) for any pi
    value = (star.exp() * r).sum(-1) - beta * (star.exp() * (star - ref)).sum(-1)
    torch.testing.assert_close(j_star.double(), value.double())
    other = task.leaf_logprobs(policy(task, 2))
    kl_to_star = (other.exp() * (other - star)).sum(-1).mean(-1)
    torch.testing.assert_close(task.evaluate(other, ref)["regret"], beta * kl_to_star.double(), rtol=1e-5, atol=1e-7)
    # no mixture of pi* with another policy does better
    for w in (0.1, 0.5, 0.9):
        mix = torch.logaddexp(star + torch.log(torch.tensor(1 - w)), other + torch.log(torch.tensor(w)))
        assert task.evaluate(mix, ref)["regret"].item() > 0


def test_labels_length_bias_and_noise():
    task = make("len-bias", physics={"q": 1.0})
    n = 4000
    g = torch.Generator().manual_seed(0)
    contexts = torch.randint(task.spec.contexts, (1, n), generator=g)
    pick = torch.randint(task.num_responses, (2, n), generator=g)
    first, second = task.tokens[pick[0]][None], task.tokens[pick[1]][None]
    wins = task.label(contexts, first, second, torch.rand(3, 1, n, generator=g))
    n1, n2 = (first != 0).sum(-1), (second != 0).sum(-1)
    differ = n1 != n2
    assert bool((wins[differ] == (n1 > n2)[differ]).all())       # q = 1: the longer one always wins
    noisy = make("bt-seq", physics={"label_noise": 0.3, "reward_scale": 100.0})   # labels are then deterministic
    clean = make("bt-seq", physics={"reward_scale": 100.0})
    u = torch.rand(3, 1, n, generator=g)
    flips = noisy.label(contexts % 8, first, second, u) != clean.label(contexts % 8, first, second, u)
    assert abs(flips.float().mean().item() - 0.3) < 0.03


def test_reference_cache(tmp_path, monkeypatch):
    from drlbench.llm import reference as ref_module

    monkeypatch.setenv("DRLBENCH_DATA", str(tmp_path))
    task = make("bt-seq", physics={"contexts": 3, "max_len": 4, "sft_steps": 20, "demos": 128})
    first = ref_module.reference(task, 3)
    path = ref_module.cache_path(task, 3)
    assert path.exists() and path.parent == tmp_path / "llm-reference"
    calls = []
    monkeypatch.setattr(ref_module, "train_reference", lambda *a: calls.append(a))
    again = ref_module.reference(task, 3)            # loaded, not retrained
    assert not calls and all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
    # keyed by seed and by every task parameter
    other = make("bt-seq", physics={"contexts": 3, "max_len": 4, "sft_steps": 21, "demos": 128})
    assert ref_module.cache_path(other, 3) != path and ref_module.cache_path(task, 4) != path
    # SFT moved the reference towards the demonstrations
    contexts, tokens, mask = ref_module.demonstrations(task, 3)
    fresh = TinyLM(task.spec.model, [torch.Generator().manual_seed(3)])

    def nll(model):
        return -(model.token_logprobs(contexts[None], tokens[None], mask[None]).sum() / mask.sum()).item()
    assert nll(first) < nll(fresh) - 0.1


def rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)]


def test_cli_end_to_end_deterministic_and_readable_by_stats_and_report(run_cli, tmp_path):
    common = ["--env", "llm:bt-seq", "--steps", "30", "--eval-every", "10", "--quiet"]   # a suite task: stats scores it
    for out in ("a", "b"):
        code, _, err = run_cli("run", "dpo", *common, "--seeds", "0-1", "--out", tmp_path / out)
        assert code == 0, err
    env = "llm:bt-seq"
    for seed in (0, 1):
        a, b = (tmp_path / out / env / "dpo" / f"seed_{seed}" for out in ("a", "b"))
        assert rows(a / "evaluations.csv") == rows(b / "evaluations.csv")
        assert rows(a / "llm_evaluations.csv") == rows(b / "llm_evaluations.csv")
        meta = json.loads((a / "run.json").read_text())
        assert meta["status"] == "completed" and meta["steps_unit"] == "gradient steps"
        assert meta["llm_final"]["step"] == 30 and len(rows(a / "llm_evaluations.csv")) == 4
        first = rows(a / "llm_evaluations.csv")[0]
        assert float(first["score"]) == 0.0 and float(first["kl"]) == 0.0   # the policy starts as pi_ref
    # a batched population: each member follows its own run (to float rounding of batched matmuls)
    code, _, err = run_cli("run", "dpo", *common, "--seeds", "0-1", "--batched", "--out", tmp_path / "c")
    assert code == 0, err
    for seed in (0, 1):
        alone = rows(tmp_path / "a" / env / "dpo" / f"seed_{seed}" / "llm_evaluations.csv")
        member = rows(tmp_path / "c" / env / "dpo" / f"seed_{seed}" / "llm_evaluations.csv")
        assert max(abs(float(x["score"]) - float(y["score"])) for x, y in zip(alone, member)) < 1e-3
    code, out, err = run_cli("stats", tmp_path / "a", "--reps", "200")
    assert code == 0 and "dpo" in out, err
    code, out, err = run_cli("report", tmp_path / "a", "--out", tmp_path / "report", "--reps", "200")
    assert code == 0, err


def test_online_dpo_and_every_method_update_once():
    from drlbench.agents import AGENTS
    from drlbench.config import build, load_preset
    from drlbench.llm.data import offline_pairs, online_pairs
    from drlbench.llm.reference import reference
    from drlbench.loops import get_loop
    from drlbench.population import Population

    task = make("bt-seq", physics={"contexts": 3, "max_len": 4, "sft_steps": 10, "demos": 64})
    ref = stack([reference(task, 0)])
    data = offline_pairs(task, ref, (0,), 32)
    methods = sorted(n for n, c in AGENTS.items() if c.loop == "preference")
    assert {"dpo", "cdpo", "robust_dpo", "ipo", "slic", "f_dpo", "simpo", "ln_dpo", "ld_dpo", "tdpo", "tpo", "orpo",
            "online_dpo"} <= set(methods)
    for name in methods:
        cls = AGENTS[name]
        (config, _), _ = build([cls.Config, get_loop(cls.loop).Config], load_preset(name, "llm"), [])
        population = Population([0])
        agent = cls(task.observation_space, task.action_space, config, population)
        agent.attach_reference(ref, copy_into_policy=True)
        if name == "online_dpo":
            batch = online_pairs(task, agent.policy, ref, population, 8)
        else:
            batch = data.take(population.randint(32, 8))
        before = [p.detach().clone() for p in agent.policy.parameters()]
        metrics = agent.update(batch)
        assert all(v.shape == (1,) and torch.isfinite(v).all() for v in metrics.values()), name
        assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters())), name


@pytest.mark.parametrize("args, needle", [
    (["run", "dpo", "--env", "llm:bt-sq"], "'bt-sq'"),
    (["run", "dpo", "--env", "llm:bt-seq?label_noise=0.5"], "label_noise"),
    (["run", "dpo", "--env", "llm:bt-seq?temperature=2"], "'temperature'"),
    (["run", "dpo", "--env", "llm:bt-seq?contexts=2.5", "--steps", "5"], "contexts"),
    (["run", "dpo", "--env", "llm:bt-seq?n_heads=3", "--steps", "5"], "n_heads"),
    (["run", "dpo", "--env", "llm:bt-seq?content_tokens=8,max_len=6", "--steps", "5"], "enumerate"),
    (["run", "dpo", "--env", "Pendulum"], "llm:bt-seq"),
    (["run", "sac", "--env", "llm:bt-seq"], "task of the LLM track"),
    (["run", "simpo", "--env", "llm:len-bias", "--set", "gamma=-1"], "gamma=-1"),
    (["run", "f_dpo", "--env", "llm:bt-seq", "--set", "divergence=hellinger"], "divergence=hellinger"),
])
def test_bad_input_is_one_line_exit_2(run_cli, tmp_path, args, needle):
    code, _, err = run_cli(*args, "--out", tmp_path / "out")
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_task_parameters_in_the_id_are_canonical(run_cli, tmp_path):
    code, _, err = run_cli("run", "dpo", "--env", SMALL, "--steps", "3", "--eval-every", "3", "--quiet",
                           "--out", tmp_path)
    assert code == 0, err
    canonical = "llm:bt-seq?contexts=3,demos=256,max_len=4,sft_steps=30"   # parameters sorted
    assert (tmp_path / canonical / "dpo" / "seed_0" / "run.json").exists()


def test_task_spec_defaults():
    assert task_spec("len-bias").q == 0.7 and task_spec("bt-seq-intransitive").kappa == 1.0
    assert task_spec("bt-seq", {"label_noise": 0.2}).label_noise == 0.2
