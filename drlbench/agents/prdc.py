"""PRDC: Ran, Li, Zhang, Zhang, Yu, "Policy Regularization with Dataset Constraint for Offline
Reinforcement Learning" (ICML 2023, arXiv 2306.06569), as in the authors' code (LAMDA-RL/PRDC@9f38464,
prdc.py, main.py, utils/config.py). Summary: specs/algorithms.md §7.

TD3+BC with the behaviour-cloning term replaced by the dataset constraint. Once, over the whole
dataset D = {(s_i, a_i)} (normalised states, actions in [-1, 1]), the points x_i = [beta s_i, a_i].
Per population member, one `update` does:
- critic: TD3 (target policy smoothing, clipped double Q, MSE on both twins; `PRDC` subclasses `TD3BC`,
  which subclasses drlbench's TD3, and replaces only the behaviour target),
  on rewards r <- reward_scale r + reward_shift (the code's --scale/--shift, used for AntMaze);
- every `policy_delay` updates, the actor:
    pi = mu(s),  lambda = alpha / mean|Q1(s, pi)|  (detached),
    (s^, a^) = argmin_{(s_i, a_i) in D} ||[beta s, pi] - [beta s_i, a_i]||_2   (pi detached; k = 1),
    L_DC = mean over batch and action dims of (pi - a^)^2,
    L_actor = -lambda mean Q1(s, pi) + L_DC,
  then Polyak updates (tau) of the critic and actor targets.
Only the action half of the neighbour enters the loss; the search is in the joint (beta s, a) space.

Nearest neighbours (`NearestNeighbour`): exact Euclidean 1-NN over the fixed points, shared by all
members (one dataset), queried per member. On CPU a scipy cKDTree built once (the code's
scipy KDTree, same algorithm); elsewhere a chunked batched torch search (distances by matrix
product, the best candidates re-ranked exactly) that gives the same answers. Neither is
checkpointed: `attach_dataset` rebuilds it, also on resume.

Differences from the code: `act` is the deterministic policy whether or not `deterministic` is set
(the offline loop only evaluates); the tree is queried with torch's thread count as scipy workers
(the code uses all cores, workers=-1); the code's `k` option (which returns the k-th nearest
neighbour only, k=[k]) is fixed at the value every README command uses, k = 1; actions live in
[-1, 1] (the code searches in the environment's units: the same for D4RL, whose bounds are +-1).
Gradients are TD3+BC's hand-written ones (`PopMLP.backward`), equal to autograd's to float rounding.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from drlbench.agents.base import Batch
from drlbench.agents.td3_bc import TD3BC
from drlbench.domains import hp


class NearestNeighbour:
    """Exact Euclidean 1-nearest-neighbour search over fixed points (N, d).

    backend "kdtree": scipy cKDTree over float64 copies of the points (CPU), queried with torch's
    thread count as workers; "torch": chunks of
    ||x||^2 - 2 q.x (one matrix product per chunk, points centred first to keep float32 error
    small), the `candidates` smallest per query kept, then re-ranked by exact float64 distances.
    "auto": kdtree for CPU points, torch otherwise. `__call__(queries (Q, d))` -> indices (Q,).
    """

    def __init__(self, points: torch.Tensor, backend: str = "auto", candidates: int = 8,
                 max_chunk_elements: int = 2**25):
        if backend == "auto":
            backend = "kdtree" if points.device.type == "cpu" else "torch"
        if backend not in ("kdtree", "torch"):
            raise ValueError(f"backend={backend!r}; choose from: auto, kdtree, torch")
        self.backend, self.points = backend, points.detach()
        if backend == "kdtree":
            from scipy.spatial import cKDTree
            # Unbalanced, non-compact: faster to build and to query on D4RL-like data, same exact answers.
            self.tree = cKDTree(self.points.cpu().double().numpy(), balanced_tree=False, compact_nodes=False)
        else:
            self.center = self.points.mean(0)
            self.centered = self.points - self.center
            self.sq_norms = self.centered.pow(2).sum(-1)
            self.candidates, self.max_chunk_elements = candidates, max_chunk_elements

    def __call__(self, queries: torch.Tensor) -> torch.Tensor:
        queries = queries.detach()
        if self.backend == "kdtree":
            _, index = self.tree.query(queries.cpu().double().numpy(), k=1, workers=torch.get_num_threads())
            return torch.as_tensor(index, dtype=torch.long, device=queries.device)
        return self._torch_query(queries.to(self.points.device, self.points.dtype))

    def _torch_query(self, queries: torch.Tensor) -> torch.Tensor:
        q = queries - self.center
        n, count = self.points.shape[0], queries.shape[0]
        chunk = max(1, self.max_chunk_elements // max(count, 1))
        best_d = q.new_empty(count, 0)
        best_i = torch.empty(count, 0, dtype=torch.long, device=q.device)
        for start in range(0, n, chunk):
            x = self.centered[start:start + chunk]
            approx = torch.addmm(self.sq_norms[start:start + chunk].unsqueeze(0), q, x.T, alpha=-2.0)  # + ||q||^2
            d, i = approx.topk(min(self.candidates, x.shape[0]), dim=1, largest=False)
            best_d, best_i = torch.cat([best_d, d], 1), torch.cat([best_i, i + start], 1)
            if best_d.shape[1] > self.candidates:
                best_d, keep = best_d.topk(self.candidates, dim=1, largest=False)
                best_i = best_i.gather(1, keep)
        exact = (self.points[best_i].double() - queries.double().unsqueeze(1)).pow(2).sum(-1)
        return best_i.gather(1, exact.argmin(1, keepdim=True)).squeeze(1)


@dataclass(frozen=True)
class PRDCConfig:
    gamma: float = hp("(0, 1]")
    tau: float = hp("(0, 1]")
    actor_lr: float = hp("(0, inf)")
    critic_lr: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    policy_noise: float = hp("[0, inf)")
    noise_clip: float = hp("[0, inf)")
    policy_delay: int = hp("[1, inf)")
    alpha: float = hp("[0, inf)")             # Q-term weight: lambda = alpha / mean|Q|
    beta: float = hp("[0, inf)")              # state scale in the neighbour search [beta s, a]
    reward_scale: float = hp("(-inf, inf)")   # r <- reward_scale r + reward_shift (the code's --scale)
    reward_shift: float = hp("(-inf, inf)")   # (the code's --shift)


class PRDC(TD3BC):
    name = "prdc"
    summary = "PRDC (Ran et al. 2023): TD3+BC with a nearest-neighbour dataset constraint in (beta s, a) space"
    Config = PRDCConfig
    BC_METRIC = "dc_loss"
    ACTOR_METRICS = ("actor_loss", BC_METRIC, "q_pi", "lambda")

    def __init__(self, observation_space, action_space, config: PRDCConfig, population):
        super().__init__(observation_space, action_space, config, population)
        self.neighbours: NearestNeighbour | None = None   # built by attach_dataset, never checkpointed
        self.dataset_actions: torch.Tensor | None = None

    def attach_dataset(self, observations: torch.Tensor, actions: torch.Tensor, total_updates: int) -> None:
        self.dataset_actions = actions.detach()
        points = torch.cat([self.config.beta * observations.detach(), self.dataset_actions], -1)
        self.neighbours = NearestNeighbour(points)

    def dataset_constraint_target(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """a^ (P, B, act_dim): the action of the dataset point nearest to [beta s, action], per member."""
        if self.neighbours is None:
            raise RuntimeError("prdc: attach_dataset must be called before update (the offline loop does)")
        p, b, _ = obs.shape
        query = torch.cat([self.config.beta * obs, action], -1).reshape(p * b, -1)
        return self.dataset_actions[self.neighbours(query)].view(p, b, self.act_dim).to(action.device)

    def bc_target(self, batch: Batch, pi: torch.Tensor) -> torch.Tensor:
        return self.dataset_constraint_target(batch.obs, pi)

    @torch.no_grad()
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.config
        if cfg.reward_scale != 1.0 or cfg.reward_shift != 0.0:
            batch = dataclasses.replace(batch, reward=cfg.reward_scale * batch.reward + cfg.reward_shift)
        return super().update(batch)
