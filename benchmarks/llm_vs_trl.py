"""Speed: DPO gradient steps per second, drlbench's loss path vs TRL 1.16's DPOTrainer, side by side.

Rows (one torch thread, same batches, same AdamW, lr 1e-4, beta 0.1):
  trl        TRL DPOTrainer.train() on a tiny GPT-2 built from a config (n_embd 64, 2 layers, 4 heads,
             a 32-symbol in-memory WordLevel tokenizer, HF_HUB_OFFLINE=1, ref_model a deep copy); the
             time between the end of step `--warmup` and the end of the last step (a TrainerCallback),
             so model building, dataset tokenisation and the first steps are outside the window. It
             includes what a TRL user pays per step: the dataloader, the collator, TRL's fused LM head
             and its metrics.
  drlbench   the same GPT-2 (same initial weights), the same collated batches (taken from the TRL
             trainer's own dataloader before timing): policy and reference forwards, per-token
             log-probs by log_softmax + gather, `drlbench.llm.losses.dpo`, backward, AdamW step.
  tinylm     drlbench's own policy (drlbench/llm/policy.py TinyLM, d_model 64, 2 layers, 4 heads,
             population axis P = 1, and P = 5 reported per member), on pairs of the same batch size and
             response length: what `drlbench run dpo` pays per step for the model and the loss (its
             data, evaluation and recording are not timed). Skipped if the policy module is missing.
Median of `--repeats` alternating repeats of `--steps` timed steps each.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/llm_vs_trl.py --steps 40 --repeats 3

Needs the extra `llm-trl` (trl 1.16.0, transformers 5.23.0). Results: benchmarks/notes/llm_losses.md.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import copy  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from drlbench.llm import losses as L  # noqa: E402

WORDS = [f"w{i}" for i in range(28)]


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, "<bos>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>", bos_token="<bos>")


def gpt2(vocab_size: int, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, n_embd=64, n_layer=2, n_head=4, n_positions=32,
                     bos_token_id=3, eos_token_id=1, pad_token_id=0)
    return GPT2LMHeadModel(cfg)


def pairs(n: int, seed: int, prompt_len=3, min_len=4, max_len=8):
    g = torch.Generator().manual_seed(seed)

    def words(k):
        return " ".join(WORDS[i] for i in torch.randint(len(WORDS), (k,), generator=g).tolist())

    def length():
        return int(torch.randint(min_len, max_len + 1, (1,), generator=g))

    # completions start with a space so that prompt + completion tokenises as the prompt's tokens then the
    # completion's (TRL checks that the prompt is a prefix)
    return [{"prompt": words(prompt_len), "chosen": " " + words(length()), "rejected": " " + words(length())}
            for _ in range(n)]


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


def trl_trainer(data, batch: int, steps: int, seed: int, out: str, clock=None):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer
    tok = tokenizer()
    model = gpt2(len(tok), seed)
    args = DPOConfig(output_dir=out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=1e-4,
                     beta=0.1, loss_type=["sigmoid"], lr_scheduler_type="constant", warmup_steps=0,
                     optim="adamw_torch", weight_decay=0.0, use_cpu=True, bf16=False,
                     gradient_checkpointing=False, report_to=[], logging_steps=10_000, save_strategy="no",
                     dataloader_num_workers=0, seed=seed, disable_tqdm=True, max_length=None)
    from transformers.trainer_callback import PrinterCallback
    trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args, processing_class=tok,
                         train_dataset=Dataset.from_list(data), callbacks=[clock.callback] if clock else None)
    trainer.remove_callback(PrinterCallback)
    return trainer


def time_trl(data, batch, steps, warmup, seed, out):
    clock = StepClock(warmup)
    trainer = trl_trainer(data, batch, warmup + steps, seed, out, clock)
    trainer.train()
    assert clock.last == warmup + steps
    return steps / (clock.t1 - clock.t0)


def hf_logps(model, b):
    """Per-token log-probs of the shifted labels, (2B, T-1), by log_softmax + gather."""
    logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
    return torch.gather(F.log_softmax(logits.float(), -1), -1, b["input_ids"][:, 1:, None]).squeeze(-1)


def drlbench_hf_loss(model, ref, b, beta=0.1):
    """drlbench's DPO loss on one collated TRL batch ([chosen; rejected], completion_mask)."""
    mask = b["completion_mask"][:, 1:].float()
    n = mask.shape[0] // 2
    lp = hf_logps(model, b)
    with torch.no_grad():
        ref_lp = hf_logps(ref, b)
    return L.dpo(L.PairBatch(lp[:n], lp[n:], ref_lp[:n], ref_lp[n:], mask[:n], mask[n:]), beta=beta)[0].mean()


def drlbench_hf_step_fn(batches, seed, lr=1e-4, beta=0.1):
    tok = tokenizer()
    model = gpt2(len(tok), seed)
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)

    def step(i):
        loss = drlbench_hf_loss(model, ref, batches[i % len(batches)], beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def tinylm_step_fn(population, batch, seed, max_len=9, content=28, lr=1e-4, beta=0.1):
    from drlbench.llm.policy import ModelSpec, TinyLM
    spec = ModelSpec(content_tokens=content, contexts=16, max_len=max_len, d_model=64, n_layers=2, n_heads=4)
    gens = [torch.Generator().manual_seed(seed + p) for p in range(population)]
    model = TinyLM(spec, gens)
    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)

    def responses():
        n = torch.randint(4, max_len + 1, (population, batch), generator=g)      # tokens incl. EOS
        mask = (torch.arange(max_len) < n[..., None]).float()
        tokens = torch.randint(1, content + 1, (population, batch, max_len), generator=g)
        tokens = torch.where(torch.arange(max_len) == n[..., None] - 1, 0, tokens) * mask.long()
        return tokens, mask

    data = []
    for _ in range(8):
        ctx = torch.randint(16, (population, batch), generator=g)
        data.append((ctx, *responses(), *responses()))

    def step(i):
        ctx, yw, mw, yl, ml = data[i % len(data)]
        lw, ll = model.token_logprobs(ctx, yw, mw), model.token_logprobs(ctx, yl, ml)
        with torch.no_grad():
            rw, rl = ref.token_logprobs(ctx, yw, mw), ref.token_logprobs(ctx, yl, ml)
        flat = lambda x: x.reshape(population * batch, -1)  # noqa: E731
        pair = L.PairBatch(flat(lw), flat(ll), flat(rw), flat(rl), flat(mw), flat(ml))
        loss = L.dpo(pair, beta=beta)[0].view(population, batch).mean(-1).sum()   # one mean per member
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def time_steps(step, steps, warmup):
    for i in range(warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    return steps / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16, help="pairs per step")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per repeat")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    import datasets
    import transformers
    import trl
    datasets.disable_progress_bars()

    n_pairs = a.batch * (a.warmup + a.steps)
    data = pairs(n_pairs, a.seed)
    with tempfile.TemporaryDirectory() as out:
        # the same collated batches for drlbench: TRL's own dataloader (shuffled once, then reused)
        trainer = trl_trainer(data, a.batch, a.warmup + a.steps, a.seed, out)
        batches = [{k: v for k, v in b.items()} for b in trainer.get_train_dataloader()]
        # end-to-end check on a real model: TRL's loss (fused LM head) vs drlbench's on the first batch
        trainer.model.train()
        with torch.no_grad():       # move the policy off the reference, so the loss is not log 2 trivially
            g = torch.Generator().manual_seed(a.seed + 1)
            for p in trainer.model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        trl_loss = trainer.compute_loss(trainer.model, batches[0])
        ours = drlbench_hf_loss(trainer.model, trainer.ref_model, batches[0])
        g_trl = torch.autograd.grad(trl_loss, list(trainer.model.parameters()))
        g_ours = torch.autograd.grad(ours, list(trainer.model.parameters()))
        d_loss = abs(trl_loss.item() - ours.item())
        d_grad = max((x - y).abs().max().item() for x, y in zip(g_trl, g_ours))
        del trainer
        try:
            import drlbench.llm.policy  # noqa: F401
            has_tinylm = True
        except ImportError:
            has_tinylm = False
        rates = {"trl": [], "drlbench": [], "tinylm P=1": [], "tinylm P=5 (per member)": []}
        for _ in range(a.repeats):
            rates["trl"].append(time_trl(data, a.batch, a.steps, a.warmup, a.seed, out))
            rates["drlbench"].append(time_steps(drlbench_hf_step_fn(batches, a.seed), a.steps, a.warmup))
            if has_tinylm:
                rates["tinylm P=1"].append(time_steps(tinylm_step_fn(1, a.batch, a.seed), a.steps, a.warmup))
                rates["tinylm P=5 (per member)"].append(
                    5 * time_steps(tinylm_step_fn(5, a.batch, a.seed), a.steps, a.warmup))
    shape = tuple(batches[0]["input_ids"].shape)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; "
          f"1 thread; batch {a.batch} pairs, collated input_ids {shape} (first batch), "
          f"{a.steps} timed steps x {a.repeats} repeats")
    print(f"end-to-end on batch 0 (GPT-2 perturbed off its reference, TRL fused head vs log_softmax): "
          f"loss {ours.item():.4f}, |loss diff| {d_loss:.1e}, "
          f"max |grad diff| {d_grad:.1e}")
    base = statistics.median(rates["trl"])
    for name, r in rates.items():
        if r:
            med = statistics.median(r)
            print(f"  {name:26s} {med:7.1f} steps/s  (x{med / base:4.2f} vs TRL; repeats "
                  f"{', '.join(f'{x:.1f}' for x in r)})")


if __name__ == "__main__":
    main()
