"""Shared machinery of the stream-x agents (Elsayed, Vasan, Mahmood 2024, "Streaming Deep
Reinforcement Learning Finally Works", arXiv 2410.14606; official code mohmdelsayed/streaming-drl).
Facts: specs/algorithms.md §5. Everything carries the leading population axis P.

- `ObGD`: overshooting-bounded gradient descent with eligibility traces (optim.py), one step size
  per member: z <- gamma lambda z + grad(prediction); M = alpha kappa max(|delta|, 1) ||z||_1;
  theta <- theta + alpha / max(M, 1) * delta * z; z <- 0 where `reset`. `AdaptiveObGD`: the code's
  RMS-scaled variant (optimizer = "adaptive_obgd").
- `sparse_init_`: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights, ceil(sparsity fan_in) incoming weights of
  every unit zeroed, zero biases (sparse_init.py).
- `StreamMLP`: Linear -> parameter-free LayerNorm -> LeakyReLU per hidden layer, linear output.
- `RunningMeanVar`, `RewardScaler`: Welford statistics per member (normalization_wrappers.py);
  the statistics take in the current sample before it is normalised.
- `TimeFeature`: the AddTimeInfo wrapper (time_wrapper.py) as a `VecEnv` wrapper.
- `StreamAgent`: the part of the streaming-loop contract (`drlbench.loops.streaming`) that all
  stream-x agents share: observation normalisation, reward scaling, the time feature.
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drlbench.agents.base import Agent
from drlbench.envs.base import Step, VecEnv
from drlbench.errors import UsageError
from drlbench.population import Population

NORM_EPS = 1e-8          # normalization_wrappers.py: x / sqrt(var + 1e-8)
LEAKY_SLOPE = 0.01       # torch.nn.LeakyReLU's default, used by the official networks


# --- optimiser ----------------------------------------------------------------------------
def _per_member(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(P,) -> (P, 1, ..., 1) broadcastable against `like`."""
    return x.view(-1, *([1] * (like.dim() - 1)))


class ObGD:
    """Overshooting-bounded gradient descent (ObGD, optim.py), batched over the population.

    Every parameter has a leading population axis P. Before `step`, each parameter's .grad holds the
    gradient of the member's *prediction* (V(s), Q(s, a), or the policy objective), not of a loss.
    `step(delta, reset)` takes the TD error and the trace-reset flags of every member, shape (P,),
    and returns the step size each member took. (A plain class, not a torch.optim.Optimizer: its
    step takes the TD error, and torch's optimizer wrapper costs more than this update.)
    """

    def __init__(self, params, lr: float, gamma: float, lamda: float, kappa: float):
        self.params = list(params)
        self.lr, self.decay, self.kappa = lr, gamma * lamda, kappa
        self.traces = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, delta: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
        traces = self.traces
        torch._foreach_mul_(traces, self.decay)
        torch._foreach_add_(traces, [p.grad for p in self.params])
        directions = self.directions(delta)
        l1 = sum(z.abs().flatten(1).sum(1) for z in directions)               # (P,): ||z||_1 per member
        bound = (self.lr * self.kappa) * delta.abs().clamp(min=1.0) * l1       # M
        step_size = self.lr / bound.clamp(min=1.0)                             # alpha / M if M > 1 else alpha
        scale = step_size * delta
        for p, z in zip(self.params, directions):
            p.add_(z * _per_member(scale, z))
        if bool(reset.any()):
            keep = (~reset).to(traces[0].dtype)
            for z in traces:
                z.mul_(_per_member(keep, z))
        return step_size

    def directions(self, delta: torch.Tensor) -> list[torch.Tensor]:
        """What the step moves along (and bounds the norm of): the traces themselves."""
        return self.traces

    def zero_traces(self) -> None:
        for z in self.traces:
            z.zero_()

    def state_dict(self) -> dict[str, Any]:
        return {"traces": [z.clone() for z in self.traces]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for z, saved in zip(self.traces, state["traces"]):
            z.copy_(saved)


class AdaptiveObGD(ObGD):
    """AdaptiveObGD (optim.py; the paper's Algorithm 11 plus the code's bias correction): ObGD on traces
    scaled by a running RMS of delta z, per parameter entry,
        v <- beta2 v + (1 - beta2) (delta z)^2,   v_hat = v / (1 - beta2^t),   z~ = z / sqrt(v_hat + eps),
        M = alpha kappa max(|delta|, 1) ||z~||_1,  theta <- theta + alpha_eff delta z~,
    t the number of steps taken, beta2 = 0.999, eps = 1e-8 (the code's defaults); v is not reset with
    the traces."""

    BETA2, EPS = 0.999, 1e-8

    def __init__(self, params, lr: float, gamma: float, lamda: float, kappa: float):
        super().__init__(params, lr, gamma, lamda, kappa)
        self.second_moments = [torch.zeros_like(p) for p in self.params]
        self.count = 0

    def directions(self, delta: torch.Tensor) -> list[torch.Tensor]:
        """The traces divided by sqrt(v_hat + eps), after v takes in this step's (delta z)^2."""
        self.count += 1
        correction = 1.0 - self.BETA2 ** self.count
        scaled = []
        for z, v in zip(self.traces, self.second_moments):
            dz = z * _per_member(delta, z)
            v.mul_(self.BETA2).addcmul_(dz, dz, value=1.0 - self.BETA2)
            scaled.append(z / (v / correction + self.EPS).sqrt())
        return scaled

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "second_moments": [v.clone() for v in self.second_moments],
                "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for v, saved in zip(self.second_moments, state["second_moments"]):
            v.copy_(saved)
        self.count = int(state["count"])


OPTIMIZERS = {"obgd": ObGD, "adaptive_obgd": AdaptiveObGD}


def make_optimizer(name: str, params, lr: float, gamma: float, lamda: float, kappa: float) -> ObGD:
    """The stream-x optimiser `name` ("obgd", or "adaptive_obgd" of the code's optim.py)."""
    return OPTIMIZERS[name](params, lr, gamma, lamda, kappa)


# --- networks -----------------------------------------------------------------------------
@torch.no_grad()
def sparse_init_(weight: torch.Tensor, bias: torch.Tensor, population: Population, sparsity: float) -> None:
    """Sparse initialisation (sparse_init.py, uniform variant) of one layer, weight (P, in, out), bias
    (P, 1, out), member p from its generator: weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)), then for every
    output unit ceil(sparsity * fan_in) of its incoming weights (a uniformly random subset) set to 0; biases 0."""
    members, fan_in, fan_out = weight.shape
    zeros = math.ceil(sparsity * fan_in)
    bound = 1.0 / math.sqrt(fan_in)
    for member in range(members):
        generator = population.generators[member]
        w = torch.empty(fan_out, fan_in, device=weight.device).uniform_(-bound, bound, generator=generator)
        order = torch.rand(fan_out, fan_in, generator=generator, device=w.device).argsort(dim=1)
        w.scatter_(1, order[:, :zeros], 0.0)
        weight[member].copy_(w.T)
    bias.zero_()


def layer_norm(x: torch.Tensor) -> torch.Tensor:
    """LayerNorm without learned gain or bias, over each sample's features (eps 1e-5, torch's default)."""
    return F.layer_norm(x, x.shape[-1:])


class StreamMLP(nn.Module):
    """Population MLP of the stream-x papers: each hidden layer is Linear -> LayerNorm (parameter-free)
    -> LeakyReLU; the output layer is linear; sparse initialisation. x (P, B, in) -> (P, B, out).

    All parameters of a member live in one row of `flat` (P, n_params), so ObGD's per-member trace norm
    and update are single operations. `forward` is ordinary autograd; the training step uses `trace`
    and `backward`, the same pass and its chain rule written out (Linear, LayerNorm, LeakyReLU), equal
    to autograd's gradients to float rounding (tests/test_stream.py).
    """

    LN_EPS = 1e-5

    def __init__(self, population: Population, sizes: list[int] | tuple[int, ...], sparsity: float):
        super().__init__()
        self.sizes = tuple(sizes)
        self.shapes = [(i, o) for i, o in zip(sizes[:-1], sizes[1:])]
        total = sum(i * o + o for i, o in self.shapes)
        self.flat = nn.Parameter(torch.zeros(population.size, total, device=population.device))
        with torch.no_grad():
            for weight, bias in self.layers(self.flat):
                sparse_init_(weight, bias, population, sparsity)

    def layers(self, flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight (P, in, out), bias (P, 1, out)) views of a (P, n_params) tensor (parameters or gradients)."""
        views, offset = [], 0
        for i, o in self.shapes:
            weight = flat[:, offset:offset + i * o].view(-1, i, o)
            bias = flat[:, offset + i * o:offset + i * o + o].view(-1, 1, o)
            views.append((weight, bias))
            offset += i * o + o
        return views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *hidden, (weight, bias) = self.layers(self.flat)
        for w, b in hidden:
            x = F.leaky_relu(layer_norm(torch.baddbmm(b, x, w)), LEAKY_SLOPE)
        return torch.baddbmm(bias, x, weight)

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """forward(x) without autograd; also returns what `backward` needs (layer inputs, normalised
        pre-activations and their 1/std, per hidden layer)."""
        *hidden, (weight, bias) = self.layers(self.flat)
        cache = [x]
        for w, b in hidden:
            h = torch.baddbmm(b, x, w)
            var, mean = torch.var_mean(h, -1, correction=0, keepdim=True)
            inv_std = (var + self.LN_EPS).rsqrt()
            n = (h - mean) * inv_std
            x = F.leaky_relu(n, LEAKY_SLOPE)
            cache += [n, inv_std, x]
        return torch.baddbmm(bias, x, weight), cache

    @torch.no_grad()
    def backward(self, cache: list[torch.Tensor], grad_out: torch.Tensor, row: int = 0) -> None:
        """Set flat.grad to d(sum_p grad_out[p] . output[p, row])/d theta, for a trace whose sample `row`
        (of each member) produced the output; grad_out (P, 1, out)."""
        grad = torch.empty_like(self.flat)
        views = self.layers(grad)
        params = self.layers(self.flat)
        g = grad_out
        for layer in range(len(self.shapes) - 1, -1, -1):
            x_in = cache[3 * layer][:, row:row + 1]                            # input of this layer
            dw, db = views[layer]
            torch.mul(x_in.transpose(1, 2), g, out=dw)                          # outer product (P, in, out)
            db.copy_(g)
            if layer == 0:
                break
            dx = torch.bmm(g, params[layer][0].transpose(1, 2))                 # (P, 1, in)
            n, inv_std = cache[3 * layer - 2][:, row:row + 1], cache[3 * layer - 1][:, row:row + 1]
            dn = torch.where(n > 0, dx, dx * LEAKY_SLOPE)
            # LayerNorm backward: dh = (dn - mean(dn) - n mean(dn n)) / std
            g = (dn - dn.mean(-1, keepdim=True) - n * (dn * n).mean(-1, keepdim=True)) * inv_std
        self.flat.grad = grad


# --- observation and reward statistics ----------------------------------------------------
class RunningMeanVar(nn.Module):
    """Per-member running mean and sample variance, Welford's update one sample at a time
    (normalization_wrappers.py SampleMeanStd): n += 1, mean += (x - mean) / n, p += (x - mean_old)(x - mean_new);
    var = p / (n - 1), and 1 while n < 2.
    """

    def __init__(self, members: int, dim: int, device: torch.device):
        super().__init__()
        self.register_buffer("count", torch.zeros(members, 1, device=device))
        self.register_buffer("mean", torch.zeros(members, dim, device=device))
        self.register_buffer("p", torch.zeros(members, dim, device=device))   # sum of squared deviations

    @torch.no_grad()
    def update(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """x (P, 1, dim): one sample per member; mask (P, 1) bool: the members whose sample counts (default all)."""
        if x.shape[1] != 1:
            raise ValueError(f"running statistics take one sample per member at a time, got {x.shape[1]}")
        x = x[:, 0]
        take = torch.ones_like(self.count) if mask is None else mask.to(x.dtype)
        self.count.add_(take)
        delta = (x - self.mean) * take
        self.mean.add_(delta / self.count.clamp(min=1.0))
        self.p.add_(delta * (x - self.mean))

    @property
    def var(self) -> torch.Tensor:
        """(P, dim): p / (n - 1), or 1 for members with fewer than two samples."""
        n = self.count
        return torch.where(n < 2, torch.ones_like(self.p), self.p / (n - 1).clamp(min=1.0))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / sqrt(var + 1e-8), x (P, B, dim)."""
        return (x - self.mean.unsqueeze(1)) * (self.var + NORM_EPS).rsqrt().unsqueeze(1)


class RewardScaler(nn.Module):
    """ScaleReward (normalization_wrappers.py): u <- gamma (1 - done) u + r with the CURRENT step's
    done flag, running variance of u updated with u, reward / sqrt(var_u + 1e-8) (no centring, no clip)."""

    def __init__(self, members: int, gamma: float, device: torch.device):
        super().__init__()
        self.gamma = gamma
        self.stats = RunningMeanVar(members, 1, device)
        self.register_buffer("trace", torch.zeros(members, 1, device=device))

    @torch.no_grad()
    def forward(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """reward, done: (P, 1) -> scaled reward (P, 1)."""
        self.trace.mul_(self.gamma * (~done).to(reward.dtype)).add_(reward)
        self.stats.update(self.trace.unsqueeze(-1))
        return reward / self.scale()

    def scale(self) -> torch.Tensor:
        """(P, 1): the current divisor sqrt(var_u + 1e-8)."""
        return (self.stats.var + NORM_EPS).sqrt()


# --- time feature -------------------------------------------------------------------------
def episode_limit(env: VecEnv) -> int:
    """The environment's time limit (steps), as AddTimeInfo reads it: max_episode_steps, 1000 for dm_control."""
    if getattr(env, "max_episode_steps", None):
        return int(env.max_episode_steps)
    if env.env_id.startswith("dmc:"):
        return 1000
    vec = getattr(env, "vec", None)
    if vec is not None:
        spec = vec.envs[0].spec
        if spec is not None and spec.max_episode_steps:
            return int(spec.max_episode_steps)
        max_steps = getattr(vec.envs[0].unwrapped, "max_steps", None)   # MiniGrid
        if max_steps:
            return int(max_steps)
    raise UsageError(f"{env.env_id} has no time limit to scale the time feature by; use --set time_feature=false")


class TimeFeature(VecEnv):
    """Appends AddTimeInfo's feature (time_wrapper.py) to every observation: -0.5 on reset, and after the
    k-th step of an episode -0.5 + (k - 1) / limit (the official wrapper appends the counter before
    incrementing it, so the first two observations of an episode both read -0.5)."""

    def __init__(self, env: VecEnv, limit: int | None = None):
        self.env = env
        self.env_id, self.num_envs, self.device = env.env_id, env.num_envs, env.device
        self.limit = limit or episode_limit(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise UsageError(f"the time feature needs a flat Box observation space, not {space}")
        self.observation_space = gym.spaces.Box(-math.inf, math.inf, (space.shape[0] + 1,), np.float32)
        self.action_space = env.action_space
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)

    def _with_time(self, obs: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        time = -0.5 + (elapsed - 1).clamp(min=0).to(obs.dtype) / self.limit
        return torch.cat([obs, time.unsqueeze(-1)], -1)

    def reset(self, seed: int | list[int]) -> torch.Tensor:
        self.elapsed.zero_()
        return self._with_time(self.env.reset(seed), self.elapsed)

    def step(self, action: torch.Tensor) -> Step:
        step = self.env.step(action)
        self.elapsed += 1
        final_obs = self._with_time(step.final_obs, self.elapsed)
        self.elapsed.masked_fill_(step.terminated | step.truncated, 0)
        return Step(obs=self._with_time(step.obs, self.elapsed), reward=step.reward, terminated=step.terminated,
                    truncated=step.truncated, final_obs=final_obs)

    def state_dict(self) -> dict[str, Any]:
        return {"env": self.env.state_dict(), "elapsed": self.elapsed.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        self.elapsed = state["elapsed"].to(self.device).clone()

    def close(self) -> None:
        self.env.close()


# --- the shared agent part ----------------------------------------------------------------
class StreamAgent(Agent):
    """Base of the stream-x agents: what `drlbench.loops.streaming` calls, less `sample` and `learn`.

    Config fields it reads: gamma, normalize_observations, scale_rewards, time_feature. With the time
    feature, the last observation column is the time (appended by `TimeFeature`, never normalised).
    """

    loop = "streaming"

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: Any, population: Population):
        super().__init__(observation_space, action_space, config, population)
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise UsageError(f"{self.name} needs a flat Box observation space, not {observation_space}")
        if not isinstance(action_space, (gym.spaces.Box, gym.spaces.Discrete)):
            raise UsageError(f"{self.name} needs a Box or Discrete action space, not {action_space}")
        self.obs_dim = observation_space.shape[0]
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.act_dim = int(action_space.n) if self.discrete else action_space.shape[0]
        device, members = population.device, population.size
        self.state_columns = self.obs_dim - (1 if config.time_feature else 0)
        self.obs_stats = RunningMeanVar(members, self.state_columns, device)
        self.reward_scaler = RewardScaler(members, config.gamma, device)

    @classmethod
    def wrap_env(cls, env: VecEnv, config: Any) -> VecEnv:
        return TimeFeature(env) if config.time_feature else env

    # --- observations and rewards -------------------------------------------------------
    def features(self, obs: torch.Tensor, update: bool, mask: torch.Tensor | None = None) -> torch.Tensor:
        """obs (P, N, obs_dim) -> network input: state columns normalised (after updating the statistics
        with the samples `mask` selects, if `update`), time column (if any) as it is."""
        if not self.config.normalize_observations:
            return obs
        state = obs[..., :self.state_columns]
        if update:
            self.obs_stats.update(state, mask)
        return torch.cat([self.obs_stats.normalize(state), obs[..., self.state_columns:]], -1)

    def observe(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Training: take in new observations (P, N, obs_dim); returns their network inputs."""
        return self.features(obs, update=True, mask=mask)

    def scale_reward(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Training: (P, N) rewards as the agent learns from them."""
        return self.reward_scaler(reward, done) if self.config.scale_rewards else reward

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Evaluation: raw observations, statistics frozen."""
        return self.policy(self.features(obs, update=False), deterministic)

    # --- what each agent defines --------------------------------------------------------
    def policy(self, features: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Actions (P, N, ...) for network inputs; deterministic = the evaluation policy."""
        raise NotImplementedError

    def sample(self, features: torch.Tensor, step: int, total_steps: int) -> torch.Tensor:
        """The behaviour action for training step `step` (0-based) of `total_steps`."""
        return self.policy(features, deterministic=False)

    def learn(self, features: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_features: torch.Tensor,
              terminal: torch.Tensor, reset: torch.Tensor) -> dict[str, torch.Tensor]:
        """One streaming update per member from one transition, all (P, 1, ...): `terminal` (float 0/1) cuts
        the bootstrap, `reset` (bool) ends the eligibility traces after the update. Metrics (P,)."""
        raise NotImplementedError
