"""The LLM track: preference optimisation and RLVR on tasks with exact ground truth (specs/llm_track.md).

    drlbench run dpo --env llm:bt-seq --seeds 0-4 --batched        # any pairwise method, any preference task
    drlbench run cdpo --env "llm:bt-seq?label_noise=0.2" --seeds 0-4 --batched
    drlbench run grpo --env llm:arith --seeds 0-4 --batched        # any group method on the verifiable task
    drlbench compare dpo simpo ld_dpo ln_dpo --env llm:len-bias     # AdaStop, as for control agents
    drlbench stats runs/ ; drlbench report runs/ --out report/      # + an LLM section (frontiers, exact tables)

Methods (agents, one small file each in drlbench/agents, presets in agents/<name>.toml citing the
paper's beta, learning rate and batch): dpo, cdpo, robust_dpo, ipo (eq. 17, sequence log-ratios),
ipo_tok (TRL's token-averaged IPO), slic, rso (hinge-norm loss on reference samples), f_dpo, simpo,
ln_dpo, ld_dpo, tdpo, tgdpo (with the true token reward as its token-reward model), tpo, tpo_l, orpo,
rpo, online_dpo. Every method's loss is `losses.LOSSES[name]`; the agent (agents/_preference.py)
only computes log-probs and takes an Adam step. Online and game-theoretic methods (xpo, sppo, nash_md,
inpo, dno, apo; `losses.ONLINE_LOSSES`) draw pairs or groups from the current policy, the iterate
pi_t or a logit mixture with pi_ref, and are scored by the exact exploitability and duality gap on
bt-seq-intransitive. Group / policy-gradient methods (reinforce, remax, rloo, reinforce_pp,
reinforce_pp_baseline, grpo, dr_grpo, dapo, gspo, sapo, cispo, bnpo, topr, disco, rec, opmd, asymre,
copg; `group_losses.GROUP_LOSSES`, agents/_group.py) train in drlbench/loops/group.py on sampled
groups with a scalar reward, usually `llm:arith`.

Tasks (`tasks.py`, the `llm:` environment prefix): bt-seq (Bradley-Terry preferences from a dense
token reward), bt-seq-intransitive (plus a rock-paper-scissors term, for Nash methods), len-bias
(a length-independent true reward; 70% of the labels say "the longer answer wins"). Task
parameters go in the ID: `llm:len-bias?q=0.9,label_noise=0.1` (`tasks.PARAMETERS`). 8 prompts, 4
content tokens, answers of at most 5 tokens: 1365 answers per prompt, so every evaluation is an
exact sum: true reward, KL(pi || pi_ref), regret to pi* ∝ pi_ref exp(r/beta) (beta = 0.1), win rate
against the reference, mean length. The statistics use score = 1 - regret(pi)/regret(pi_ref):
the reference 0, the optimum 1 (written as `return_mean` in evaluations.csv; the other quantities
in llm_evaluations.csv beside it; steps are gradient steps). Task B (`arith.py`, `llm:arith`):
"a op b =" prompts of several tokens, answers of at most 2 digits (111 per prompt), a verifiable 1/0
(or partial-credit) reward, 20% of the prompts held out; score = exact pass@1 on the training prompts.

Modules, one concern each:
- `policy`: the tiny causal transformer (about 0.1M parameters) with a population axis (one member
  per seed: `--batched` trains all seeds as one computation, each from its own generator);
  sampling with explicit torch.Generators, per-token log-probs under a mask, token KL (TDPO).
- `tasks`: ground truth, labels, enumeration and the exact evaluation.
- `reference`: pi_ref per seed, SFT on noisy demonstrations, cached in the data folder
  (`$DRLBENCH_DATA/llm-reference/`), keyed by task parameters and seed.
- `data`: offline pairs from pi_ref, online pairs from the current policy (online DPO).
- `losses`: every pairwise method's loss as a pure function of per-token log-probs and masks (`PairBatch`).
- `group_losses`: every group method's loss over (P, Q, G, L) sampled groups (`GroupBatch`).
- `evaluation`: the exact evaluator shared by the loops (columns from the task).
The loops are drlbench/loops/preference.py and group.py; the report section drlbench/report_llm.py.
"""
