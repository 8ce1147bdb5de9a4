r"""Exact 1-to-all distance kernels of the distance-based decoders (TransE, RotatE, PairRE).

A distance decoder scores :math:`B` queries against :math:`N` candidates through a distance
matrix :math:`D \in \mathbb{R}^{B \times N}`. Squared-L2 distances reduce to a matrix product;
L1 distances and sums of complex moduli do not, and the naive broadcast
``(q[:, None] - c[None]).abs().sum(-1)`` builds a :obj:`(B, N, d)` tensor. The functions here
never do: they pick, per call, the fastest *exact* path (same formula; only the floating-point
summation order differs):

* ``"compiled"``: for the L1 distances, the broadcast formula compiled by :func:`torch.compile`
  (TorchInductor), which fuses subtraction, modulus and sum into one loop nest with no
  intermediate at all, run on transposed blocks of ~512 KiB of candidates so that every query
  sweeps a block while it sits in the L2 cache. On a 2-core AVX-512 CPU (B=1024, N=14,541,
  d=200) it is ~4.5x faster than :func:`torch.cdist` (``benchmarks/decoder_kernels.py``).
  The first call compiles (about 15 s, cached on disk across processes). For the complex
  modulus, the C kernel ``complex_modulus.c`` (:mod:`mmgnn.utils.native`): the same loop
  nest, but its square roots are GCC's ``-mrecip`` estimate refined by one Newton step, which
  Inductor cannot emit; the loop is bound by them, and it runs 1.2-1.4x faster than the
  compiled formula (float32 only; ~2 ulp per modulus, below the summation error of the sum
  over :math:`d` terms; a zero modulus is exactly 0). If compilation fails for any reason, a
  warning is issued once and the eager path is used from then on.
* ``"eager"``: :func:`torch.cdist` (``p=1``) for the unweighted L1 distance: it computes the
  distances, and their gradient, without a :obj:`(B, N, d)` intermediate; the chunked
  broadcast of :func:`~mmgnn.nn.kge.base.chunked_one_to_all` for the other two.
* ``"auto"`` (default): ``"compiled"`` when no gradient is needed and the call is worth a
  compilation (at least :data:`COMPILE_MIN_ELEMENTS` = :math:`B \cdot N \cdot d` elements) or
  the kernel was compiled already; ``"eager"`` otherwise, so small problems (unit tests, toy
  graphs) never compile. The C kernel takes float32 on CPU; other calls take the eager path.

Whenever gradients are needed the eager path is used whatever ``kernel`` says (the compiled
kernels are forward-only); the chunked broadcast then checkpoints its chunks, so its memory stays
bounded in the backward pass too.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from mmgnn.nn.kge.base import DEFAULT_CHUNK_ELEMENTS, chunked_one_to_all
from mmgnn.utils.compile import LazyCompiled, check_kernel
from mmgnn.utils.native import NativeKernel

# Below this many (query, candidate, coordinate) triples a call takes milliseconds in eager mode,
# less than a compilation costs; "auto" then stays eager.
COMPILE_MIN_ELEMENTS = 2**26

# Candidate rows per compiled call: a block of this many bytes stays in the (>= 1 MiB) L2 cache
# while all queries sweep it. Measured on the benchmark shapes: 256 KiB-1 MiB are equally fast;
# one unblocked call is 1.4-2x slower (the candidate table streams from memory once per query).
_BLOCK_BYTES = 2**19


class _SafeSqrt(torch.autograd.Function):
    r""":math:`\sqrt{\max(x, 0)}` whose gradient is 0 where the result is 0 (the subgradient
    :func:`torch.linalg.vector_norm` uses) instead of :math:`\infty \cdot 0` = NaN; only the
    result is kept for the backward pass."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.clamp_min(0.0).sqrt_()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (out,) = ctx.saved_tensors
        return torch.where(out > 0, grad / (2 * out), torch.zeros_like(grad))


def safe_sqrt(x: Tensor) -> Tensor:
    r"""Element-wise :math:`\sqrt{\max(x, 0)}` (exact forward) with gradient 0 where
    :math:`x \le 0`."""
    return _SafeSqrt.apply(x)


# ------------------------------------------------------------------ broadcast formulas
# Each maps queries (B, ...) and a slice of candidates (C, ...) to distances (B, C), eagerly
# (the unweighted L1 distance needs none: torch.cdist computes it without an intermediate).
# Without autograd they work in place: one or two (B, C, d) allocations instead of three or
# four, which halves their time on the benchmark shapes.
def _weighted_l1(q: Tensor, c: Tensor, w: Tensor) -> Tensor:
    if torch.is_grad_enabled():
        return (q[:, None, :] - w[:, None, :] * c[None, :, :]).abs().sum(-1)
    return (w[:, None, :] * c[None, :, :]).sub_(q[:, None, :]).abs_().sum(-1)


def _complex_modulus(q: Tensor, c: Tensor) -> Tensor:
    d = q.size(-1) // 2
    re = q[:, None, :d] - c[None, :, :d]
    im = q[:, None, d:] - c[None, :, d:]
    if torch.is_grad_enabled():
        return safe_sqrt(re * re + im * im).sum(-1)
    return re.mul_(re).addcmul_(im, im).sqrt_().sum(-1)


# The same formulas on a transposed candidate block (d, C), handed to torch.compile: Inductor
# then vectorises along the candidates and sums over d without a horizontal reduction per output
# (~20% faster than compiling the row-major formulas for L1; equal for the complex modulus).
# ``offset`` and ``sign`` (0-d tensors) give ``offset + sign * D``: a decoder's score (``-D``
# for TransE, ``margin - D`` for RotatE) written by the same pass, where a separate subtraction
# cost another pass over the (B, N) matrix, 10-15% of an evaluation.
def _l1_t(q: Tensor, ct: Tensor, offset: Tensor, sign: Tensor) -> Tensor:
    return offset + sign * (q[:, :, None] - ct[None, :, :]).abs().sum(1)


# Queries per loop iteration of the L1 kernel. Written as G reductions over the same candidate
# block (queries laid out (d, B/G, G)), Inductor fuses them into one loop that loads each
# candidate vector once for G queries and keeps G independent accumulators: 1.5-1.9x faster
# than one query per iteration on the benchmark shapes (2-core AVX-512 CPU, one thread), same
# summation order, so the same numbers. The complex modulus does not gain (its square roots
# bound it).
L1_QUERY_GROUP = 8


def _l1_grouped_t(qg: Tensor, ct: Tensor, offset: Tensor, sign: Tensor) -> Tensor:
    out = torch.stack([(qg[:, :, j, None] - ct[:, None, :]).abs().sum(0)
                       for j in range(L1_QUERY_GROUP)], dim=1)
    return offset + sign * out.flatten(0, 1)


def _group_queries(q: Tensor) -> Tensor:
    """Queries :obj:`(B, d)` as :obj:`(d, B'/G, G)` for :func:`_l1_grouped_t`, zero-padded to a
    multiple :math:`B'` of :data:`L1_QUERY_GROUP` (the padding rows are cut from the
    output)."""
    pad = -len(q) % L1_QUERY_GROUP
    if pad:
        q = torch.cat([q, q.new_zeros(pad, q.size(1))])
    return q.view(-1, L1_QUERY_GROUP, q.size(1)).permute(2, 0, 1).contiguous()


def _weighted_l1_t(q: Tensor, ct: Tensor, offset: Tensor, sign: Tensor, w: Tensor) -> Tensor:
    return offset + sign * (q[:, :, None] - w[:, :, None] * ct[None, :, :]).abs().sum(1)


class _CompiledKernel:
    """A transposed broadcast formula, compiled lazily (:class:`~mmgnn.utils.compile.LazyCompiled`)
    and run on blocks of candidates; returns :obj:`None` when compilation is unavailable, so
    callers fall back to the eager path.

    The candidate table is transposed afresh on every call. Keeping the last table's blocks
    across calls (same object, same version counter) saved ~5% of an evaluation but answered
    with a stale table during MMRNS training, where the sampler's pool table changed without
    the cache seeing it (the Nations MMRNS learning tests fell to chance after another test
    had compiled the kernel)."""

    def __init__(self, fn: Callable[..., Tensor],
                 prepare: Callable[[Tensor], Tensor] | None = None) -> None:
        self.fn = fn
        self.prepare = prepare  # the queries' layout the kernel takes, if not (B, d)
        self.kernel = LazyCompiled(fn)

    @property
    def failed(self) -> bool:
        return self.kernel.failed

    def blocks(self, candidates: Tensor) -> list[Tensor]:
        """The transposed blocks :obj:`(d, C)` of ``candidates``."""
        row_bytes = candidates.size(-1) * candidates.element_size()
        rows = max(16, _BLOCK_BYTES // row_bytes)
        return [c.t().contiguous() for c in candidates.split(rows)]

    def __call__(self, q: Tensor, candidates: Tensor, *extra: Tensor,
                 negate_from: float | None = None) -> Tensor | None:
        if self.failed or q.numel() == 0 or candidates.numel() == 0:
            return None
        offset = torch.tensor(0.0 if negate_from is None else negate_from, dtype=q.dtype)
        sign = torch.tensor(1.0 if negate_from is None else -1.0, dtype=q.dtype)
        queries = q if self.prepare is None else self.prepare(q)
        out = []
        for ct in self.blocks(candidates):
            block = self.kernel(queries, ct, offset, sign, *extra)
            if block is None:
                return None
            out.append(block if len(block) == len(q) else block[:len(q)])
        return out[0] if len(out) == 1 else torch.cat(out, dim=1)


_COMPILED = {"l1": _CompiledKernel(_l1_grouped_t, _group_queries),
             "weighted_l1": _CompiledKernel(_weighted_l1_t)}

#: RotatE's distance as a C kernel (see the module docstring): float32 queries (B, 2d) and
#: candidates (N, 2d), row-major; it fills the columns [n0, n1) of out (B, N).
COMPLEX_MODULUS = NativeKernel(
    Path(__file__).with_name("complex_modulus.c"), "mmgnn_complex_modulus",
    [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_long,
     ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_float, ctypes.c_float,
     ctypes.c_int])


def compiled_available(name: str) -> bool:
    """Whether the compiled kernel ``name`` (``"l1"``, ``"weighted_l1"`` or
    ``"complex_modulus"``) has not failed so far."""
    if name == "complex_modulus":
        return not COMPLEX_MODULUS.failed
    return not _COMPILED[name].failed


def _wants_kernel(kernel: str, built: bool, q: Tensor, candidates: Tensor,
                  *extra: Tensor) -> bool:
    """Whether ``kernel`` and the call let a compiled kernel (``built`` already, or not)
    run: not ``"eager"``, not inside an outer :func:`torch.compile` (the eager formula gets
    fused there anyway), no gradient, and for ``"auto"`` a call worth a compilation unless
    the kernel is built: once built (by a large call), small calls use it too, since an
    evaluation's last, short batches took ~20% of a RotatE evaluation on the eager path."""
    if kernel == "eager" or torch.compiler.is_compiling() or _needs_grad(q, candidates, *extra):
        return False
    return (kernel != "auto" or built
            or q.size(0) * candidates.numel() >= COMPILE_MIN_ELEMENTS)


def _native_complex_modulus(kernel: str, q: Tensor, candidates: Tensor,
                            negate_from: float | None) -> Tensor | None:
    """:func:`complex_distance` by the C kernel, or :obj:`None` where ``kernel`` or the call
    does not allow it (:func:`_wants_kernel`; and only non-empty float32 on CPU)."""
    if any(t.dtype != torch.float32 or t.device.type != "cpu" or t.numel() == 0
           for t in (q, candidates)):
        return None
    if not _wants_kernel(kernel, COMPLEX_MODULUS.function is not None, q, candidates):
        return None
    fn = COMPLEX_MODULUS.load()
    if fn is None:
        return None
    q, candidates = q.detach().contiguous(), candidates.detach().contiguous()
    (b, two_d), n = q.shape, len(candidates)
    out = torch.empty(b, n)
    offset, sign = (0.0, 1.0) if negate_from is None else (float(negate_from), -1.0)
    if fn(q.data_ptr(), candidates.data_ptr(), out.data_ptr(), b, n, two_d // 2, 0, n,
          offset, sign, torch.get_num_threads()):
        raise MemoryError("complex_modulus.c could not allocate its tile buffer")
    return out


def _try_compiled(name: str, kernel: str, q: Tensor, candidates: Tensor,
                  *extra: Tensor, negate_from: float | None = None) -> Tensor | None:
    """Runs the compiled kernel if ``kernel`` and the call allow it (:func:`_wants_kernel`),
    else returns ``None``."""
    compiled = _COMPILED[name]
    if not _wants_kernel(kernel, compiled.kernel.compiled is not None, q, candidates, *extra):
        return None
    return compiled(q, candidates, *extra, negate_from=negate_from)


def _subtracted_from(value: float | None, distances: Tensor) -> Tensor:
    """``value - distances`` (in place when no gradient flows), or ``distances`` for
    :obj:`None`."""
    if value is None:
        return distances
    if distances.requires_grad:
        return value - distances
    return distances.neg_().add_(value) if value else distances.neg_()


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


# ------------------------------------------------------------------ public kernels
def l1_distance(q: Tensor, candidates: Tensor, weight: Tensor | None = None, *,
                kernel: str = "auto", chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
                negate_from: float | None = None) -> Tensor:
    r"""All-pairs (weighted) L1 distances

    .. math::
        D_{bn} = \sum_k |q_{bk} - w_{bk}\, c_{nk}|

    (:math:`w = 1` when ``weight`` is ``None``: TransE; a per-query weight gives PairRE's
    :math:`\|\hat{h} \circ r^H - \hat{t} \circ r^T\|_1` against every tail :math:`\hat t`).

    Args:
        q (Tensor): Queries :obj:`(B, d)`.
        candidates (Tensor): Candidates :obj:`(N, d)`.
        weight (Tensor, optional): Per-query coordinate weights :obj:`(B, d)`.
            (default: :obj:`None`)
        kernel (str): ``"auto"``, ``"compiled"`` or ``"eager"`` (see the module docstring).
            (default: :obj:`"auto"`)
        chunk_elements (int): Memory bound of the chunked path. (default: :obj:`2**22`)
        negate_from (float, optional): Return the scores :math:`\gamma - D` for
            :math:`\gamma` = ``negate_from`` instead of :math:`D` (the compiled kernel writes
            them in its one pass; exactly the same numbers). (default: :obj:`None`)

    Returns:
        Tensor: :obj:`(B, N)`.
    """
    if weight is None:
        out = _try_compiled("l1", kernel, q, candidates, negate_from=negate_from)
        if out is not None:
            return out
        return _subtracted_from(negate_from, torch.cdist(q, candidates, p=1.0))
    out = _try_compiled("weighted_l1", kernel, q, candidates, weight, negate_from=negate_from)
    if out is not None:
        return out
    return _subtracted_from(negate_from, chunked_one_to_all(
        lambda c: _weighted_l1(q, c, weight), len(q), candidates, chunk_elements))


def complex_distance(q: Tensor, candidates: Tensor, *, kernel: str = "auto",
                     chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
                     negate_from: float | None = None) -> Tensor:
    r"""All-pairs sums of complex moduli (RotatE's distance)

    .. math::
        D_{bn} = \sum_{k=1}^{d} |q_{bk} - c_{nk}|, \qquad
        |z| = \sqrt{\operatorname{Re}(z)^2 + \operatorname{Im}(z)^2}

    for complex vectors stored as real tensors laid out :obj:`[re | im]`. The gradient of a
    zero modulus is 0, as with :func:`torch.linalg.vector_norm` in the official RotatE code.

    Args:
        q (Tensor): Queries :obj:`(B, 2d)`.
        candidates (Tensor): Candidates :obj:`(N, 2d)`.
        kernel (str): ``"auto"``, ``"compiled"`` or ``"eager"``. (default: :obj:`"auto"`)
        chunk_elements (int): Memory bound of the chunked path. (default: :obj:`2**22`)
        negate_from (float, optional): Return :math:`\gamma - D` for :math:`\gamma` =
            ``negate_from`` (RotatE's scores) instead of :math:`D`. (default: :obj:`None`)

    Returns:
        Tensor: :obj:`(B, N)`.
    """
    check_kernel(kernel)
    out = _native_complex_modulus(kernel, q, candidates, negate_from)
    if out is not None:
        return out
    return _subtracted_from(negate_from, chunked_one_to_all(
        lambda c: _complex_modulus(q, c), len(q), candidates, chunk_elements))


def _l2_from_dots(dots: Tensor, q_sq: Tensor, c_sq: Tensor) -> Tensor:
    return (q_sq[:, None] + c_sq[None, :] - 2.0 * dots).clamp_min(0.0).sqrt()


_L2_FROM_DOTS = LazyCompiled(_l2_from_dots)

# Below this many distances an eager call takes microseconds, less than a compilation.
_L2_COMPILE_MIN = 2**18


def l2_distance(q: Tensor, candidates: Tensor) -> Tensor:
    r"""All-pairs Euclidean distances by one matrix product

    .. math::
        D_{bn} = \sqrt{\max(0,\ \|q_b\|^2 + \|c_n\|^2 - 2\, q_b \cdot c_n)}

    (clamped at 0 against cancellation; the gradient of a zero distance is 0). Without
    gradients on CPU, everything after the product is one compiled pass over the
    :obj:`(B, N)` matrix (:mod:`mmgnn.utils.compile`; eager fallback), instead of four.

    Args:
        q (Tensor): Queries :obj:`(B, d)`.
        candidates (Tensor): Candidates :obj:`(N, d)`.

    Returns:
        Tensor: :obj:`(B, N)`.
    """
    if _needs_grad(q, candidates):
        norms = q.square().sum(-1, keepdim=True) + candidates.square().sum(-1)
        return safe_sqrt(torch.addmm(norms, q, candidates.t(), alpha=-2.0))
    if (q.device.type == "cpu" and q.size(0) * candidates.size(0) >= _L2_COMPILE_MIN
            and not torch.compiler.is_compiling()):
        out = _L2_FROM_DOTS(q @ candidates.t(), q.square().sum(-1), candidates.square().sum(-1))
        if out is not None:
            return out
    norms = q.square().sum(-1, keepdim=True) + candidates.square().sum(-1)
    return torch.addmm(norms, q, candidates.t(), alpha=-2.0).clamp_min_(0.0).sqrt_()


# ------------------------------------------------------------------ anchored L1 distance
# The same formulas for the compiled and the eager path. In eager mode they gather through
# index_select (advanced indexing is several times slower on CPU) and work in place.
def _select_anchors(a: Tensor, side: Tensor) -> Tensor:
    """``a[b, side[b, k]]`` as :obj:`(B, K, d)`."""
    rows = torch.arange(a.size(0), device=a.device)[:, None] * a.size(1) + side
    return a.flatten(0, 1).index_select(0, rows.flatten()).view(*side.shape, a.size(-1))


def _anchored_l1_forward(a: Tensor, c: Tensor, side: Tensor, ic: Tensor) -> Tensor:
    cand = c.index_select(0, ic.flatten()).view(*ic.shape, c.size(-1))
    return (_select_anchors(a, side) - cand).abs_().sum(-1)


def _anchored_l1_backward(a: Tensor, c: Tensor, side: Tensor, ic: Tensor,
                          grad: Tensor) -> tuple[Tensor, Tensor]:
    cand = c.index_select(0, ic.flatten()).view(*ic.shape, c.size(-1))
    # d|a - c| / dc = sign(c - a): the rows to accumulate into the candidates' gradient.
    grad_cand = (cand - _select_anchors(a, side)).sign_().mul_(grad[..., None])
    # Each anchor's gradient is minus the sum over its own corruptions: a reduction over K,
    # not a scatter.
    grad_a = torch.stack([(grad_cand * (side == s)[..., None]).sum(1) for s in range(a.size(1))],
                         dim=1).neg_()
    return grad_cand, grad_a


_ANCHORED = {"forward": LazyCompiled(_anchored_l1_forward),
             "backward": LazyCompiled(_anchored_l1_backward)}


class _AnchoredL1(torch.autograd.Function):
    """Forward and backward of :func:`anchored_l1_distance`; only the inputs are saved, the
    differences are recomputed in the backward pass."""

    @staticmethod
    def forward(ctx, a: Tensor, c: Tensor, side: Tensor, ic: Tensor, compiled: bool) -> Tensor:
        ctx.save_for_backward(a, c, side, ic)
        ctx.compiled = compiled
        out = _ANCHORED["forward"](a, c, side, ic) if compiled else None
        return _anchored_l1_forward(a, c, side, ic) if out is None else out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        a, c, side, ic = ctx.saved_tensors
        grad = grad.contiguous()
        out = _ANCHORED["backward"](a, c, side, ic, grad) if ctx.compiled else None
        grad_cand, grad_a = _anchored_l1_backward(a, c, side, ic, grad) if out is None else out
        grad_c = None
        if ctx.needs_input_grad[1]:
            # The sort-based kernel of embedding's backward: several times faster on CPU than
            # index_add_, which scatters row by row.
            grad_c = torch.ops.aten.embedding_dense_backward(
                grad_cand.flatten(0, -2), ic.flatten(), len(c), -1, False)
        return grad_a, grad_c, None, None, None


def anchored_l1_distance(a: Tensor, c: Tensor, side: Tensor, ic: Tensor, *,
                         kernel: str = "auto") -> Tensor:
    r"""L1 distances between per-row anchors and gathered candidate rows

    .. math::
        D_{bk} = \sum_j |a_{b,\,s_{bk},\,j} - c_{i_{bk},\,j}|

    without the :obj:`(B, K, d)` gathered intermediates that the plain formula and its backward
    pass build several of. This is TransE-L1 training with :math:`K` corruptions per triple:
    anchor 0 of triple :math:`b` is :math:`e_h + r`, anchor 1 is :math:`e_t - r`, and a
    corruption replacing the tail (:math:`s = 0`) or the head (:math:`s = 1`) by entity
    :math:`i` scores :math:`-D`, since :math:`|e_i + r - e_t| = |e_i - (e_t - r)|`.

    Compiled, the forward pass is one loop with no intermediate. Either way only the inputs are
    kept for the backward pass, which recomputes the signs of the differences once: the anchors'
    gradient is a reduction over :math:`K`, the candidates' rows are accumulated by the
    sort-based kernel of :func:`torch.nn.functional.embedding`'s backward. Exact: only the
    summation order differs from autograd on the plain formula; the gradient of :math:`|0|` is
    0, as with :func:`torch.abs`.

    Args:
        a (Tensor): Anchors :obj:`(B, S, d)`.
        c (Tensor): Candidate table :obj:`(N, d)`.
        side (Tensor): Anchor of each distance, :obj:`(B, K)` in :math:`[0, S)`.
        ic (Tensor): Candidate row of each distance, :obj:`(B, K)`.
        kernel (str): ``"compiled"`` fuses gather, difference and sum
            (:mod:`mmgnn.utils.compile`), ``"eager"`` uses plain PyTorch, ``"auto"`` compiles on CPU
            for at least :data:`COMPILE_MIN_ELEMENTS` / 16 elements. (default: ``"auto"``)

    Returns:
        Tensor: :obj:`(B, K)`.
    """
    if a.dim() != 3 or side.dim() != 2 or side.shape != ic.shape or side.size(0) != a.size(0):
        raise ValueError(f"expected anchors (B, S, d) and side, ic of shape (B, K), got "
                         f"{tuple(a.shape)}, {tuple(side.shape)} and {tuple(ic.shape)}")
    check_kernel(kernel)
    compiled = kernel == "compiled" or (
        kernel == "auto" and a.device.type == "cpu"
        and side.numel() * a.size(-1) >= COMPILE_MIN_ELEMENTS // 16)
    compiled = compiled and not torch.compiler.is_compiling()
    return _AnchoredL1.apply(a, c, side.long(), ic, compiled)
