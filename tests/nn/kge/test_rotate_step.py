"""RotatE's negative-sampling step through candidate_modulus (the C kernel NativE's step uses):
its scores and gradients (entity table and relation phases) equal the paper's formula written
out with complex numbers and the PyTorch formula (score_hrt on gathered rows) in float64, for
tail and head corruptions; step_kernel="eager", the l2 distance and dtypes the kernel does not
take keep the PyTorch formula bit for bit; a zero modulus has gradient 0."""

from __future__ import annotations

import math

import pytest
import torch

from mmgnn.models import KGEModel
from mmgnn.nn.kge import rotate as rotate_module
from mmgnn.nn.kge.base import gather_pair
from mmgnn.nn.kge.rotate import RotatE

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

N, R, D, B, K = 30, 4, 6, 7, 5


def _inputs(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dec = RotatE(R, D, margin=3.0).to(dtype)
    x = torch.randn(N, 2 * D, generator=g, dtype=dtype, requires_grad=True)
    h, r, t = torch.randint(N, (B,), generator=g), torch.randint(R, (B,), generator=g), \
        torch.randint(N, (B,), generator=g)
    corrupt_head = torch.rand(B, K, generator=g) < 0.5
    corrupt_head[0], corrupt_head[1] = True, False  # a row of each side alone
    candidates = torch.randint(N, (B, K), generator=g)
    candidates[2, :3] = 11  # one entity several times: its gradient rows add up
    candidates[3, 0] = t[3]  # the positive itself among the corruptions
    grad = torch.randn(B, K, generator=g, dtype=dtype)
    return dec, x, h, r, t, corrupt_head, candidates, grad


def _written_out(dec, x, h, r, t, corrupt_head, candidates):
    """gamma - sum_k |e_h,k r_k - e_t,k| with complex numbers, r_k = exp(i theta_k), one
    corruption at a time (Sun et al., 2019, Eq. 3)."""
    z = torch.complex(x[:, :D], x[:, D:])
    theta = dec.rel_emb.weight * (math.pi / dec.embedding_range)
    rot = torch.polar(torch.ones_like(theta), theta)
    out = []
    for b in range(B):
        row = []
        for k in range(K):
            c = candidates[b, k]
            head, tail = (c, t[b]) if corrupt_head[b, k] else (h[b], c)
            row.append(dec.margin - (z[head] * rot[r[b]] - z[tail]).abs().sum())
        out.append(torch.stack(row))
    return torch.stack(out)


def _run(fn, dec, x, grad):
    x.grad, dec.rel_emb.weight.grad = None, None
    scores = fn()
    (scores * grad).sum().backward()
    return scores.detach(), x.grad.clone(), dec.rel_emb.weight.grad.clone()


def test_kernel_path_runs_and_equals_written_out_formula_and_eager(monkeypatch):
    dec, x, h, r, t, corrupt_head, candidates, grad = _inputs()
    calls = []
    real = rotate_module.candidate_modulus
    monkeypatch.setattr(rotate_module, "candidate_modulus",
                        lambda *a: calls.append(a[-1]) or real(*a))
    kernel = _run(lambda: dec.score_corruptions(x, h, r, t, corrupt_head, candidates), dec, x,
                  grad)
    assert calls == ["auto"]
    assert rotate_module.kernel_applies("auto", x, candidates, x.new_ones(B, K, 1),
                                        x.new_ones(2 * B, 2 * D), candidates)
    reference = _run(lambda: _written_out(dec, x, h, r, t, corrupt_head, candidates), dec, x,
                     grad)
    dec.step_kernel = "eager"
    eager = _run(lambda: dec.score_corruptions(x, h, r, t, corrupt_head, candidates), dec, x,
                 grad)
    assert len(calls) == 1  # the eager path did not call the kernel
    for got, want, other in zip(kernel, reference, eager, strict=True):
        assert got.abs().max() > 0.1  # scores, entity and phase gradients are not trivial
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        torch.testing.assert_close(got, other, rtol=0, atol=1e-12)


@pytest.mark.parametrize("side", ["tail", "head"])
def test_one_side_only(side):
    dec, x, h, r, t, _, candidates, grad = _inputs(seed=1)
    corrupt_head = torch.full((B, K), side == "head")
    kernel = _run(lambda: dec.score_corruptions(x, h, r, t, corrupt_head, candidates), dec, x,
                  grad)
    reference = _run(lambda: _written_out(dec, x, h, r, t, corrupt_head, candidates), dec, x,
                     grad)
    for got, want in zip(kernel, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_float32_within_rounding():
    dec, x, h, r, t, corrupt_head, candidates, grad = _inputs(torch.float32, seed=2)
    kernel = _run(lambda: dec.score_corruptions(x, h, r, t, corrupt_head, candidates), dec, x,
                  grad)
    dec.step_kernel = "eager"
    eager = _run(lambda: dec.score_corruptions(x, h, r, t, corrupt_head, candidates), dec, x,
                 grad)
    for got, want in zip(kernel, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _plain(dec, x, h, r, t, corrupt_head, candidates):
    """The PyTorch formula as before the kernel: gathered rows through score_hrt."""
    heads = torch.where(corrupt_head, candidates, h[:, None])
    tails = torch.where(corrupt_head, t[:, None], candidates)
    hh, tt = gather_pair(x, heads, tails)
    return dec.score_hrt(hh, r[:, None], tt)


@pytest.mark.parametrize("case", ["eager", "l2", "bfloat16"])
def test_pytorch_formula_kept_bit_for_bit(case, monkeypatch):
    dtype = torch.bfloat16 if case == "bfloat16" else torch.float64
    dec, x, h, r, t, corrupt_head, candidates, grad = _inputs(dtype, seed=3)
    if case == "eager":
        dec = RotatE(R, D, margin=3.0, step_kernel="eager").to(dtype)
        assert "step_kernel='eager'" in repr(dec)
    if case == "l2":
        dec.distance = "l2"
    monkeypatch.setattr(rotate_module, "candidate_modulus", None)  # never called
    got = _run(lambda: dec.score_corruptions(x, h, r, t, corrupt_head, candidates), dec, x,
               grad)
    want = _run(lambda: _plain(dec, x, h, r, t, corrupt_head, candidates), dec, x, grad)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def test_zero_modulus_has_gradient_zero():
    dec, x, h, r, t, corrupt_head, candidates, grad = _inputs(seed=4)
    with torch.no_grad():
        x[5] = 0
    h[0], candidates[0, 0], corrupt_head[0, 0] = 5, 5, False  # |0 r - 0| = 0
    kernel = _run(lambda: dec.score_corruptions(x, h, r, t, corrupt_head, candidates), dec, x,
                  grad)
    dec.step_kernel = "eager"
    eager = _run(lambda: dec.score_corruptions(x, h, r, t, corrupt_head, candidates), dec, x,
                 grad)
    assert kernel[0][0, 0] == dec.margin
    for a, b in zip(kernel, eager, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
def test_kge_model_loss_and_gradients(sparse):
    """KGEModel's negative-sampling loss (positives in column 0 of the fused call): the kernel
    path and step_kernel='eager' agree in float64, dense and sparse tables."""
    from mmgnn.sampling.batches import NegativeBatch

    g = torch.Generator().manual_seed(5)
    pos = torch.stack([torch.randint(N, (B,), generator=g), torch.randint(R, (B,), generator=g),
                       torch.randint(N, (B,), generator=g)], dim=1)
    neg = pos[:, None, :].repeat(1, K, 1)
    side = torch.rand(B, K, generator=g) < 0.5
    neg[..., 0] = torch.where(side, torch.randint(N, (B, K), generator=g), neg[..., 0])
    neg[..., 2] = torch.where(side, neg[..., 2], torch.randint(N, (B, K), generator=g))
    batch = NegativeBatch(pos, neg)
    results = []
    for step_kernel in ("auto", "eager"):
        torch.manual_seed(0)
        model = KGEModel(N, R, "rotate", dim=D, sparse=sparse, step_kernel=step_kernel).double()
        loss = model.loss(model.encode(), batch,
                          lambda p, n: -p.mean() + torch.logsumexp(n, dim=-1).mean())
        loss.backward()
        grads = [p.grad.to_dense() for p in model.parameters()]
        results.append((loss.detach(), *grads))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
