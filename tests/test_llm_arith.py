"""Task B of the LLM track, llm:arith: prompts and rewards by hand, the enumeration, exact success and
pass@k (against Monte Carlo and by hand), the split, the difficulty knob, multi-token prompts in the
policy, the reference cache and the refusals. Small variants throughout: every test takes seconds."""
import hashlib
import json
from dataclasses import asdict

import pytest
import torch

from drlbench.llm.arith import ArithTask, task_spec
from drlbench.llm.policy import EOS, ModelSpec, TinyLM, stack
from drlbench.llm.tasks import make


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """Every test caches references in one temporary data folder."""
    monkeypatch.setenv("DRLBENCH_DATA", str(tmp_path_factory.getbasetemp() / "llm-data"))


def arith(**physics) -> ArithTask:
    return make("arith", physics=physics)


def policy(task, seed):
    return TinyLM(task.spec.model, [torch.Generator().manual_seed(seed)])


def answer(*digits) -> list[int]:
    """Content tokens of a digit string (digit d is token d + 1)."""
    return [d + 1 for d in digits]


def padded(tokens, length):
    return tokens + [EOS] * (length - len(tokens))


# ------------------------------------------------------------------ prompts, answers, rewards
def test_prompts_and_true_answers_by_hand():
    task = arith(ops=3)
    plus, times, minus, equals = 11, 12, 13, 14
    table = task.spec.model.prompts
    assert len(table) == task.spec.contexts == 300 and task.spec.model.prompt_len == 4
    # context = op * m^2 + a * m + b
    assert table[75] == (8, plus, 6, equals)                         # 7 + 5 = 2 (mod 10)
    assert task.answers[75].tolist() == padded(answer(2), 2)
    assert table[100 + 75] == (8, times, 6, equals)                  # 7 * 5 = 5
    assert task.answers[175].tolist() == padded(answer(5), 2)
    assert table[200 + 35] == (4, minus, 6, equals)                  # 3 - 5 = 8 (mod 10)
    assert task.answers[235].tolist() == padded(answer(8), 2)
    wide = arith(modulus=12)                                         # operands zero-padded to 2 digits
    assert wide.spec.model.prompt_len == 6
    assert wide.spec.model.prompts[7 * 12 + 11] == (1, 8, plus, 2, 2, equals)   # 07 + 11 = 6 (mod 12)
    assert wide.answers[7 * 12 + 11].tolist() == padded(answer(6), 2)
    assert wide.answers[5 * 12 + 6].tolist() == answer(1, 1)          # 05 + 06 = 11: two digits


def test_reward_by_hand_exact_partial_empty_overlong():
    task = arith(modulus=12, max_len=3, partial_credit=0.5)
    plain = arith(modulus=12, max_len=3)
    c = 5 * 12 + 6                                                   # 05 + 06 = 11
    cases = [   # answer tokens, reward with partial_credit 0.5 (matching digits / max(|y|, |y*|))
        (answer(1, 1), 1.0),                                         # right
        (answer(1, 2), 0.5 * 1 / 2),                                 # one digit right
        (answer(2, 1), 0.5 * 1 / 2),                                 # digits compared left-aligned
        (answer(1), 0.5 * 1 / 2),                                    # too short
        (answer(1, 1, 1), 0.5 * 2 / 3),                              # overlong: right digits + one more
        (answer(0, 1, 1), 0.5 * 1 / 3),                              # leading zero: not the answer
        ([], 0.0),                                                   # empty
        (answer(7), 0.0),                                            # wrong
    ]
    tokens = torch.tensor([padded(y, 3) for y, _ in cases])
    contexts = torch.full((len(cases),), c)
    torch.testing.assert_close(task.reward(contexts, tokens), torch.tensor([r for _, r in cases]))
    torch.testing.assert_close(plain.reward(contexts, tokens), torch.tensor([1.0] + [0.0] * (len(cases) - 1)))
    # what follows EOS does not count; batch shapes are kept
    after_eos = torch.tensor([[[2, EOS, 2], [2, 2, EOS]]])
    assert task.reward(torch.full((1, 2), c), after_eos).tolist() == [[0.25, 1.0]]
    # an answer of max_len digits has no EOS: 10 + 22 = 32 with modulus 40, max_len 2
    full = arith(modulus=40, max_len=2)
    assert full.reward(torch.tensor([10 * 40 + 22]), torch.tensor([answer(3, 2)])).item() == 1.0
    assert full.reward(torch.tensor([10 * 40 + 22]), torch.tensor([answer(3, 3)])).item() == 0.0


def test_enumeration_covers_every_answer_once_and_one_is_correct():
    task = arith(modulus=5)
    assert task.num_responses == 1 + 10 + 100                       # empty, 1 digit, 2 digits
    assert len({tuple(t) for t in task.tokens.tolist()}) == task.num_responses
    assert task.rewards.shape == (25, task.num_responses)
    assert bool((task.rewards.sum(-1) == 1).all()) and bool((task.rewards.max(-1).values == 1).all())
    gold, _ = task.gold(torch.arange(25))
    assert torch.equal(gold, task.answers)
    assert torch.equal(task.rewards.argmax(-1), task.correct_index)
    logp = task.leaf_logprobs(stack([policy(task, 0), policy(task, 1)]))
    assert logp.shape == (2, 25, task.num_responses)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 25), atol=1e-5, rtol=0)


# ------------------------------------------------------------------ exact evaluation
def test_exact_success_reward_kl_length_match_monte_carlo():
    from drlbench.llm.reference import train_reference

    task = arith(modulus=5, partial_credit=0.5, sft_steps=60, demos=256)
    pi, ref = train_reference(task, 0), policy(task, 1)             # a fine-tuned pi: success well above 0
    exact = task.evaluate(task.leaf_logprobs(pi), task.leaf_logprobs(ref))
    n = 20_000
    g = torch.Generator().manual_seed(7)
    for split, prompts in (("train", task.train_contexts), ("test", task.test_contexts)):
        contexts = prompts[torch.randint(len(prompts), (1, n), generator=g)]
        y, mask, logp = pi.sample(contexts, [g])
        samples = {f"success_{split}": task.correct(contexts, y)[0].double()}
        if split == "train":   # the unsuffixed columns average over the training prompts
            samples.update(reward=task.reward(contexts, y)[0].double(),
                           kl=(logp - ref.token_logprobs(contexts, y, mask).detach()).sum(-1)[0].double(),
                           entropy=-logp.sum(-1)[0].double(), length=(y != EOS).sum(-1)[0].double())
        for key, values in samples.items():
            se = values.std() / n ** 0.5
            assert abs(values.mean() - exact[key][0]) < 4 * se + 1e-6, (key, values.mean(), exact[key][0], se)
    assert exact["success_train"][0] > 0.1
    assert torch.equal(exact["score"], exact["success_train"])


def test_pass_at_k_and_success_by_hand():
    task = arith(modulus=2, test_fraction=0.25, pass_k=3)            # 4 prompts: 3 train, 1 held out
    assert task.train_contexts.numel() == 3 and task.test_contexts.numel() == 1
    n = task.num_responses
    p = torch.tensor([0.5, 0.25, 1.0, 0.0])                           # pi(y* | c) per context
    probs = torch.zeros(4, n)
    for c in range(4):   # p_c on the correct answer, the rest spread evenly over the others
        probs[c] = (1 - p[c]) / (n - 1)
        probs[c, task.correct_index[c]] = p[c]
    logp = probs.log()[None]
    out = task.evaluate(logp, logp)
    train, test = task.train_contexts, task.test_contexts
    hand_pass = 1 - (1 - p) ** 3                                      # 0.875, 0.578125, 1, 0
    torch.testing.assert_close(out["success_train"], p[train].mean()[None].double())
    torch.testing.assert_close(out["success_test"], p[test].mean()[None].double())
    torch.testing.assert_close(out["pass_k_train"], hand_pass[train].mean()[None].double())
    torch.testing.assert_close(out["pass_k_test"], hand_pass[test].mean()[None].double())
    assert out["kl"].item() == 0.0 and torch.equal(out["ref_success_train"], out["success_train"])
    # p = 1 and p = 0 are extreme, 0.5 and 0.25 are not
    assert out["extreme_train"].item() == pytest.approx(sum(float(p[c] in (0.0, 1.0)) for c in train) / 3)
    assert set(task.COLUMNS) <= set(out) and task.COLUMNS[0] == "score" and "length" in task.COLUMNS


# ------------------------------------------------------------------ split, demonstrations, difficulty
def test_split_is_deterministic_and_disjoint():
    a, b, other = arith(), arith(), arith(task_seed=1)
    assert torch.equal(a.train_contexts, b.train_contexts) and torch.equal(a.test_contexts, b.test_contexts)
    train, test = set(a.train_contexts.tolist()), set(a.test_contexts.tolist())
    assert not train & test and train | test == set(range(100)) and len(test) == 20
    assert set(other.test_contexts.tolist()) != test
    assert a.describe()["test_prompts"] == sorted(test) and json.dumps(a.describe())


def test_demonstrations_and_the_difficulty_knob():
    task = arith(extreme=0.5, demo_accuracy=0.3, demo_overlong=0.5, demos=20_000)
    contexts, tokens, mask = task.demonstrations(0)
    again = task.demonstrations(0)
    assert all(torch.equal(x, y) for x, y in zip((contexts, tokens, mask), again))
    assert not torch.equal(task.demonstrations(1)[1], tokens)
    assert set(contexts.tolist()) <= set(task.train_contexts.tolist())   # held-out prompts never demonstrated
    # the mask covers the digits and the EOS (none after max_len digits)
    n = (tokens != EOS).sum(-1)
    assert torch.equal(mask.sum(-1), torch.clamp(n + 1, max=2).float())
    right = task.correct(contexts, tokens)
    accuracy = task.demo_accuracy[contexts]
    assert (task.demo_accuracy[task.train_contexts] == 0).sum() == 20
    assert (task.demo_accuracy[task.train_contexts] == 1).sum() == 20
    assert bool(right[accuracy == 1].all()) and not bool(right[accuracy == 0].any())
    misconception = task.residue_tokens[task.misconception[contexts]]
    assert bool((tokens == misconception).all(-1)[accuracy == 0].all())   # always the same wrong answer
    ordinary = accuracy == 0.3
    assert abs(right[ordinary].float().mean().item() - 0.3) < 0.02
    overlong = (n == 2) & ordinary & ~right                         # the right digit and one more
    assert abs(overlong.sum().item() / (ordinary & ~right).sum().item() - 0.5) < 0.03
    assert bool((tokens[overlong, 0] == task.answers[contexts[overlong], 0]).all())


# ------------------------------------------------------------------ the policy with multi-token prompts
def test_prompt_model_sampling_log_probs_and_population():
    task = arith(modulus=5)
    spec = task.spec.model
    model = policy(task, 0)
    assert model.pos.shape[1] == spec.prompt_len + spec.max_len - 1 and model.tok.shape[1] == 10 + 1 + 4
    g = torch.Generator().manual_seed(3)
    contexts = torch.randint(25, (1, 64), generator=g)
    y, mask, logp = model.sample(contexts, [g])
    torch.testing.assert_close(logp, model.token_logprobs(contexts, y, mask))
    # the model reads the prompt: another operand changes the next-token distribution
    first = model.log_softmax(torch.tensor([[7, 8]]), torch.zeros(1, 2, 2, dtype=torch.long))[0, :, 0]
    assert not torch.allclose(first[0], first[1])
    # a population member samples what it samples alone, from its own generator
    pair = stack([model, policy(task, 1)])
    both = pair.sample(contexts.expand(2, -1), [torch.Generator().manual_seed(s) for s in (5, 6)])
    alone = model.sample(contexts, [torch.Generator().manual_seed(5)])
    assert torch.equal(both[0][:1], alone[0])
    # without a prompt table the model is the one-context-token model (same shapes)
    plain = ModelSpec(10, 25, 2)
    assert plain.prompt_len == 1 and plain.vocab_in == 10 + 1 + 25
    assert TinyLM(plain, [torch.Generator()]).pos.shape[1] == 2
    with pytest.raises(ValueError):
        ModelSpec(10, 2, 2, prompts=((1, 2), (3,)))


# ------------------------------------------------------------------ reference, resolve, refusals
def test_reference_cache_deterministic_and_bt_seq_keys_unchanged(tmp_path, monkeypatch):
    from drlbench.llm import reference as ref_module

    monkeypatch.setenv("DRLBENCH_DATA", str(tmp_path))
    task = arith(modulus=4, sft_steps=30, demos=256)
    contexts, tokens, _ = ref_module.demonstrations(task, 2)           # the task's own demonstrator
    assert torch.equal(tokens, task.demonstrations(2)[1]) and torch.equal(contexts, task.demonstrations(2)[0])
    first = ref_module.reference(task, 2)
    path = ref_module.cache_path(task, 2)
    assert path.exists() and path.name.startswith("arith-seed2-")
    calls = []
    monkeypatch.setattr(ref_module, "train_reference", lambda *a: calls.append(a))
    again = ref_module.reference(task, 2)
    assert not calls and all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
    monkeypatch.undo()
    retrained = ref_module.train_reference(task, 2)                   # the same seed: the same reference
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), retrained.parameters()))
    other = arith(modulus=4, sft_steps=30, demos=256, extreme=0.5)
    assert ref_module.cache_path(other, 2) != path and ref_module.cache_path(task, 3) != path
    # bt-seq's key is what it was before tasks could bring their own demonstrator
    bt = make("bt-seq", physics={"contexts": 3})
    key = json.dumps({"format": ref_module.FORMAT, "spec": asdict(bt.spec), "seed": 5}, sort_keys=True)
    assert ref_module.cache_path(bt, 5).name == f"bt-seq-seed5-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"


def test_resolve_and_make():
    from drlbench import envs

    assert envs.resolve("llm:arith") == "llm:arith"
    assert envs.resolve("llm:arith?partial_credit=0.5,modulus=5") == "llm:arith?modulus=5,partial_credit=0.5"
    task = envs.backend("llm").make("arith", 1, "cpu", physics={"modulus": 5.0})
    assert isinstance(task, ArithTask) and task.spec.modulus == 5 and task.observation_space.n == 25
    assert task_spec({"ops": 2.0}).contexts == 200


@pytest.mark.parametrize("env, needle", [
    ("llm:arith?modulus=0", "modulus"),
    ("llm:arith?modulus=2.5", "integer"),
    ("llm:arith?modulos=3", "'modulos'"),
    ("llm:arith?partial_credit=1", "partial_credit"),
    ("llm:arith?modulus=100", "enumerate"),
    ("llm:arith?modulus=20,max_len=1", "max_len"),
    ("llm:arith?test_fraction=0.001", "held-out"),
    ("llm:arith?n_heads=3", "n_heads"),
])
def test_bad_task_parameters_are_one_line_exit_2(run_cli, tmp_path, env, needle):
    code, _, err = run_cli("run", "dpo", "--env", env, "--steps", "5", "--out", tmp_path / "out")
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
