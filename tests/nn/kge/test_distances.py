"""The 1-to-all distance kernels: compiled, cdist and chunked paths agree with the broadcast
formulas written out here, gradients are safe at zero distance, and compilation falls back."""

from __future__ import annotations

import warnings

import pytest
import torch

from mmgnn.nn.kge import PairRE, RotatE, TransE
from mmgnn.nn.kge import distances as D
from mmgnn.utils.native import NativeKernel


def _inputs(b: int = 5, n: int = 50, d: int = 8, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(rows, d, generator=g, dtype=dtype) for rows in (b, n, b))


def _reference(name: str, q, c, w):
    """The distances by explicit broadcasting over (B, N, d)."""
    if name == "l1":
        return (q[:, None] - c[None]).abs().sum(-1)
    if name == "weighted_l1":
        return (q[:, None] - w[:, None] * c[None]).abs().sum(-1)
    half = q.size(-1) // 2
    zq, zc = torch.complex(q[:, :half], q[:, half:]), torch.complex(c[:, :half], c[:, half:])
    return (zq[:, None] - zc[None]).abs().sum(-1)


def _call(name: str, q, c, w, **kwargs):
    if name == "l1":
        return D.l1_distance(q, c, **kwargs)
    if name == "weighted_l1":
        return D.l1_distance(q, c, w, **kwargs)
    return D.complex_distance(q, c, **kwargs)


def _fresh(kernel_name: str, monkeypatch) -> None:
    """Installs a not yet compiled copy of a compiled kernel (the C kernel for the complex
    modulus; its library stays in the on-disk cache)."""
    if kernel_name == "complex_modulus":
        old = D.COMPLEX_MODULUS
        monkeypatch.setattr(D, "COMPLEX_MODULUS", NativeKernel(old.source, old.symbol,
                                                               old.argtypes, old.restype))
        return
    old = D._COMPILED[kernel_name]
    monkeypatch.setitem(D._COMPILED, kernel_name, D._CompiledKernel(old.fn, old.prepare))


NAMES = ["l1", "weighted_l1", "complex"]
COMPILED = {"l1": "l1", "weighted_l1": "weighted_l1", "complex": "complex_modulus"}


@pytest.mark.parametrize("name", NAMES)
def test_eager_paths_match_reference(name):
    q, c, w = _inputs(dtype=torch.float64)
    expected = _reference(name, q, c, w)
    for grad in (True, False):  # out-of-place formulas for autograd, in-place ones without
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(_call(name, q, c, w, kernel="eager"), expected)
            torch.testing.assert_close(_call(name, q, c, w, kernel="eager", chunk_elements=1),
                                       expected)


@pytest.mark.parametrize("name", NAMES)
def test_compiled_kernel_matches_reference(name, monkeypatch):
    monkeypatch.setattr(D, "_BLOCK_BYTES", 64)  # 16 candidate rows per call: several blocks
    q, c, w = _inputs()
    out = _call(name, q, c, w, kernel="compiled")
    if not D.compiled_available(COMPILED[name]):
        pytest.skip("torch.compile does not work here; the fallback is tested below")
    torch.testing.assert_close(out, _reference(name, q, c, w))
    q, c, w = _inputs(b=3, n=7, seed=1)  # other sizes reuse the dynamic-shape kernel
    torch.testing.assert_close(_call(name, q, c, w, kernel="compiled"),
                               _reference(name, q, c, w))


def test_decoders_agree_across_kernels():
    g = torch.Generator().manual_seed(0)
    for cls, kwargs in ((TransE, {}), (RotatE, {}), (PairRE, {})):
        torch.manual_seed(0)
        eager = cls(4, 8, kernel="eager", **kwargs)
        compiled = cls(4, 8, kernel="compiled", **kwargs)
        compiled.load_state_dict(eager.state_dict())
        e = torch.randn(6, eager.entity_channels, generator=g)
        cand = torch.randn(40, eager.entity_channels, generator=g)
        r = torch.randint(4, (6,), generator=g)
        with torch.no_grad():
            torch.testing.assert_close(compiled.score_t(e, r, cand), eager.score_t(e, r, cand))
            torch.testing.assert_close(compiled.score_h(r, e, cand), eager.score_h(r, e, cand))


def _forbid_compile(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("torch.compile must not be called here")
    monkeypatch.setattr(torch, "compile", fail)
    monkeypatch.setattr(NativeKernel, "load", fail)
    for name in COMPILED.values():  # fresh, not yet compiled kernels
        _fresh(name, monkeypatch)


@pytest.mark.parametrize("name", NAMES)
def test_auto_does_not_compile_small_problems_or_gradients(name, monkeypatch):
    _forbid_compile(monkeypatch)
    q, c, w = _inputs()
    torch.testing.assert_close(_call(name, q, c, w), _reference(name, q, c, w))
    # gradients always take the eager autograd path, whatever the kernel
    c.requires_grad_()
    out = _call(name, q, c, w, kernel="compiled")
    expected = _reference(name, q, c.detach().requires_grad_(), w)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("name", NAMES)
def test_failed_compilation_warns_once_and_falls_back(name, monkeypatch, tmp_path):
    def broken(fn, **kwargs):
        raise RuntimeError("no C++ compiler")
    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))  # the C kernel's compiler fails
    monkeypatch.setenv("MMGNN_KERNEL_CACHE", str(tmp_path))  # nothing built before
    kernel_name = COMPILED[name]
    _fresh(kernel_name, monkeypatch)
    q, c, w = _inputs()
    message = "no-such-cc" if name == "complex" else "no C\\+\\+ compiler"
    with pytest.warns(RuntimeWarning, match=message):
        out = _call(name, q, c, w, kernel="compiled")
    torch.testing.assert_close(out, _reference(name, q, c, w))
    assert not D.compiled_available(kernel_name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        _call(name, q, c, w, kernel="compiled")


def test_l2_distance_matches_cdist():
    q, c, _ = _inputs(dtype=torch.float64)
    torch.testing.assert_close(D.l2_distance(q, c), torch.cdist(q, c))


def test_zero_distances_have_zero_gradient():
    x = torch.tensor([0.0, 4.0], requires_grad=True)
    D.safe_sqrt(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 0.25]))
    q, c, _ = _inputs(dtype=torch.float64)
    c = torch.cat([q, c]).requires_grad_()  # candidate i equals query i: distance 0
    for dist in (D.l2_distance(q, c), D.complex_distance(q, c, kernel="eager")):
        (grad,) = torch.autograd.grad(dist.sum(), c)
        assert torch.isfinite(grad).all()


def test_unknown_kernel_is_rejected():
    with pytest.raises(ValueError, match="kernel must be one of"):
        TransE(3, 4, kernel="triton")


@pytest.mark.parametrize("kernel", ["eager", "compiled"])
def test_anchored_l1_matches_autograd_on_the_plain_formula(kernel):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 2, 8, generator=g, requires_grad=True)
    c = torch.randn(11, 8, generator=g, requires_grad=True)
    side, ic = torch.randint(2, (5, 3), generator=g), torch.randint(11, (5, 3), generator=g)
    ic[0, 0] = ic[0, 1]  # repeated rows accumulate
    with torch.no_grad():
        c[ic[1, 2]] = a[1, side[1, 2]]  # a zero distance: gradient 0, not NaN
    out = D.anchored_l1_distance(a, c, side.bool(), ic, kernel=kernel)
    expected = torch.stack([torch.stack([(a[b, side[b, k]] - c[ic[b, k]]).abs().sum()
                                         for k in range(3)]) for b in range(5)])
    torch.testing.assert_close(out, expected)
    grad = torch.randn(5, 3, generator=g)
    for mine, ref in zip(torch.autograd.grad(out, (a, c), grad),
                         torch.autograd.grad(expected, (a, c), grad), strict=True):
        torch.testing.assert_close(mine, ref)
    if kernel == "compiled":
        assert not D._ANCHORED["forward"].failed and not D._ANCHORED["backward"].failed
    with pytest.raises(ValueError, match="expected anchors"):
        D.anchored_l1_distance(a, c, side, ic[:2])


def test_l2_distance_compiled_epilogue_matches_cdist():
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(600, 16, generator=g), torch.randn(500, 16, generator=g)
    c[7] = q[3]  # a zero distance stays 0 (clamped), not NaN
    assert q.size(0) * c.size(0) >= D._L2_COMPILE_MIN  # the compiled path
    out = D.l2_distance(q, c)
    assert not D._L2_FROM_DOTS.failed
    torch.testing.assert_close(out, torch.cdist(q.double(), c.double()).float(),
                               atol=1e-3, rtol=1e-4)
    assert out[3, 7] >= 0 and not out.isnan().any()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kernel", ["eager", "compiled"])
def test_negate_from_gives_scores(name, kernel, monkeypatch):
    # gamma - D, written by the kernel's own pass: the same numbers as subtracting afterwards.
    monkeypatch.setattr(D, "_BLOCK_BYTES", 64)
    q, c, w = _inputs()
    expected = _reference(name, q, c, w)
    for gamma in (0.0, 9.0):
        with torch.no_grad():
            out = _call(name, q, c, w, kernel=kernel, negate_from=gamma)
        torch.testing.assert_close(out, gamma - expected)
    c.requires_grad_()  # the autograd path subtracts out of place
    out = _call(name, q, c, w, kernel=kernel, negate_from=2.0)
    torch.testing.assert_close(out, 2.0 - _reference(name, q, c, w))
    out.sum().backward()
    assert c.grad is not None and torch.isfinite(c.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_compiled_kernel_follows_the_table(name, monkeypatch):
    monkeypatch.setattr(D, "_BLOCK_BYTES", 64)
    kernel_name = COMPILED[name]
    _fresh(kernel_name, monkeypatch)
    q, c, w = _inputs()
    with torch.no_grad():
        _call(name, q, c, w, kernel="compiled")
        if not D.compiled_available(kernel_name):
            pytest.skip("torch.compile does not work here")
        c.mul_(2.0)  # modified in place (an optimiser step): no stale table may answer
        torch.testing.assert_close(_call(name, q, c, w, kernel="compiled"),
                                   _reference(name, q, c, w))
        other = torch.randn_like(c)  # same shape, another tensor
        torch.testing.assert_close(_call(name, q, other, w, kernel="compiled"),
                                   _reference(name, q, other, w))


@pytest.mark.parametrize("name", NAMES)
def test_auto_uses_a_compiled_kernel_for_small_calls(name, monkeypatch):
    # An evaluation's last short batch must not fall back to the ~10x slower eager path.
    kernel_name = COMPILED[name]
    _fresh(kernel_name, monkeypatch)
    calls = []
    cls, method = (NativeKernel, "load") if name == "complex" else (D._CompiledKernel,
                                                                     "__call__")
    original = getattr(cls, method)

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, counted)
    q, c, w = _inputs()
    with torch.no_grad():
        _call(name, q, c, w)  # small, nothing compiled yet: eager
        assert not calls
        _call(name, q, c, w, kernel="compiled")
        if not D.compiled_available(kernel_name):
            pytest.skip("torch.compile does not work here")
        out = _call(name, q, c, w)
    assert len(calls) == 2
    torch.testing.assert_close(out, _reference(name, q, c, w))
