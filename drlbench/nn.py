"""Network pieces every agent shares, all with a leading population axis.

A `PopLinear` holds one weight matrix per member: weight (M, in, out), bias (M, 1, out), and
computes y[m] = x[m] @ W[m] + b[m] with one batched matmul. M = P * copies: `copies` > 1 packs
an ensemble per member (e.g. SAC's twin critics) into the same matmul.

`PopMLP.forward` is an ordinary autograd module. For the training step, `PopMLP.trace` and
`PopMLP.backward` do the same forward pass and its backward by hand (the chain rule of `baddbmm`
and ReLU; equal to autograd's gradients to float rounding), without the autograd graph: on one CPU
thread its bookkeeping costs about 0.6 ms of a 12 ms SAC update, and by hand a pass skips what the
loss does not need (a critic update's input gradient, the critics' weight gradients in the actor
loss, the rows of the twin critic a min did not pick).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from drlbench.population import Population

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


# MKL's batched GEMM is 2-3x slower for a product with few output columns whose left operand is a
# transposed view (a weight gradient x^T dL/dy with a Q-value or actor head's 1-12 columns) than for
# the same product transposed, (B^T A^T)^T, which reads both operands in memory order.
THIN = 16


def batched_matmul(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None,
                   relu: bool = False) -> torch.Tensor:
    """bias + a @ b for (M, n, k) @ (M, k, m), then ReLU if `relu`; the result may be a transposed view.

    The bias is added in place after the product: `baddbmm` would first copy the broadcast bias into
    the whole output, which costs more than the addition (about 0.4 ms of a SAC update); with `relu`,
    the addition and the ReLU are one pass (aten's `_add_relu_`, the same arithmetic)."""
    transposed = b.shape[-1] <= THIN and (_transposed_view(a) or _transposed_view(b))
    if transposed:
        out = torch.bmm(b.transpose(1, 2), a.transpose(1, 2))
        bias = None if bias is None else bias.transpose(1, 2)
    else:
        out = torch.bmm(a, b)
    if relu and bias is not None and not torch.compiler.is_compiling():   # (Inductor fuses add and relu itself)
        out = torch.ops.aten._add_relu_(out, bias)
    else:
        out = out if bias is None else out.add_(bias)
        out = out.relu_() if relu else out
    return out.transpose(1, 2) if transposed else out


def _transposed_view(t: torch.Tensor) -> bool:
    """Whether t's matrices are stored column by column. A one-column matrix, such as a Q head's weight, has
    stride(-2) == 1 either way and counts as row-major: its forward product is a plain bmm (31 us for SAC's
    twin heads, 60 transposed)."""
    return t.stride(-2) == 1 and t.shape[-1] > 1


def relu_backward_(grad: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """grad *= (output > 0) in place: ReLU's backward, given its output."""
    return torch.ops.aten.threshold_backward.grad_input(grad, output, 0.0, grad_input=grad)


class _Mish(torch.autograd.Function):
    """Mish, x tanh(softplus(x)), with tanh(softplus(x)) = n / (n + 2), n = e^x (e^x + 2), and the derivative
    tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2) computed once and reused by backward and by forward-mode AD
    (torch.func.jvp). On one CPU thread F.mish's backward kernel (which forward-mode AD of F.mish also
    calls) is 3-4x slower than this."""

    @staticmethod
    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = torch.exp(x.clamp(max=20.0))          # beyond 20, tanh(softplus(x)) = 1 in float32
        n = e * (e + 2.0)
        th = n / (n + 2.0)
        return x * th, th

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,), (_, th) = inputs, output
        ctx.mark_non_differentiable(th)
        ctx.slope = torch.addcmul(th, x * torch.sigmoid(x), 1.0 - th * th)

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _grad_th: torch.Tensor) -> torch.Tensor:
        return grad * ctx.slope

    @staticmethod
    def jvp(ctx, tangent: torch.Tensor) -> tuple[torch.Tensor, None]:
        return tangent * ctx.slope, None


def mish(x: torch.Tensor) -> torch.Tensor:
    """Mish (Misra 2019), DQL's activation: x tanh(softplus(x)); autograd and torch.func.jvp both work."""
    if not torch.is_grad_enabled():       # plain ops: no saved derivative to compute (and still jvp-able)
        e = torch.exp(x.clamp(max=20.0))
        n = e * (e + 2.0)
        return x * n / (n + 2.0)
    return _Mish.apply(x)[0]


class PopLinear(nn.Module):
    def __init__(self, population: Population, in_features: int, out_features: int, copies: int = 1):
        super().__init__()
        p, dev = population.size, population.device
        weight = torch.empty(p, copies, in_features, out_features, device=dev)
        bias = torch.empty(p, copies, 1, out_features, device=dev)
        bound = 1.0 / math.sqrt(in_features)  # torch.nn.Linear's default initialisation
        for member, generator in enumerate(population.generators):
            weight[member].uniform_(-bound, bound, generator=generator)
            bias[member].uniform_(-bound, bound, generator=generator)
        self.copies = copies
        self.weight = nn.Parameter(weight.view(p * copies, in_features, out_features))
        self.bias = nn.Parameter(bias.view(p * copies, 1, out_features))

    def forward(self, x: torch.Tensor, first_copy_only: bool = False, relu: bool = False) -> torch.Tensor:
        """x: (M, B, in) -> (M, B, out), ReLU'd if `relu`; with first_copy_only, x: (P, B, in) -> (P, B, out)."""
        weight, bias = self.weight, self.bias
        if first_copy_only and self.copies > 1:
            m, i, o = weight.shape
            weight = weight.view(m // self.copies, self.copies, i, o)[:, 0]
            bias = bias.view(m // self.copies, self.copies, 1, o)[:, 0]
        return batched_matmul(x, weight, bias, relu)

    def backward(self, x: torch.Tensor, grad_out: torch.Tensor) -> None:
        """Set .grad of weight and bias for y = x W + b, given dL/dy: dL/dW = x^T dL/dy, dL/db = sum_b dL/dy."""
        self.weight.grad = batched_matmul(x.transpose(1, 2), grad_out).contiguous()
        self.bias.grad = grad_out.sum(1, keepdim=True)

    def input_grad(self, grad_out: torch.Tensor, columns: slice = slice(None),
                   members: slice = slice(None)) -> torch.Tensor:
        """dL/dx[..., columns] = dL/dy W[columns]^T, for the weight matrices `members` of the M."""
        weight = self.weight[members, columns]
        if weight.shape[-1] == 1:
            return grad_out * weight.transpose(1, 2)   # outer product, by broadcasting
        return batched_matmul(grad_out, weight.transpose(1, 2))


def orthogonal_(layer: PopLinear, population: Population, gain: float) -> None:
    """Re-initialise `layer` as torch.nn.init.orthogonal_(weight, gain) with zero bias, per member and copy,
    from the member's generator (the weight is drawn as torch's (out, in) matrix, stored transposed)."""
    m, fan_in, fan_out = layer.weight.shape
    with torch.no_grad():
        for index in range(m):
            generator = population.generators[index // layer.copies]
            w = torch.empty(fan_out, fan_in, device=layer.weight.device)
            nn.init.orthogonal_(w, gain=gain, generator=generator)
            layer.weight[index].copy_(w.T)
        layer.bias.zero_()


class PopMLP(nn.Module):
    """MLP with a population (and optional ensemble-copy) axis; linear output layer. Hidden activation
    ReLU (the default; `trace`/`backward` support only it), tanh, GELU or Mish (autograd only; Mish is
    DQL's and OFQL's, x tanh(softplus(x)))."""

    def __init__(self, population: Population, sizes: list[int] | tuple[int, ...], copies: int = 1,
                 activation: str = "relu"):
        super().__init__()
        if activation not in ("relu", "tanh", "gelu", "mish"):
            raise ValueError(f"activation={activation!r}; choose from: relu, tanh, gelu, mish")
        self.population_size = population.size
        self.copies = copies
        self.activation = activation
        self.layers = nn.ModuleList(
            PopLinear(population, i, o, copies) for i, o in zip(sizes[:-1], sizes[1:])
        )

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations (P, B, h) for x (P, B, in); copies == 1 only."""
        act = {"relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu, "mish": mish}[self.activation]
        for layer in list(self.layers)[:-1]:
            x = act(layer(x))
        return x

    def forward(self, x: torch.Tensor, first_copy_only: bool = False) -> torch.Tensor:
        """x: (P, B, in). Returns (P, B, out) if copies == 1 or first_copy_only,
        else (P, copies, B, out): one output per ensemble copy, all from the same input."""
        if self.copies > 1 and not first_copy_only:
            p, b, d = x.shape
            x = x.unsqueeze(1).expand(p, self.copies, b, d).reshape(p * self.copies, b, d)
        *hidden, last = self.layers   # (slicing a ModuleList builds a new one: slow)
        act = {"relu": F.relu_, "tanh": torch.tanh, "gelu": F.gelu, "mish": mish}[self.activation]
        for layer in hidden:
            x = act(layer(x, first_copy_only))   # relu in place: the matmul's backward does not need its output
        x = last(x, first_copy_only)
        if self.copies > 1 and not first_copy_only:
            x = x.view(self.population_size, self.copies, *x.shape[1:])
        return x

    @torch.no_grad()
    def trace(self, x: torch.Tensor, first_copy_only: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """forward(x) without autograd, also returning every layer's input for `backward`. x: (P, B, in).
        Returns (M, B, out), M = P * copies (P with first_copy_only), and the M-batched layer inputs."""
        assert self.activation == "relu", "trace/backward are written for ReLU"
        if self.copies > 1 and not first_copy_only:
            p, b, d = x.shape
            x = x.unsqueeze(1).expand(p, self.copies, b, d).reshape(p * self.copies, b, d)
        *hidden, last = self.layers
        inputs = [x]
        for layer in hidden:
            x = layer.forward(x, first_copy_only, relu=True)   # (no module hooks: skip __call__)
            inputs.append(x)
        return last.forward(x, first_copy_only), inputs

    @torch.no_grad()
    def backward(self, inputs: list[torch.Tensor], grad_out: torch.Tensor, weight_grads: bool = True,
                 input_columns: slice | None = None, first_copy_only: bool = False) -> torch.Tensor | None:
        """Backpropagate dL/d(output) (M, B, out) through the network traced on `inputs`.

        Sets each parameter's .grad (replacing it) if `weight_grads`; returns dL/d(input)[..., input_columns]
        (M, B, len) if `input_columns` is given. ReLU's derivative is 1 where its output is > 0, else 0,
        and its outputs are the next layers' inputs. `inputs` may be row slices of a longer trace.
        With first_copy_only (for a trace made so), pass weight_grads=False: input gradients only.
        """
        members = slice(None, None, self.copies) if first_copy_only else slice(None)
        first, *rest = self.layers
        grad = grad_out
        for layer, x in zip(reversed(rest), reversed(inputs[1:])):
            if weight_grads:
                layer.backward(x, grad)
            grad = relu_backward_(layer.input_grad(grad, members=members), x)
        if weight_grads:
            first.backward(inputs[0], grad)
        return None if input_columns is None else first.input_grad(grad, input_columns, members)

    @torch.no_grad()
    def chosen_copy_input_grad(self, inputs: list[torch.Tensor], chosen: torch.Tensor, grad: float,
                               input_columns: slice) -> torch.Tensor:
        """dL/d(input)[..., input_columns], (P, B, len), for L = grad * sum_b output[p, chosen[p, b], b]: a
        loss that reads one copy per sample, as a min over twin critics does (single-output networks).

        `backward` would carry zeros through every other copy. On CPU (eager) each sample instead goes
        through its chosen copy only, member by member (so a member's result never depends on
        another's data): half the matmul work for two copies.
        """
        p, b = chosen.shape
        # On other devices one batched pass beats 2P small ones; a compiled graph needs static shapes.
        if chosen.device.type != "cpu" or torch.compiler.is_compiling():
            copies = torch.arange(self.copies, device=chosen.device)[:, None]
            grad_out = (chosen.unsqueeze(1) == copies).to(inputs[0].dtype) * grad       # (P, copies, B)
            input_grad = self.backward(inputs, grad_out.view(-1, b, 1), weight_grads=False, input_columns=input_columns)
            return input_grad.view(p, self.copies, b, -1).sum(1)
        first, *rest = self.layers
        result = inputs[0].new_zeros(p, b, first.weight[:, input_columns].shape[1])
        for member in range(p):
            for copy in range(self.copies):
                m = slice(member * self.copies + copy, member * self.copies + copy + 1)
                rows = (chosen[member] == copy).nonzero().squeeze(1)
                g = inputs[0].new_full((1, len(rows), 1), grad)
                for layer, x in zip(reversed(rest), reversed(inputs[1:])):
                    g = relu_backward_(layer.input_grad(g, members=m), x[m].index_select(1, rows))
                result[member].index_copy_(0, rows, first.input_grad(g, input_columns, m)[0])
        return result


def tanh_gaussian(mean: torch.Tensor, std: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised sample a = tanh(mean + std * noise) and its log-density.

    log pi(a|s) = sum_i [log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2)], with the Jacobian
    term written stably as 2 (log 2 - u - softplus(-2u)) (SAC paper, Appendix C, eq. 21).
    """
    u = mean + std * noise
    log_normal = -0.5 * noise.pow(2) - std.log() - LOG_SQRT_2PI
    log_jacobian = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return torch.tanh(u), (log_normal - log_jacobian).sum(-1)


def tanh_gaussian_backward(action: torch.Tensor, std: torch.Tensor, noise: torch.Tensor, grad_action: torch.Tensor,
                           grad_log_prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/dmean, dL/dstd) of `tanh_gaussian`, given dL/daction and dL/dlog_prob (shape of log_prob).

    With a = tanh(u), u = mean + std noise: da/du = 1 - a^2, dlog_pi/du = 2 a (the Jacobian term's
    derivative), dlog_pi/dstd = -1/std directly, and du/dstd = noise.
    """
    grad_log_prob = grad_log_prob.unsqueeze(-1)
    grad_u = torch.addcmul(grad_action * (1.0 - action * action), action, grad_log_prob, value=2.0)
    return grad_u, grad_u * noise - grad_log_prob / std


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau online, for all parameters at once."""
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


class LeanAdam(torch.optim.Adam):
    """torch.optim.Adam(fused=True): the same fused kernel, state and state_dict, stepped without
    Optimizer.step's Python bookkeeping (the profiling wrapper and hooks, grouping tensors by device
    and dtype, lazy state checks), which costs about 0.1-0.2 ms a call on one CPU thread: 5% of a
    SAC update, which steps three optimisers. Each group's tensor lists are built once (again after
    `load_state_dict` or `add_param_group`). No closure, AMSGrad, step hooks or gradient scaling."""

    def __init__(self, params, lr: float, eps: float):
        super().__init__(params, lr=lr, eps=eps, fused=True)
        self._lists: list[tuple] | None = None

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._lists = None

    def __setstate__(self, state: dict) -> None:   # copy.deepcopy and pickle keep only torch's fields
        super().__setstate__(state)
        self._lists = None

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        self._lists = None

    def state_changed(self) -> None:
        """Call after replacing state tensors by hand (the lists hold the old ones)."""
        self._lists = None

    def _group_lists(self, params: list) -> tuple:
        """(params, exp_avgs, exp_avg_sqs, steps) of `params`, creating torch.optim.Adam's initial fused state."""
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return (params, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                [s["step"] for s in states])

    @torch.no_grad()
    def step(self, closure=None) -> None:
        assert closure is None, "LeanAdam takes no closure"
        if self._lists is None:
            self._lists = [self._group_lists(list(group["params"])) for group in self.param_groups]
        for group, lists in zip(self.param_groups, self._lists):
            grads = [p.grad for p in lists[0]]
            if any(g is None for g in grads):   # skip parameters without a gradient, as torch does
                params = [p for p in lists[0] if p.grad is not None]
                if not params:
                    continue
                lists, grads = self._group_lists(params), [p.grad for p in params]
            params, exp_avgs, exp_avg_sqs, steps = lists
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                               beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                               maximize=group["maximize"], grad_scale=None, found_inf=None)

    step.hooked = True   # Optimizer.__init__ would wrap an unhooked step in its profiling and hook wrapper


def adam(params, lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with the fastest kernel available for the parameters' device."""
    params = list(params)
    try:
        return LeanAdam(params, lr=lr, eps=eps)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, eps=eps, foreach=True)


class MemberAdam(torch.optim.Optimizer):
    """Adam (torch.optim.Adam's arithmetic: bias-corrected moments, eps added to sqrt(v_hat)) over
    parameters with a leading population axis, where every member keeps its own step count and
    `step(active)` leaves inactive members (parameters and moments) untouched. For per-member early
    stopping (PPO's target_kl): a member that stopped updates as it would in a run of its own."""

    def __init__(self, params, lr: float, eps: float, members: int, betas: tuple[float, float] = (0.9, 0.999)):
        super().__init__(list(params), {"lr": lr, "eps": eps, "betas": betas})
        self.members = members

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        """active: (P,) bool, the members to update (default all)."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros(self.members, device=p.device)
                    state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
                on = torch.ones(self.members, dtype=torch.bool, device=p.device) if active is None else active
                mask = on.view(-1, *([1] * (p.dim() - 1)))
                state["step"].add_(on.to(state["step"].dtype))
                t = state["step"].clamp(min=1.0).view(-1, *([1] * (p.dim() - 1)))
                m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
                m.copy_(torch.where(mask, m.lerp(g, 1 - beta1), m))
                v.copy_(torch.where(mask, v * beta2 + (1 - beta2) * g * g, v))
                denom = v.sqrt() / (1 - beta2 ** t).sqrt() + group["eps"]
                p.sub_(torch.where(mask, group["lr"] / (1 - beta1 ** t) * m / denom, 0.0))


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
