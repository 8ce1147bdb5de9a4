"""candidate_modulus (NativE's training-step distance): the C kernel and the PyTorch path give
the distances and gradients of the formula written out here with complex numbers (float64),
the PyTorch path's distances are bit-identical to the plain chain of operations it replaces, a
zero modulus has gradient 0, the kernel's results do not depend on the thread count, a kernel
that does not build falls back with one warning, and bad shapes and ids are named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmgnn.nn.kge import candidates
from mmgnn.nn.kge.candidates import KERNELS, candidate_modulus
from mmgnn.utils.native import NativeKernel, compiler

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

N, M, D, B, K, Q = 40, 3, 8, 6, 5, 12


def _inputs(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(N, M * 2 * D, generator=g, dtype=dtype, requires_grad=True)
    index = torch.randint(N, (B, K), generator=g)
    index[0, :3] = 7  # one entity several times: its gradient rows add up
    weights = torch.rand(B, K, M, generator=g, dtype=dtype).requires_grad_()
    queries = torch.randn(Q, 2 * D, generator=g, dtype=dtype, requires_grad=True)
    which = torch.randint(Q, (B, K), generator=g)
    grad = torch.randn(B, K, generator=g, dtype=dtype)
    return table, index, weights, queries, which, grad


def _written_out(table, index, weights, queries, which):
    """sum_k |c_k - q_k| with c = sum_m w_m X[e, m] as complex numbers, one candidate at a
    time."""
    out = torch.zeros(index.shape, dtype=table.dtype)
    for b in range(index.size(0)):
        for k in range(index.size(1)):
            blocks = table[index[b, k]].view(M, 2 * D)
            c = (weights[b, k, :, None] * blocks).sum(0)
            q = queries[which[b, k]]
            out[b, k] = (torch.complex(c[:D], c[D:]) - torch.complex(q[:D], q[D:])).abs().sum()
    return out


def _with_grads(fn, table, index, weights, queries, which, grad):
    out = fn(table, index, weights, queries, which)
    return (out, *torch.autograd.grad((out * grad).sum(), [table, weights, queries]))


@pytest.mark.parametrize("kernel", ["compiled", "eager"])
def test_distances_and_gradients_equal_the_written_out_formula(kernel):
    *args, grad = _inputs()
    got = _with_grads(lambda *a: candidate_modulus(*a, kernel=kernel), *args, grad)
    want = _with_grads(_written_out, *args, grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    if kernel == "compiled" and compiler() is not None:  # the C kernel ran, no fallback
        assert all(k.function is not None for k in KERNELS[torch.float64].values())


def test_float32_kernel_within_rounding_of_float64():
    *args, grad = _inputs(torch.float32)
    got = _with_grads(lambda *a: candidate_modulus(*a, kernel="compiled"), *args, grad)
    wide = [a.detach().double().requires_grad_(a.requires_grad) if a.is_floating_point() else a
            for a in args]
    want = _with_grads(_written_out, *wide, grad.double())
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)


def test_eager_distances_are_bit_identical_to_the_plain_chain():
    """The operations NativE's step ran before, in float32: F.embedding, the weighted sum over
    the blocks, the difference to the gathered query, torch.hypot of the halves, the sum."""
    table, index, weights, queries, which, _ = _inputs(torch.float32)
    rows = F.embedding(index, table).view(B, K, M, 2 * D)
    diff = (weights[..., None] * rows).sum(-2) - F.embedding(which, queries)
    plain = torch.hypot(diff[..., :D], diff[..., D:]).sum(-1)
    assert torch.equal(candidate_modulus(table, index, weights, queries, which, "eager"), plain)


@pytest.mark.parametrize("kernel", ["compiled", "eager"])
def test_zero_modulus_has_zero_gradient(kernel):
    table, index, weights, queries, which, grad = _inputs()
    with torch.no_grad():  # candidate (0, 0) is its query exactly: block 0 with weight 1
        weights[0, 0] = torch.tensor([1.0, 0.0, 0.0])
        queries[which[0, 0]] = table[index[0, 0], :2 * D]
    out, g_table, g_weights, g_queries = _with_grads(
        lambda *a: candidate_modulus(*a, kernel=kernel), table, index, weights, queries, which,
        grad)
    assert out[0, 0] == 0
    assert torch.isfinite(g_table).all() and torch.isfinite(g_queries).all()
    assert (g_weights[0, 0] == 0).all()
    # the other candidates' gradients are those of the formula
    mask = torch.ones(B, K, dtype=torch.float64)
    mask[0, 0] = 0
    want = _with_grads(_written_out, table, index, weights, queries, which, grad * mask)
    torch.testing.assert_close(g_weights[1:], want[2][1:], rtol=1e-10, atol=1e-10)


def test_kernel_results_do_not_depend_on_the_thread_count():
    *args, grad = _inputs(torch.float32, seed=1)
    runs = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        runs.append(_with_grads(lambda *a: candidate_modulus(*a, kernel="compiled"), *args,
                                grad))
    for run in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], run, strict=True))


def test_bad_shapes_are_named():
    table, index, weights, queries, which, _ = _inputs()
    with pytest.raises(ValueError, match="M = 3 blocks"):
        candidate_modulus(table[:, :-1], index, weights, queries, which)
    with pytest.raises(ValueError, match="of one shape"):
        candidate_modulus(table, index, weights, queries, which[:, :2])


def test_a_kernel_that_does_not_build_falls_back_to_pytorch(monkeypatch, tmp_path):
    broken = tmp_path / "broken.c"
    broken.write_text("this is not C\n")
    monkeypatch.setenv("MMGNN_KERNEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(candidates.KERNELS, torch.float64, {
        name: NativeKernel(broken, k.symbol, k.argtypes, k.restype)
        for name, k in KERNELS[torch.float64].items()})
    *args, grad = _inputs()
    with pytest.warns(RuntimeWarning, match="broken.c"):
        got = _with_grads(lambda *a: candidate_modulus(*a, kernel="compiled"), *args, grad)
    want = _with_grads(lambda *a: candidate_modulus(*a, kernel="eager"), *args, grad)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_ids_out_of_range_are_named():
    table, index, weights, queries, which, _ = _inputs()
    with pytest.raises(IndexError, match=r"index holds ids outside \[0, 40\)"):
        candidate_modulus(table, index + N, weights, queries, which)
    with pytest.raises(IndexError, match="which holds ids"):
        candidate_modulus(table, index, weights, queries, which - Q)
