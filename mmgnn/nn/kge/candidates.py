r"""RotatE's distance of fused candidates to rotated queries, the scoring of a negative-sampling
training step whose entity rows are weighted sums of :math:`M` blocks (NativE: ReDAF's combine
of the modality embeddings, :class:`~mmgnn.models.NativE`):

.. math::
    D_i = \sum_{k=1}^{d} |c_{i,k} - q_{i,k}|, \qquad
    \mathbf{c}_i = \sum_{m=1}^{M} w_{i,m}\, \mathbf{X}_{e_i, m}, \qquad
    \mathbf{q}_i = \mathbf{Q}_{j_i}

(complex coordinates stored :obj:`[re | im]`, Sun et al., 2019, Eq. 3; the moduli's gradient
taken as 0 at 0, as :func:`torch.linalg.vector_norm`).

:func:`candidate_modulus` computes it, with gradients for the table :math:`\mathbf{X}`, the
weights :math:`w` and the queries :math:`\mathbf{Q}`, by

* ``"compiled"``: the C kernel ``candidate_modulus.c`` (:mod:`mmgnn.utils.native`), which reads
  each candidate's table row once forward and once backward and adds its gradient straight into
  the table's: no :obj:`(B, K, M, F)` or :obj:`(B, K, F)` intermediates besides one gradient
  buffer. The same formula; float summation order and the square roots (GCC's ``-mrecip``
  estimate with one Newton step for float32, ~2 ulp) differ from the eager path, so results
  agree within float rounding, not bit for bit (float64: ~1e-15). The result does not depend on
  the number of threads.
* ``"eager"``: :class:`CandidateModulus`, the PyTorch operations of the plain chain
  (``F.embedding``, weighted sum, difference, :func:`torch.hypot`, sum), bit-identical to it
  forward, with a backward pass that writes each gradient once.
* ``"auto"`` (default): ``"compiled"`` for float32 / float64 on CPU outside
  :func:`torch.compile` when the kernel builds, else ``"eager"``.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from mmgnn.utils.compile import check_kernel
from mmgnn.utils.native import NativeKernel

_SOURCE = Path(__file__).with_name("candidate_modulus.c")
_P, _L, _I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int


def _kernels(suffix: str) -> dict[str, NativeKernel]:
    return {"forward": NativeKernel(_SOURCE, f"mmgnn_candidate_modulus_forward_{suffix}",
                                    [_P] * 6 + [_L] * 3 + [_I]),
            "backward": NativeKernel(_SOURCE, f"mmgnn_candidate_modulus_backward_{suffix}",
                                     [_P] * 8 + [_L] * 3 + [_I]),
            "scatter": NativeKernel(_SOURCE, f"mmgnn_candidate_modulus_scatter_{suffix}",
                                    [_P] * 6 + [_L] * 5 + [_I])}


#: The C kernels per dtype (float32, float64).
KERNELS = {torch.float32: _kernels("f32"), torch.float64: _kernels("f64")}


class CandidateModulus(torch.autograd.Function):
    r""":math:`D` of the module docstring by PyTorch operations: those of the plain chain
    ``F.embedding(index, table)`` viewed :obj:`(B, K, M, F)`, ``(weights[..., None] *
    rows).sum(-2)``, minus ``F.embedding(which, queries)``, :func:`torch.hypot` of the real
    and imaginary halves, summed, in that order, so the distances are bit-identical to it.

    Its backward pass writes each gradient once: the difference's gradient straight into one
    :obj:`(B, K, F)` tensor (autograd's two slice gradients are zero-filled full tensors, then
    added) and the queries' gradient summed per query row before the sign change (not a negated
    :obj:`(B, K, F)` tensor); the rows' gradients are scattered with
    :meth:`~torch.Tensor.index_add_` in occurrence order, as ``F.embedding``'s backward on
    CPU.

    Shapes: table :obj:`(N, M F)`, index :obj:`(*)`, weights :obj:`(*, M)`, queries
    :obj:`(Q, F)`, which :obj:`(*)`; result :obj:`(*)`."""

    @staticmethod
    def forward(ctx: Any, table: Tensor, index: Tensor, weights: Tensor, queries: Tensor,
                which: Tensor) -> Tensor:
        m, f = weights.size(-1), queries.size(-1)
        d = f // 2
        rows = F.embedding(index, table).view(*index.shape, m, f)
        diff = (weights[..., None] * rows).sum(dim=-2)
        diff = diff.sub_(F.embedding(which, queries))
        moduli = torch.hypot(diff[..., :d], diff[..., d:])
        ctx.save_for_backward(index, weights, which, rows, diff, moduli)
        ctx.sizes = (len(table), len(queries))
        return moduli.sum(dim=-1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        index, weights, which, rows, diff, moduli = ctx.saved_tensors
        n, num_queries = ctx.sizes
        d = diff.size(-1) // 2
        scale = grad[..., None] / moduli.clamp_min(torch.finfo(moduli.dtype).tiny)
        g = torch.empty_like(diff)
        torch.mul(scale, diff[..., :d], out=g[..., :d])
        torch.mul(scale, diff[..., d:], out=g[..., d:])
        g_table = g_weights = g_queries = None
        if ctx.needs_input_grad[0]:
            g_rows = (weights[..., None] * g[..., None, :]).view(-1, rows.shape[-2:].numel())
            g_table = g_rows.new_zeros(n, g_rows.size(-1)).index_add_(0, index.reshape(-1),
                                                                     g_rows)
        if ctx.needs_input_grad[2]:
            g_weights = (g[..., None, :] * rows).sum(dim=-1)
        if ctx.needs_input_grad[3]:
            g_queries = g.new_zeros(num_queries, g.size(-1)).index_add_(
                0, which.reshape(-1), g.view(-1, g.size(-1))).neg_()
        return g_table, None, g_weights, g_queries, None


class _CompiledCandidateModulus(torch.autograd.Function):
    """:class:`CandidateModulus` by the C kernels (contiguous CPU float32 / float64)."""

    @staticmethod
    def forward(ctx: Any, table: Tensor, index: Tensor, weights: Tensor, queries: Tensor,
                which: Tensor) -> Tensor:
        kernels = KERNELS[table.dtype]
        table, queries = table.detach().contiguous(), queries.detach().contiguous()
        weights = weights.detach().contiguous()
        index, which = index.contiguous(), which.contiguous()
        m, f = weights.size(-1), queries.size(-1)
        dist = table.new_empty(index.shape)
        if kernels["forward"](table.data_ptr(), index.data_ptr(), weights.data_ptr(),
                              queries.data_ptr(), which.data_ptr(), dist.data_ptr(),
                              index.numel(), m, f // 2, torch.get_num_threads()):
            raise MemoryError("candidate_modulus.c could not allocate its row buffer")
        ctx.save_for_backward(table, index, weights, queries, which)
        return dist

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        table, index, weights, queries, which = ctx.saved_tensors
        kernels = KERNELS[table.dtype]
        grad = grad.to(table.dtype).contiguous()
        n, m, f = index.numel(), weights.size(-1), queries.size(-1)
        threads = torch.get_num_threads()
        g = table.new_empty(n, f)
        g_weights = weights.new_empty(weights.shape) if ctx.needs_input_grad[2] else None
        kernels["backward"](table.data_ptr(), index.data_ptr(), weights.data_ptr(),
                            queries.data_ptr(), which.data_ptr(), grad.data_ptr(), g.data_ptr(),
                            0 if g_weights is None else g_weights.data_ptr(), n, m, f // 2,
                            threads)
        g_table = torch.zeros_like(table) if ctx.needs_input_grad[0] else None
        g_queries = torch.zeros_like(queries) if ctx.needs_input_grad[3] else None
        if g_table is not None or g_queries is not None:
            kernels["scatter"](index.data_ptr(), weights.data_ptr(), which.data_ptr(),
                               g.data_ptr(), 0 if g_table is None else g_table.data_ptr(),
                               0 if g_queries is None else g_queries.data_ptr(), n, m, f // 2,
                               len(table), len(queries), threads)
        return g_table, None, g_weights, g_queries, None


def candidate_modulus(table: Tensor, index: Tensor, weights: Tensor, queries: Tensor,
                      which: Tensor, kernel: str = "auto") -> Tensor:
    r""":math:`D` of the module docstring: table :obj:`(N, M F)` (:math:`F = 2d`, each block
    :obj:`[re | im]`), candidate ids ``index`` :obj:`(*)`, weights :obj:`(*, M)`, queries
    :obj:`(Q, F)`, query ids ``which`` :obj:`(*)`; returns :obj:`(*)`. ``kernel``:
    ``"auto"``, ``"compiled"`` or ``"eager"`` (see the module docstring)."""
    check_kernel(kernel)
    m, f = weights.size(-1), queries.size(-1)
    if f % 2 or table.size(-1) != m * f or table.dim() != 2:
        raise ValueError(f"candidate_modulus expects a table (N, M * F) with M = {m} blocks of "
                         f"the queries' even width F = {f}, got {tuple(table.shape)}")
    if index.shape != which.shape or weights.shape[:-1] != index.shape:
        raise ValueError(f"candidate_modulus expects index, which (*) and weights (*, M) of one "
                         f"shape, got {tuple(index.shape)}, {tuple(which.shape)} and "
                         f"{tuple(weights.shape)}")
    for ids, rows, name in ((index, table, "index"), (which, queries, "which")):
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(rows)):
            raise IndexError(f"candidate_modulus: {name} holds ids outside [0, {len(rows)})")
    if kernel_applies(kernel, table, index, weights, queries, which):
        return _CompiledCandidateModulus.apply(table, index, weights, queries, which)
    return CandidateModulus.apply(table, index, weights, queries, which)


def kernel_applies(kernel: str, table: Tensor, index: Tensor, weights: Tensor,
                   queries: Tensor, which: Tensor) -> bool:
    """Whether :func:`candidate_modulus` with ``kernel`` runs the C kernel on these inputs:
    not ``"eager"``, not inside :func:`torch.compile`, a non-empty call with int64 ids and
    float32 / float64 tensors of one dtype on the CPU, and the kernel builds. Callers with a
    plain PyTorch formula of their own (:meth:`~mmgnn.nn.kge.RotatE.score_corruptions`) keep
    it where this is :obj:`False`."""
    dtype = table.dtype
    return (kernel != "eager" and dtype in KERNELS and index.numel() > 0
            and not torch.compiler.is_compiling()
            and all(t.device.type == "cpu" and t.dtype == dtype
                    for t in (table, weights, queries))
            and index.dtype == which.dtype == torch.long
            and all(k.load() is not None for k in KERNELS[dtype].values()))


__all__ = ["CandidateModulus", "KERNELS", "candidate_modulus", "kernel_applies"]
