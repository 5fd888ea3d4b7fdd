"""The reference policy pi_ref of a run seed: supervised fine-tuning on noisy demonstrations, cached.

Demonstrator of run seed s, context c: at each position EOS with probability `demo_eos`, otherwise a
content token from softmax(demo_alignment * w_c / reward_scale + demo_noise * N(0, 1)) (the noise
drawn once per seed and context). So pi_ref is deliberately imperfect: partly aligned with the
true reward, partly noise (the "suboptimal reference" regime of Tajwar et al. 2024). A task with
its own demonstrator (`task.demonstrations(seed)`, llm:arith's noisy answers) supplies them instead.
SFT: `demos` demonstrations, `sft_steps` Adam steps (lr `sft_lr`) of token-mean NLL on minibatches
of 64, from a model initialised by generator(seed). Everything is drawn from generators seeded by
s, so the same (task, seed) gives the same reference bit for bit on the same machine.

Cache: `<data folder>/llm-reference/<task>-seed<s>-<hash>.pt` (the data folder of `drlbench
dataset list`, $DRLBENCH_DATA), where the hash covers every task parameter (TaskSpec) and the
format version (plus `task.CACHE_KEY`, the version of a task's own demonstrator, where it has one): a
changed task or recipe never reuses a stale reference. Written atomically.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch

from drlbench.llm.policy import EOS, TinyLM
from drlbench.llm.tasks import Task

FORMAT = 1
SFT_BATCH = 64


def cache_folder() -> Path:
    from drlbench.datasets.registry import data_folder

    return data_folder() / "llm-reference"


def cache_path(task: Task, seed: int) -> Path:
    key = {"format": FORMAT, "spec": asdict(task.spec), "seed": seed}
    if getattr(task, "CACHE_KEY", None) is not None:   # tasks with their own demonstrator (llm:arith)
        key["task"] = task.CACHE_KEY
    key = json.dumps(key, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return cache_folder() / f"{task.spec.name}-seed{seed}-{digest}.pt"


def demonstrations(task: Task, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(contexts (n,), tokens (n, L), mask (n, L)) of the noisy demonstrator of run seed `seed`."""
    if hasattr(task, "demonstrations"):   # a task's own demonstrator (llm:arith)
        return task.demonstrations(seed)
    spec, dev = task.spec, task.device
    g = torch.Generator(device=dev).manual_seed(1_000_003 * seed + 17)
    logits = (spec.demo_alignment * task.w[:, 1:] / spec.reward_scale
              + spec.demo_noise * torch.randn(spec.contexts, spec.content_tokens, generator=g, device=dev))
    contexts = torch.randint(spec.contexts, (spec.demos,), generator=g, device=dev)
    probs = torch.softmax(logits[contexts], -1)                                  # (n, K)
    tokens = torch.zeros(spec.demos, spec.max_len, dtype=torch.long, device=dev)
    mask = torch.zeros(spec.demos, spec.max_len, device=dev)
    alive = torch.ones(spec.demos, dtype=torch.bool, device=dev)
    for t in range(spec.max_len):
        stop = torch.rand(spec.demos, generator=g, device=dev) < spec.demo_eos
        content = torch.multinomial(probs, 1, generator=g).squeeze(-1) + 1
        token = torch.where(stop, EOS, content)
        tokens[:, t] = torch.where(alive, token, EOS)
        mask[:, t] = alive.float()
        alive = alive & ~stop
    return contexts, tokens, mask


def train_reference(task: Task, seed: int) -> TinyLM:
    """SFT from scratch (see the module docstring); a one-member model."""
    spec = task.spec
    g = torch.Generator(device=task.device).manual_seed(seed)
    model = TinyLM(spec.model, [g], task.device)
    contexts, tokens, mask = demonstrations(task, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.sft_lr)
    for _ in range(spec.sft_steps):
        index = torch.randint(spec.demos, (SFT_BATCH,), generator=g, device=task.device)
        m = mask[index][None]
        logp = model.token_logprobs(contexts[index][None], tokens[index][None], m)
        loss = -logp.sum() / m.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def reference(task: Task, seed: int) -> TinyLM:
    """The cached reference of `seed` on `task` (trained and cached on first use); no gradients."""
    from drlbench.records import atomic_torch_save

    path = cache_path(task, seed)
    model = TinyLM(task.spec.model, [torch.Generator(device=task.device)], task.device)
    if path.exists():
        try:
            model.load_state_dict(torch.load(path, map_location=task.device, weights_only=True))
        except (RuntimeError, OSError, EOFError, KeyError):
            path.unlink(missing_ok=True)   # a corrupt cache entry is rebuilt
            return reference(task, seed)
    else:
        model = train_reference(task, seed)
        atomic_torch_save(path, model.state_dict())
    for p in model.parameters():
        p.requires_grad_(False)
    return model
