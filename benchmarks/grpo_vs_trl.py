"""Speed: GRPO completions (samples) per second, drlbench's group loop vs TRL 1.16's GRPOTrainer, side by side.

One full GRPO training step on each side: sample G completions for each of Q prompts at temperature 1,
score them, the reference's per-token log-probs, the loss, backward, one optimizer step (mu = 1, one
gradient step per sampled batch). Same settings (one torch thread): Q = 16 prompts x G = 8 completions
= 128 completions per step, at most 2 generated tokens (llm:arith's L = 2: a one-digit answer then EOS,
or two digits and no EOS), Adam(W) at a constant 1e-3 with no weight decay and no gradient clipping,
GRPO's loss (token mean per completion, then mean), eps 0.2, scale_rewards "group", beta 0.04 (the
drlbench preset agents/grpo.toml; TRL's own default is 0.0, which skips the reference model: row
`trl beta=0`).

Rows:
  trl              TRL GRPOTrainer.train() on a tiny GPT-2 built from a config (n_embd 64, 2 layers, 4 heads,
                   no dropout, ~0.1M parameters, saved to a temporary folder so that TRL can build the
                   reference from the path), a 16-symbol in-memory WordLevel tokenizer (digits, "+", "=",
                   specials), the 80 training prompts of llm:arith ("3 + 4 =") as an in-memory dataset, and a
                   reward function that returns 1 when the decoded completion is (a + b) mod 10, else 0
                   (llm:arith's reward; checked against `ArithTask.reward` below). HF_HUB_OFFLINE=1. Timed
                   between the end of step `--warmup` and the end of the last step (a TrainerCallback):
                   model loading, dataset preparation and the first steps are outside the window; the
                   dataloader (RepeatSampler), prompt tokenisation, transformers' generate (no vLLM, KV
                   cache), decoding, the reward function, the reference and policy forwards, the loss,
                   backward, AdamW and TRL's metric bookkeeping are inside.
  drlbench P=1     `drlbench run grpo --env llm:arith --seed 0` in this process (the real CLI path, the
                   preset agents/grpo.toml, drlbench's TinyLM of the same size, started from the cached SFT
                   reference); timed between the end of step `--warmup` and the end of the last step by a
                   clock on the loop's per-step metric log (drlbench.loops.group.MetricLog.add, called
                   once at the end of every step). Inside: the sampler (prompt draw, per-member Gumbel-max
                   sampling without a KV cache, task.reward, the reference's log-probs), agent.update
                   (log-probs and entropy under the policy, the loss, backward, per-member grad norms, Adam)
                   and the loop's bookkeeping. Outside: building the task, the reference (cached SFT) and
                   the exact evaluations (only at step 0 and at the end, `--eval-every` = the run's steps).
  drlbench P=5     the same with `--seeds 0-4 --batched` (5 independent policies trained as one population
                   computation): completions/s over all members, and per member (/ 5).
Median of `--repeats` alternating repeats; the 1-minute load average is sampled before and after each
repeat (the machine is shared).

    OMP_NUM_THREADS=1 DRLBENCH_DATA=/work/data nice -n 5 .venv/bin/python benchmarks/grpo_vs_trl.py

Needs the extra `llm-trl` (trl 1.16.0, transformers 5.23.0) and the cached llm:arith references of seeds
0-4 (built on first use otherwise, outside the window). Results: benchmarks/notes/grpo-speed.md.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

PRESET_BETA = 0.04          # agents/grpo.toml
LEARNING_RATE = 1e-3        # agents/grpo.toml
MAX_COMPLETION = 2          # llm:arith's max_len: the answer's tokens, EOS included when it fits
SYMBOLS = [str(d) for d in range(10)] + ["+", "="]


# ------------------------------------------------------------------------ the task, for TRL
def arith_task():
    from drlbench.llm.arith import ArithTask, task_spec
    return ArithTask(task_spec())


def arith_prompts(task) -> list[dict]:
    """llm:arith's training prompts as text, with their answers ((a + b) mod 10)."""
    from drlbench.llm.arith import operands
    _, a, b = operands(task.spec)
    return [{"prompt": f"{a[c]} + {b[c]} =", "answer": str(int(task.answer_values[c]))}
            for c in task.train_contexts.tolist()]


def arith_reward(prompts, completions, answer, **kwargs) -> list[float]:
    """TRL reward function: 1 when the decoded completion is exactly the answer's digits, else 0."""
    return [float(c.replace(" ", "") == a) for c, a in zip(completions, answer)]


def check_reward(task) -> int:
    """`arith_reward` on decoded answers == ArithTask.reward on the same tokens, for every answer of every
    training prompt (partial_credit 0: the 1/0 reward). Returns the number of (prompt, answer) pairs."""
    data = arith_prompts(task)
    n = 0
    for c, row in zip(task.train_contexts.tolist(), data):
        tokens = task.tokens                                                  # (N, L), every answer
        ours = task.reward(torch.full((len(tokens),), c), tokens)
        # a response stops at its first EOS (tokens after it are padding): decode only up to it
        text = [" ".join(str(int(t) - 1) for t in _until_eos(y)) for y in tokens.tolist()]
        theirs = torch.tensor(arith_reward([row["prompt"]] * len(text), text, [row["answer"]] * len(text)))
        assert torch.equal(ours.float(), theirs), (c, row)
        n += len(text)
    return n


def _until_eos(tokens: list[int]) -> list[int]:
    from drlbench.llm.policy import EOS
    return tokens[: tokens.index(EOS)] if EOS in tokens else tokens


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, "<bos>": 3, **{w: i + 4 for i, w in enumerate(SYMBOLS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>", bos_token="<bos>")


def gpt2_dir(out: str, seed: int) -> str:
    """A tiny GPT-2 (and the tokenizer) saved to `out`/model: TRL builds the reference from the path."""
    from transformers import GPT2Config, GPT2LMHeadModel
    tok = tokenizer()
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=4, n_positions=16,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    path = str(Path(out) / "model")
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


class StepClock:
    """TrainerCallback: wall time of the steps after `warmup`."""

    def __init__(self, warmup: int):
        from transformers import TrainerCallback

        clock = self

        class _CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == clock.warmup:
                    clock.t0 = time.perf_counter()
                clock.t1, clock.last = time.perf_counter(), state.global_step

        self.warmup, self.callback = warmup, _CB()


def time_trl(data, model_path, prompts, group, steps, warmup, beta, seed, out):
    """Completions per second of GRPOTrainer.train() between the end of step `warmup` and the last step;
    also the metrics TRL logged over the run (one log, after the last step)."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer
    total = warmup + steps
    args = GRPOConfig(
        output_dir=str(Path(out) / "trl"), per_device_train_batch_size=prompts * group, num_generations=group,
        max_completion_length=MAX_COMPLETION, temperature=1.0, top_p=1.0, top_k=0, max_steps=total,
        learning_rate=LEARNING_RATE, beta=beta, epsilon=0.2, loss_type="grpo", scale_rewards="group",
        num_iterations=1, lr_scheduler_type="constant", warmup_steps=0, optim="adamw_torch", weight_decay=0.0,
        max_grad_norm=0.0, use_cpu=True, bf16=False, gradient_checkpointing=False, report_to=[],
        logging_steps=total, save_strategy="no", dataloader_num_workers=0, seed=seed, disable_tqdm=True,
        log_completions=False)
    clock = StepClock(warmup)
    trainer = GRPOTrainer(model=model_path, reward_funcs=arith_reward, args=args, processing_class=tokenizer(),
                          train_dataset=Dataset.from_list(data), callbacks=[clock.callback])
    trainer.remove_callback(PrinterCallback)
    assert (trainer.ref_model is not None) == (beta > 0)
    trainer.train()
    assert clock.last == total
    logs = next(r for r in trainer.state.log_history if "reward" in r)
    return prompts * group * steps / (clock.t1 - clock.t0), logs


def time_drlbench(seed: int, members: int, steps: int, warmup: int, out: str) -> float:
    """Completions per second (all members) of `drlbench run grpo --env llm:arith`, run in this process,
    between the end of step `warmup` and the end of the last step."""
    from drlbench import cli
    from drlbench.loops import group
    stamps: list[float] = []
    original = group.MetricLog.add

    def add(self, metrics):            # called once at the end of every step (after update and sampling)
        original(self, metrics)
        stamps.append(time.perf_counter())

    total = warmup + steps
    group.MetricLog.add = add
    try:
        with contextlib.redirect_stdout(io.StringIO()):    # the CLI's one summary line per seed
            code = cli.main(["run", "grpo", "--env", "llm:arith", "--steps", str(total), "--eval-every", str(total),
                             *(["--seeds", f"{seed}-{seed + members - 1}", "--batched"] if members > 1
                               else ["--seed", str(seed)]),
                             "--quiet", "--out", out])
    finally:
        group.MetricLog.add = original
    assert code == 0 and len(stamps) == total, (code, len(stamps))
    preset = _preset()
    return members * preset["prompts_per_step"] * preset["group_size"] * steps / (stamps[-1] - stamps[warmup - 1])


def _preset() -> dict:
    import tomllib
    with open(Path(__file__).resolve().parents[1] / "agents" / "grpo.toml", "rb") as f:
        return tomllib.load(f)["hyperparameters"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="timed steps per repeat")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-trl-beta0", action="store_true", help="skip the `trl beta=0` row (TRL's default)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    import datasets
    import transformers
    import trl
    datasets.disable_progress_bars()

    preset = _preset()
    q, g = preset["prompts_per_step"], preset["group_size"]
    assert preset["beta"] == PRESET_BETA and preset["learning_rate"] == LEARNING_RATE
    assert preset["num_iterations"] == 1 and preset["temperature"] == 1.0 and preset["lag"] == 0
    task = arith_task()
    assert task.spec.max_len == MAX_COMPLETION and task.spec.partial_credit == 0.0
    checked = check_reward(task)
    data = arith_prompts(task)
    rows = {"trl": [], "trl beta=0": [], "drlbench P=1": [], "drlbench P=5": []}
    if a.no_trl_beta0:
        del rows["trl beta=0"]
    loads, logs = [], {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        model_path = gpt2_dir(out, a.seed)
        for r in range(a.repeats):
            loads.append(os.getloadavg()[0])
            rate, logs["trl"] = time_trl(data, model_path, q, g, a.steps, a.warmup, PRESET_BETA, a.seed, out)
            rows["trl"].append(rate)
            if "trl beta=0" in rows:
                rate, logs["trl beta=0"] = time_trl(data, model_path, q, g, a.steps, a.warmup, 0.0, a.seed, out)
                rows["trl beta=0"].append(rate)
            rows["drlbench P=1"].append(time_drlbench(a.seed, 1, a.steps, a.warmup, f"{out}/d1-{r}"))
            rows["drlbench P=5"].append(time_drlbench(a.seed, 5, a.steps, a.warmup, f"{out}/d5-{r}"))
        loads.append(os.getloadavg()[0])
    wall = time.perf_counter() - start

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; "
          f"1 thread; llm:arith, {q} prompts x {g} completions = {q * g} per step (per member), at most "
          f"{MAX_COMPLETION} tokens, temperature 1, mu 1, lr {LEARNING_RATE:g}, beta {PRESET_BETA:g} (TRL row "
          f"'trl beta=0': TRL's default); {a.steps} timed steps after {a.warmup} warm-up steps x {a.repeats} "
          f"alternating repeats; {wall:.0f} s in all")
    print(f"reward check: arith_reward (TRL, decoded text) == ArithTask.reward on {checked} (prompt, answer) pairs")
    print(f"1-minute load average (2 cores, shared), sampled between repeats: "
          f"{', '.join(f'{x:.2f}' for x in loads)}")
    for name, log in logs.items():
        print(f"  {name} logged over its last run: reward {log['reward']:.3f}, completion length mean "
              f"{log['completions/mean_length']:.2f} max {log['completions/max_length']:.0f}"
              + (f", kl {log['kl']:.4f}" if "kl" in log else ""))
    base = statistics.median(rows["trl"])
    print(f"  {'row':14s} {'completions/s':>14s} {'per member':>11s} {'vs trl':>7s}  repeats")
    for name, r in rows.items():
        med = statistics.median(r)
        per = med / 5 if name.endswith("P=5") else med
        print(f"  {name:14s} {med:14.0f} {per:11.0f} {med / base:6.2f}x  {', '.join(f'{x:.0f}' for x in r)}")


if __name__ == "__main__":
    main()
