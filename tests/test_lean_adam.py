"""LeanAdam (drlbench.nn) is torch.optim.Adam(fused=True), bit for bit, with the same state_dict."""
import copy

import torch

from drlbench.nn import LeanAdam, batched_matmul


def _params(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(3, 4, generator=g)), torch.nn.Parameter(torch.randn(5, generator=g)),
            torch.nn.Parameter(torch.randn(2, generator=g))]


def test_lean_adam_equals_fused_adam_bit_for_bit():
    ours, theirs = _params(0), _params(0)
    lean = LeanAdam(ours, lr=1e-2, eps=1e-8)
    fused = torch.optim.Adam(theirs, lr=1e-2, eps=1e-8, fused=True)
    g = torch.Generator().manual_seed(1)
    for step in range(25):
        for i, (p, q) in enumerate(zip(ours, theirs)):
            if i == 2 and step % 3:     # a parameter without a gradient is skipped, as torch does
                p.grad = q.grad = None
                continue
            grad = torch.randn(p.shape, generator=g)
            p.grad, q.grad = grad.clone(), grad.clone()
        lean.step()
        fused.step()
        assert all(torch.equal(p, q) for p, q in zip(ours, theirs))
    for a, b in zip(lean.state_dict()["state"].values(), fused.state_dict()["state"].values()):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lean_adam_resumes_from_a_torch_adam_state_dict():
    ours, theirs = _params(2), _params(2)
    fused = torch.optim.Adam(theirs, lr=1e-3, eps=1e-8, fused=True)
    for p in theirs:
        p.grad = torch.ones_like(p)
    fused.step()
    lean = LeanAdam(ours, lr=1e-3, eps=1e-8)
    for p in ours:                     # a step before loading: its cached state lists must be dropped
        p.grad = torch.ones_like(p)
    lean.step()
    with torch.no_grad():
        for p, q in zip(ours, theirs):
            p.copy_(q)
    lean.load_state_dict(copy.deepcopy(fused.state_dict()))   # (torch would share the tensors)
    for p, q in zip(ours, theirs):
        p.grad, q.grad = torch.full_like(p, 0.5), torch.full_like(q, 0.5)
    lean.step()
    fused.step()
    assert all(torch.equal(p, q) for p, q in zip(ours, theirs))


def test_lean_adam_deep_copy_steps_its_own_state():
    ours = _params(4)
    lean = LeanAdam(ours, lr=1e-2, eps=1e-8)
    for p in ours:
        p.grad = torch.ones_like(p)
    lean.step()
    twin = copy.deepcopy(lean)          # a copy's lists must hold the copy's tensors, not the original's
    for p in twin.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    twin.step()
    assert all(s["step"].item() == 1 for s in lean.state.values())
    assert all(s["step"].item() == 2 for s in twin.state.values())


def test_batched_matmul_every_layout_and_bias():
    g = torch.Generator().manual_seed(3)
    for n, k, m in [(256, 23, 256), (256, 256, 1), (512, 256, 12), (7, 5, 3), (4, 6, 1)]:
        a, b, bias = torch.randn(2, n, k, generator=g), torch.randn(2, k, m, generator=g), torch.randn(2, 1, m, generator=g)
        at = a.transpose(1, 2).contiguous().transpose(1, 2)    # the same values as a transposed view
        bt = b.transpose(1, 2).contiguous().transpose(1, 2)
        expected = torch.baddbmm(bias, a, b)
        for x, y in [(a, b), (at, b), (a, bt), (at, bt)]:
            torch.testing.assert_close(batched_matmul(x, y, bias), expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(batched_matmul(x, y, bias, relu=True), expected.relu(), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(batched_matmul(x, y, relu=True), torch.bmm(a, b).relu(), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(batched_matmul(x, y), torch.bmm(a, b), rtol=1e-5, atol=1e-5)
