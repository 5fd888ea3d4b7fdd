"""The group loop (LLM track, RLVR family): records, the behaviour policy's lag, mu iterations on one
batch, dynamic sampling, overlong shaping, ReMax's greedy baseline, resume, batched populations,
refusals, and one update of every registered group agent. Tiny task variants: seconds per test."""
import csv
import json

import pytest
import torch

from drlbench.agents._group import GroupAgent
from drlbench.llm.policy import TinyLM
from drlbench.llm.tasks import Task, make
from drlbench.loops.group import content_length, token_logprobs

TINY = "llm:bt-seq?contexts=3,demos=256,max_len=4,sft_steps=30"
TINY_PHYSICS = {"contexts": 3, "demos": 256, "max_len": 4, "sft_steps": 30}
SMALL = ("prompts_per_step=4", "group_size=4")   # settings given later on the command line win


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """Every test caches references in one temporary data folder."""
    monkeypatch.setenv("DRLBENCH_DATA", str(tmp_path_factory.getbasetemp() / "llm-data"))


@pytest.fixture
def updates(monkeypatch):
    """Every agent.update call: (groups, the policy's parameters before the update)."""
    seen = []
    original = GroupAgent.update

    def spy(self, groups):
        seen.append((groups, {k: v.detach().clone() for k, v in self.policy.state_dict().items()}))
        return original(self, groups)

    monkeypatch.setattr(GroupAgent, "update", spy)
    return seen


@pytest.fixture
def binary_reward(monkeypatch):
    """bt-seq with a 0/1 reward (r > 0): groups whose completions all score the same are common."""
    original = Task.reward
    monkeypatch.setattr(Task, "reward", lambda self, c, y: (original(self, c, y) > 0).float())


def train(run_cli, out, agent="grpo", *sets, steps=6, every=3, seeds="0", extra=()):
    args = ["run", agent, "--env", TINY, "--steps", steps, "--eval-every", every, "--seeds", seeds, "--quiet",
            "--out", out, *extra]
    code, _, err = run_cli(*args, "--set", *SMALL, *sets)
    assert code == 0, err


def seed_dir(out, agent, seed):
    (path,) = list(out.glob(f"*/{agent}*/seed_{seed}"))
    return path


def rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)]


def tiny_task():
    return make("bt-seq", physics=TINY_PHYSICS)


def model(state):
    m = TinyLM(tiny_task().spec.model, [torch.Generator()])
    m.load_state_dict(state)
    return m


# ------------------------------------------------------------------------------ records
def test_run_writes_the_records_and_is_deterministic(run_cli, tmp_path):
    for out in ("a", "b"):
        train(run_cli, tmp_path / out)
    a, b = seed_dir(tmp_path / "a", "grpo", 0), seed_dir(tmp_path / "b", "grpo", 0)
    for name in ("evaluations.csv", "llm_evaluations.csv", "group_metrics.csv"):
        assert rows(a / name) == rows(b / name), name
    meta = json.loads((a / "run.json").read_text())
    assert meta["status"] == "completed" and meta["steps_unit"] == "gradient steps" and meta["steps"] == 6
    assert meta["llm_final"]["step"] == 6
    assert [int(r["step"]) for r in rows(a / "evaluations.csv")] == [0, 3, 6]
    first = rows(a / "llm_evaluations.csv")[0]
    assert float(first["score"]) == 0.0 and float(first["kl"]) == 0.0      # the policy starts as pi_ref
    metrics = rows(a / "group_metrics.csv")
    assert [int(r["step"]) for r in metrics] == [3, 6]
    assert {"reward", "reward_std", "frac_reward_zero_std", "completion_length", "loss", "grad_norm",
            "groups_drawn"} <= set(metrics[0])
    assert float(metrics[0]["groups_drawn"]) == 4.0                         # the preset's prompts_per_step


def test_on_arith_training_samples_only_the_training_prompts(run_cli, tmp_path, updates):
    from drlbench.llm.tasks import make as make_task

    env = "llm:arith?demos=128,max_len=1,modulus=4,sft_steps=20"
    code, _, err = run_cli("run", "grpo", "--env", env, "--steps", "4", "--eval-every", "2", "--quiet",
                           "--out", tmp_path, "--set", *SMALL)
    assert code == 0, err
    task = make_task("arith", physics={"demos": 128, "max_len": 1, "modulus": 4, "sft_steps": 20})
    seen = torch.cat([groups.contexts.flatten() for groups, _ in updates]).unique()
    assert set(seen.tolist()) <= set(task.train_contexts.tolist()) and len(task.test_contexts) >= 1
    for groups, _ in updates:   # the verifiable reward: 1 exactly for the right answer
        torch.testing.assert_close(groups.rewards, task.correct(groups.contexts[..., None].expand_as(
            groups.rewards), groups.tokens).float())
    path = seed_dir(tmp_path, "grpo", 0)
    evaluations = rows(path / "llm_evaluations.csv")
    assert [int(r["step"]) for r in evaluations] == [0, 2, 4] and {"success_train", "success_test"} <= set(evaluations[0])
    assert json.loads((path / "run.json").read_text())["evaluation"] == task.EVALUATION


def test_token_logprobs_are_those_of_the_tempered_distribution():
    task = tiny_task()
    m = TinyLM(task.spec.model, [torch.Generator().manual_seed(0)])
    contexts = torch.tensor([[0, 2]])
    tokens = torch.tensor([[[[1, 2, 0, 0], [4, 4, 4, 4]], [[0, 0, 0, 0], [3, 1, 0, 0]]]])   # (1, 2, 2, 4)
    mask = torch.tensor([[[[1., 1, 1, 0], [1, 1, 1, 1]], [[1, 0, 0, 0], [1, 1, 1, 0]]]])
    logp, entropy = token_logprobs(m, contexts, tokens, mask, 0.5, entropy=True)
    for q in range(2):
        for g in range(2):
            ids = torch.cat([torch.tensor([contexts[0, q] + task.spec.content_tokens + 1]), tokens[0, q, g, :-1]])
            z = m.logits(ids.view(1, 1, -1))[0, 0] / 0.5                   # (L, K+1)
            by_hand = torch.log_softmax(z, -1)
            want = by_hand.gather(-1, tokens[0, q, g, :, None]).squeeze(-1) * mask[0, q, g]
            torch.testing.assert_close(logp[0, q, g], want)
            torch.testing.assert_close(entropy[0, q, g], -(by_hand.exp() * by_hand).sum(-1) * mask[0, q, g])


# ------------------------------------------------------------------------------ the off-policy knobs
def test_lag_samples_from_the_policy_k_updates_old(run_cli, tmp_path, updates):
    train(run_cli, tmp_path, "grpo", "lag=2", steps=6, every=6)
    assert len(updates) == 6
    for n, (groups, _) in enumerate(updates):
        def gap(state):
            lp = token_logprobs(model(state), groups.contexts, groups.tokens, groups.mask, groups.temperature)
            return (lp - groups.old_logps).abs().max().item()
        assert gap(updates[max(0, n - 2)][1]) < 1e-5, n             # sampled by the policy 2 updates ago
        if n >= 2:
            assert gap(updates[n][1]) > 1e-3 and gap(updates[n - 1][1]) > 1e-3, n


def test_num_iterations_take_mu_steps_on_one_batch(run_cli, tmp_path, updates):
    train(run_cli, tmp_path, "grpo", "num_iterations=3", steps=6, every=6)
    batches = [groups for groups, _ in updates]
    assert batches[0] is batches[1] is batches[2] and batches[3] is batches[4] is batches[5]
    assert not torch.equal(batches[0].tokens, batches[3].tokens)
    for n, (groups, state) in enumerate(updates):
        lp = token_logprobs(model(state), groups.contexts, groups.tokens, groups.mask, groups.temperature)
        ratio_is_one = (lp - groups.old_logps).abs().max().item() < 1e-5
        assert ratio_is_one == (n % 3 == 0), n                       # on-policy at the first iteration only


# ------------------------------------------------------------------------------ DAPO and ReMax pieces
def test_dynamic_sampling_drops_groups_whose_rewards_are_all_equal(run_cli, tmp_path, updates, binary_reward):
    train(run_cli, tmp_path / "plain", "grpo", "group_size=2", steps=4, every=4)
    plain = [g.rewards for g, _ in updates]
    assert any(bool((r.amax(-1) == r.amin(-1)).any()) for r in plain)   # the test means something
    updates.clear()
    train(run_cli, tmp_path / "dynamic", "grpo", "group_size=2", "dynamic_sampling=true", "max_sampling_rounds=8",
          steps=4, every=1)
    for groups, _ in updates:
        r = groups.rewards
        assert bool((r.amax(-1) > r.amin(-1)).all())                  # every kept group is informative
    drawn = [float(r["groups_drawn"]) for r in rows(seed_dir(tmp_path / "dynamic", "grpo", 0) / "group_metrics.csv")]
    assert all(d % 4 == 0 for d in drawn) and max(drawn) > 4            # more than Q drawn, Q at a time


def test_dynamic_sampling_gives_up_after_max_sampling_rounds(run_cli, tmp_path, updates, monkeypatch):
    monkeypatch.setattr(Task, "reward", lambda self, c, y: torch.zeros(y.shape[:-1]))   # every group degenerate
    train(run_cli, tmp_path, "grpo", "dynamic_sampling=true", "max_sampling_rounds=3", steps=2, every=2)
    assert all(g.rewards.shape[1] == 4 for g, _ in updates)
    assert float(rows(seed_dir(tmp_path, "grpo", 0) / "group_metrics.csv")[0]["groups_drawn"]) == 12.0


def test_overlong_shaping_by_hand(run_cli, tmp_path, updates):
    train(run_cli, tmp_path, "grpo", "overlong_cache=2", "group_size=8", steps=1, every=1)
    groups, _ = updates[0]
    task = tiny_task()
    n = content_length(groups.tokens)                                   # max_len 4, cache 2: punish from 3 tokens
    penalty = torch.where(n <= 2, 0.0, torch.where(n == 3, -0.5, -1.0))
    raw = task.reward(groups.contexts[..., None].expand_as(n), groups.tokens)
    torch.testing.assert_close(groups.rewards, raw + penalty)
    assert {2, 3, 4} & set(n.flatten().tolist())


def test_remax_baseline_is_the_reward_of_the_greedy_answer(run_cli, tmp_path, updates):
    train(run_cli, tmp_path, "remax", steps=2, every=2)
    task = tiny_task()
    for groups, state in updates:
        assert groups.baseline_rewards.shape == groups.contexts.shape
        # greedy = sampling at a vanishing temperature (Gumbel noise cannot beat logit gaps / 1e-5)
        tokens, _, _ = model(state).sample(groups.contexts, [torch.Generator().manual_seed(0)], temperature=1e-5)
        torch.testing.assert_close(groups.baseline_rewards, task.reward(groups.contexts, tokens))


# ------------------------------------------------------------------------------ resume, populations
def test_resume_equals_an_uninterrupted_run(run_cli, tmp_path, monkeypatch, binary_reward):
    from drlbench.harness import Session

    sets = ("num_iterations=4", "lag=1", "dynamic_sampling=true")   # checkpoints fall inside a batch's iterations
    train(run_cli, tmp_path / "straight", "grpo", *sets, steps=12, every=3, seeds="0-1", extra=["--batched"])
    original, calls = Session.save_checkpoint, []

    def interrupt_after_second_checkpoint(self, loop_state):
        original(self, loop_state)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Session, "save_checkpoint", interrupt_after_second_checkpoint)
    args = ["run", "grpo", "--env", TINY, "--steps", "12", "--eval-every", "3", "--seeds", "0-1", "--batched",
            "--quiet", "--out", tmp_path / "resumed", "--set", *SMALL, *sets]
    assert run_cli(*args)[0] == 130
    monkeypatch.setattr(Session, "save_checkpoint", original)
    code, _, err = run_cli(*args, "--resume")
    assert code == 0, err
    for seed in (0, 1):
        a, b = seed_dir(tmp_path / "straight", "grpo", seed), seed_dir(tmp_path / "resumed", "grpo", seed)
        for name in ("evaluations.csv", "llm_evaluations.csv", "group_metrics.csv"):
            assert rows(a / name) == rows(b / name), (seed, name)
        assert len(rows(a / "evaluations.csv")) == 5


def test_batched_population_equals_separate_runs(run_cli, tmp_path, binary_reward):
    sets = ("group_size=2", "dynamic_sampling=true", "lag=1")   # members need different numbers of draws
    train(run_cli, tmp_path / "batched", "grpo", *sets, steps=6, every=3, seeds="0-1", extra=["--batched"])
    drawn = []
    for seed in (0, 1):
        train(run_cli, tmp_path / f"alone{seed}", "grpo", *sets, steps=6, every=3, seeds=str(seed))
        alone = seed_dir(tmp_path / f"alone{seed}", "grpo", seed)
        member = seed_dir(tmp_path / "batched", "grpo", seed)
        for x, y in zip(rows(alone / "llm_evaluations.csv"), rows(member / "llm_evaluations.csv")):
            assert abs(float(x["score"]) - float(y["score"])) < 1e-5
        assert [r["groups_drawn"] for r in rows(alone / "group_metrics.csv")] == \
            [r["groups_drawn"] for r in rows(member / "group_metrics.csv")]
        drawn.append([r["groups_drawn"] for r in rows(alone / "group_metrics.csv")])
    assert drawn[0] != drawn[1]


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("args, needle", [
    (["grpo", "--set", "group_size=1"], "group_size=1"),
    (["remax", "--set", "greedy_baseline=false"], "greedy_baseline"),
    (["grpo", "--set", "overlong_cache=5"], "overlong_cache=5"),
    (["grpo", "--set", "lag=-1"], "lag=-1"),
    (["grpo", "--set", "temperature=0"], "temperature=0"),
    (["grpo", "--set", "num_iterations=0"], "num_iterations=0"),
    (["grpo", "--set", "max_sampling_rounds=0"], "max_sampling_rounds=0"),
])
def test_bad_settings_are_one_line_exit_2(run_cli, tmp_path, args, needle):
    code, _, err = run_cli("run", *args, "--env", TINY, "--steps", "3", "--out", tmp_path / "out")
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_group_agents_refuse_other_environments(run_cli, tmp_path):
    code, _, err = run_cli("run", "grpo", "--env", "Pendulum", "--steps", "3", "--out", tmp_path / "out")
    assert code == 2 and "llm:arith" in err and err.count("\n") == 1, err


# ------------------------------------------------------------------------------ every method
def test_every_group_agent_builds_and_takes_one_step(binary_reward):   # 0/1 rewards: BNPO's and DisCO's kind
    from dataclasses import replace

    from drlbench.agents import AGENTS
    from drlbench.config import build, load_preset
    from drlbench.llm.policy import stack
    from drlbench.llm.reference import reference
    from drlbench.loops import get_loop
    from drlbench.loops.group import Sampler
    from drlbench.population import Population

    task = tiny_task()
    ref = stack([reference(task, 0)])
    methods = sorted(n for n, c in AGENTS.items() if c.loop == "group")
    assert {"reinforce", "remax", "rloo", "reinforce_pp", "reinforce_pp_baseline", "grpo", "dr_grpo", "dapo", "gspo",
            "sapo", "cispo", "bnpo", "topr", "disco", "rec", "opmd", "asymre", "copg"} <= set(methods)
    for name in methods:
        cls = AGENTS[name]
        (config, loop), _ = build([cls.Config, get_loop(cls.loop).Config], load_preset(name, "llm"), [])
        loop = replace(loop, prompts_per_step=3, group_size=4)
        population = Population([0])
        agent = cls(task.observation_space, task.action_space, config, population)
        agent.attach_reference(ref, copy_into_policy=True)
        groups, _ = Sampler(task, ref, population, loop, agent.policy).draw(agent.policy)
        before = [p.detach().clone() for p in agent.policy.parameters()]
        metrics = agent.update(groups)
        assert all(v.shape == (1,) and torch.isfinite(v).all() for v in metrics.values()), name
        assert {"loss", "grad_norm", "reward"} <= set(metrics), name
        assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters())), name
