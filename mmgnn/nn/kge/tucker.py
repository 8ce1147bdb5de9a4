"""TuckER (Balažević et al., 2019)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mmgnn.nn import dropout as dropout_masks
from mmgnn.nn.kge.base import KGEDecoder

CORE_INITS = ("uniform", "xavier_uniform")
# Rows of W_r handled at once: at most ROW_BLOCK_ELEMENTS / d^2 matrices (2 MiB of float32,
# the L2 cache of the machine measured), a working set that stays in cache across the gather,
# mask and product of a block; fewer if the decoder's chunk_elements is smaller.
ROW_BLOCK_ELEMENTS = 2**19
# The dropout masks and masked matrices are kept for the backward pass when they hold at most
# KEEP_CHUNKS * chunk_elements elements (IMF's 256 x 256 x 256 at the default 2**22), else
# drawn again there from the same seed: autograd's memory stays a multiple of the bound.
KEEP_CHUNKS = 8


class _RowContract(torch.autograd.Function):
    r"""Rows :math:`\mathbf{y}_m = \mathbf{x}_m\, \mathrm{drop}_p(\mathbf{W}_{u_m})` (or
    :math:`\mathrm{drop}_p(\mathbf{W}_{u_m})\, \mathbf{x}_m` if ``transpose``), a dropout
    mask per row, from the matrices :math:`\mathbf{W}_u` :obj:`(U, d, d)` of the distinct
    relations of the batch (``inverse`` :obj:`(M,)` picks each row's).

    The official code gathers one :obj:`(d, d)` matrix per row and drops out the
    :obj:`(M, d, d)` stack; autograd then keeps that stack and a float mask, and scatters an
    :obj:`(M, d, d)` gradient into the distinct relations. Here every pass works on blocks of
    rows that stay in cache (gather, mask, product; in the backward the masked outer products
    :math:`\mathbf{x}_m^\top \mathbf{g}_m` added into their relation's gradient): the same
    function and gradients (``tests/nn/kge/test_tucker.py`` checks them against the stacked
    form). The masks (:func:`~mmgnn.nn.dropout.keep_mask`, from a generator seeded by one draw
    of torch's) and the masked blocks are kept for the backward pass up to ``keep_elements``
    elements and drawn again from the seed beyond; blocks hold at most ``block_elements``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, mats: Tensor, inverse: Tensor, p: float, transpose: bool,
                seed: int | None, block_elements: int, keep_elements: int) -> Tensor:
        m, d = x.shape
        step = max(1, block_elements // (d * d))
        gen = torch.Generator(device=x.device).manual_seed(seed) if p > 0.0 else None
        # Kept for the backward pass, block by block: the masks and the masked matrices
        # (no gather, no mask product again there).
        keep = (p > 0.0 and 2 * m * d * d <= keep_elements
                and any(ctx.needs_input_grad[:2]))
        blocks: list[tuple[Tensor, Tensor]] = []
        out = x.new_empty(m, d)
        for s in range(0, m, step):
            rows = slice(s, s + step)
            w = mats[inverse[rows]]
            if gen is not None:
                mask = dropout_masks.keep_mask(w, p, gen)
                w = w.mul_(mask)
                if keep:
                    blocks.append((mask, w))
            # y = W x is computed as x W^T: a (1, d) x (d, d) product per row.
            out[rows] = torch.bmm(x[rows, None, :], w.transpose(1, 2) if transpose
                                  else w).squeeze(1)
        if p > 0.0:
            out = out.mul_(1.0 / (1.0 - p)) if p < 1.0 else out.zero_()
        ctx.save_for_backward(x, mats, inverse)
        ctx.blocks = blocks if keep else None
        ctx.p, ctx.transpose, ctx.seed, ctx.step = p, transpose, seed, step
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, mats, inverse = ctx.saved_tensors
        p, step, blocks = ctx.p, ctx.step, ctx.blocks
        ctx.blocks = None
        if p >= 1.0:
            return torch.zeros_like(x), torch.zeros_like(mats), *[None] * 6
        grad = grad * (1.0 / (1.0 - p)) if p > 0.0 else grad
        gen = None
        if p > 0.0 and blocks is None:
            gen = torch.Generator(device=x.device).manual_seed(ctx.seed)
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = torch.empty_like(x) if need_x else None
        grad_w = torch.zeros_like(mats) if need_w else None
        for k, s in enumerate(range(0, len(x), step)):
            rows = slice(s, s + step)
            idx = inverse[rows]
            g, xr = grad[rows], x[rows]
            mask = None
            if blocks is not None:
                mask, w = blocks[k]
            else:
                w = mats[idx]
                if gen is not None:
                    mask = dropout_masks.keep_mask(w, p, gen)
                    w = w.mul_(mask)
            if need_x:
                # y = x W: dx = g W^T;  y = W x: dx = W^T g = g W.
                grad_x[rows] = torch.bmm(g[:, None, :], w if ctx.transpose
                                         else w.transpose(1, 2)).squeeze(1)
            if need_w:
                outer = (g[:, :, None] * xr[:, None, :] if ctx.transpose
                         else xr[:, :, None] * g[:, None, :])
                if mask is not None:
                    outer = outer.mul_(mask)
                grad_w.index_add_(0, idx, outer)
        return grad_x, grad_w, *[None] * 6


class TuckER(KGEDecoder):
    r"""The Tucker-decomposition decoder from `"TuckER: Tensor Factorization for Knowledge
    Graph Completion" <https://arxiv.org/abs/1901.09590>`_ (Balažević et al., 2019, Eq. 2)

    .. math::
        f(h, r, t) = \mathcal{W} \times_1 \mathbf{w}_r \times_2 \mathbf{e}_h
        \times_3 \mathbf{e}_t
        = \sum_{j, i, k} \mathcal{W}_{jik}\, w_{r,j}\, e_{h,i}\, e_{t,k}

    with a core tensor :math:`\mathcal{W} \in \mathbb{R}^{d_r \times d_e \times d_e}` shared by
    all relations. As in the official code (``ibalazevic/TuckER``, ``model.py``) the score of a
    query is computed as

    .. math::
        \mathbf{x} = \mathrm{BN}_0(\mathbf{e}_h) \rightarrow \mathrm{drop}_{in}
        \rightarrow \mathbf{x}\, \mathrm{drop}_1(\mathbf{W}_r) \rightarrow \mathrm{BN}_1
        \rightarrow \mathrm{drop}_2, \qquad f = \mathbf{x} \cdot \mathbf{e}_t,
        \qquad \mathbf{W}_r = \textstyle\sum_j w_{r,j}\, \mathcal{W}_j,

    so 1-to-all tail scoring is the matrix product :math:`\mathbf{X}\mathbf{E}^\top`. Defaults
    and initialisation follow the official code: dropouts 0.3 / 0.4 / 0.5, relations and
    entities :math:`\mathcal{N}` with Xavier scaling, :math:`\mathcal{W} \sim
    \mathcal{U}(-1, 1)`. Batch norm and dropout make scores depend on the batch in training
    mode; in evaluation mode every path below computes the same function.

    :math:`\mathbf{W}_r` is built once per distinct relation of a batch; the rows
    :math:`\mathbf{x}\,\mathrm{drop}_1(\mathbf{W}_r)` (the official code's row-wise
    :math:`\mathrm{drop}_1` mask needs one matrix per row) are computed in cache-sized blocks
    of rows by one autograd function that keeps only the bool masks (:class:`_RowContract`), so
    memory stays bounded for negative-sampling batches as well.

    **Relations from outside.** Every scoring method takes an optional ``relations`` table
    :obj:`(R, d_r)` that replaces the decoder's own :math:`\mathbf{w}_r` (row :math:`r` of it
    is used for relation id :math:`r`); with ``own_relations=False`` the decoder holds no
    relation table and one must be given. IMF's fused branch scores with relations fused from
    the other branches this way (spec ``IMF.md``, section 3).

    **Head queries.** TuckER is not symmetric in head and tail and the paper answers
    :math:`(?, r, t)` through reciprocal relations (``reciprocal=True`` of
    :class:`~mmgnn.models.KGEModel`). :meth:`score_h` nevertheless scores every candidate head
    exactly, by contracting :math:`\mathcal{W}` the other way: with the batch norms written as
    affine maps :math:`\mathrm{BN}(x) = a \odot x + b`,

    .. math::
        f(c, r, t) = \mathrm{BN}_0(\mathbf{e}_c) \cdot \big(\mathbf{W}_r (a_1 \odot
        \mathbf{e}_t)\big) + b_1 \cdot \mathbf{e}_t,

    one matrix product over the candidates. In training mode :math:`\mathrm{BN}_0` normalises
    the candidates with their batch statistics (they are the heads of the batch), while
    :math:`\mathrm{BN}_1` uses its running statistics and :math:`\mathrm{drop}_2` masks
    :math:`\mathbf{e}_t` per query: batch statistics and masks per (query, candidate) pair would
    need the :obj:`(B, N, d_e)` intermediate this form avoids.

    Args:
        num_relations (int): Number of relations.
        hidden_channels (int): Entity embedding size :math:`d_e`.
        relation_channels (int, optional): Relation embedding size :math:`d_r`
            (default: :obj:`hidden_channels`).
        input_dropout (float): Dropout on :math:`\mathrm{BN}_0(\mathbf{e}_h)`.
            (default: :obj:`0.3`)
        hidden_dropout1 (float): Dropout on :math:`\mathbf{W}_r`. (default: :obj:`0.4`)
        hidden_dropout2 (float): Dropout on the query after :math:`\mathrm{BN}_1`.
            (default: :obj:`0.5`)
        core_init (str): ``uniform`` (:math:`\mathcal{U}(-1, 1)`, the official TuckER
            code) or ``xavier_uniform`` (IMF's ``TuckERLayer``, spec ``IMF.md``, section 3).
            (default: ``uniform``)
        own_relations (bool): Hold a relation table; without one, every call needs
            ``relations``. (default: :obj:`True`)
        **kwargs: ``chunk_elements`` of :class:`~mmgnn.nn.kge.base.KGEDecoder`.

    Shapes:
        - **entities:** :math:`(*, d_e)`; scores as in :class:`~mmgnn.nn.kge.base.KGEDecoder`
          (:meth:`score_hrt` broadcasts over leading dimensions).
    """

    def __init__(self, num_relations: int, hidden_channels: int,
                 relation_channels: int | None = None, input_dropout: float = 0.3,
                 hidden_dropout1: float = 0.4, hidden_dropout2: float = 0.5,
                 core_init: str = "uniform", own_relations: bool = True, **kwargs) -> None:
        super().__init__(num_relations, hidden_channels, **kwargs)
        if core_init not in CORE_INITS:
            raise ValueError(f"core_init must be one of {CORE_INITS}, got {core_init!r}")
        self.relation_channels = relation_channels or hidden_channels
        self.core_init = core_init
        if own_relations:
            self.rel_emb = torch.nn.Embedding(num_relations, self.relation_channels)
        else:
            self.register_module("rel_emb", None)
        self.core = torch.nn.Parameter(
            torch.empty(self.relation_channels, hidden_channels, hidden_channels))
        self.bn0 = torch.nn.BatchNorm1d(hidden_channels)
        self.bn1 = torch.nn.BatchNorm1d(hidden_channels)
        self.input_dropout = torch.nn.Dropout(input_dropout)
        self.hidden_dropout1 = torch.nn.Dropout(hidden_dropout1)
        self.hidden_dropout2 = torch.nn.Dropout(hidden_dropout2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.rel_emb is not None:
            torch.nn.init.xavier_normal_(self.rel_emb.weight)
        if self.core_init == "uniform":
            torch.nn.init.uniform_(self.core, -1.0, 1.0)
        else:
            torch.nn.init.xavier_uniform_(self.core)
        self.bn0.reset_parameters()
        self.bn1.reset_parameters()

    @torch.no_grad()
    def reset_entity_parameters(self, weight: Tensor) -> None:
        torch.nn.init.xavier_normal_(weight)

    # ------------------------------------------------------------ contractions
    def relation_table(self, relations: Tensor | None = None) -> Tensor:
        """The relation vectors :obj:`(R, d_r)` to score with: ``relations`` if given, else
        the decoder's own."""
        if relations is not None:
            if relations.shape != (self.num_relations, self.relation_channels):
                raise ValueError(f"relations must be ({self.num_relations}, "
                                 f"{self.relation_channels}), got {tuple(relations.shape)}")
            return relations
        if self.rel_emb is None:
            raise ValueError("this TuckER holds no relation table (own_relations=False): pass "
                             "relations=")
        return self.rel_emb.weight

    def _contract(self, x: Tensor, r: Tensor, transpose: bool = False,
                  relations: Tensor | None = None) -> Tensor:
        r"""Rows :math:`\mathbf{x}_m \mathrm{drop}_1(\mathbf{W}_{r_m})` (or
        :math:`\mathrm{drop}_1(\mathbf{W}_{r_m})\, \mathbf{x}_m` if ``transpose``):
        :obj:`(M, d_e)`, :obj:`(M,)` :math:`\rightarrow` :obj:`(M, d_e)`, with
        :math:`\mathbf{W}_r` built once per distinct relation (:class:`_RowContract`)."""
        d = self.hidden_channels
        uniq, inverse = torch.unique(r, return_inverse=True)
        rel = self.relation_table(relations)[uniq]
        mats = (rel @ self.core.view(self.relation_channels, -1)).view(-1, d, d)
        drop = self.hidden_dropout1
        p = float(drop.p) if drop.training else 0.0
        # The masks' seed is one draw of the global generator, as dropout's masks are.
        seed = int(torch.randint(2**62, (), device="cpu")) if p > 0.0 else None
        return _RowContract.apply(x, mats, inverse, p, transpose, seed,
                                  min(ROW_BLOCK_ELEMENTS, self.chunk_elements),
                                  KEEP_CHUNKS * self.chunk_elements)

    @staticmethod
    def _affine(bn: torch.nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
        """:math:`(a, b)` with ``bn(x) = a * x + b`` under the running statistics."""
        scale = torch.rsqrt(bn.running_var + bn.eps)
        a = bn.weight * scale if bn.affine else scale
        shift = -bn.running_mean * a
        return a, (shift + bn.bias if bn.affine else shift)

    def _batch_norm(self, bn: torch.nn.BatchNorm1d, x: Tensor) -> Tensor:
        """``bn`` over all leading dimensions of ``x``."""
        return bn(x.reshape(-1, x.size(-1))).view(x.shape)

    def query(self, h: Tensor, r: Tensor, relations: Tensor | None = None) -> Tensor:
        r"""The tail query :math:`\mathbf{x}(h, r)` :obj:`(..., d_e)` (broadcast over the
        leading dimensions of ``h`` and ``r``), with :math:`f = \mathbf{x} \cdot \mathbf{e}_t`."""
        d = self.hidden_channels
        x = self.input_dropout(self._batch_norm(self.bn0, h))
        shape = torch.broadcast_shapes(x.shape[:-1], r.shape)
        x = self._contract(x.expand(*shape, d).reshape(-1, d), r.expand(shape).reshape(-1),
                           relations=relations)
        return self.hidden_dropout2(self.bn1(x)).view(*shape, d)

    # ------------------------------------------------------------ scoring
    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor,
                  relations: Tensor | None = None) -> Tensor:
        return (self.query(h, r, relations) * t).sum(dim=-1)

    def score_t(self, h: Tensor, r: Tensor, candidates: Tensor,
                relations: Tensor | None = None) -> Tensor:
        return self.query(h, r, relations) @ candidates.t()

    def score_h(self, r: Tensor, t: Tensor, candidates: Tensor,
                relations: Tensor | None = None) -> Tensor:
        a1, b1 = self._affine(self.bn1)
        t = self.hidden_dropout2(t)
        v = self._contract(a1 * t, r, transpose=True, relations=relations)
        heads = self.input_dropout(self.bn0(candidates))
        return v @ heads.t() + (t * b1).sum(dim=-1, keepdim=True)

    @torch.no_grad()
    def export_relations(self) -> dict[str, Any]:
        """Relation embeddings :obj:`(R, d_r)` and the ``core`` tensor
        :obj:`(d_r, d_e, d_e)`."""
        return {**super().export_relations(), "core": self.core.detach().cpu().float()}

    def extra_repr_args(self) -> str:
        return (f"relation_channels={self.relation_channels}, "
                + (f"core_init={self.core_init!r}, " if self.core_init != "uniform" else "")
                + ("own_relations=False, " if self.rel_emb is None else "")
                + f"input_dropout={self.input_dropout.p}, "
                f"hidden_dropout1={self.hidden_dropout1.p}, "
                f"hidden_dropout2={self.hidden_dropout2.p}")
