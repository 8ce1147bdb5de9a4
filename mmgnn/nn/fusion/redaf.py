"""ReDAF: relation-guided dual adaptive fusion of any number of modalities (NativE)."""

from __future__ import annotations

import torch
from torch import Tensor


class ReDAF(torch.nn.Module):
    r"""Relation-guided dual adaptive fusion from `"NativE: Multi-modal Knowledge Graph
    Completion in the Wild" <https://arxiv.org/abs/2406.17605>`_ (Zhang et al., SIGIR 2024,
    Sec. 3.2; spec ``NativE.md``, section 2), over any number of modalities, some of them
    missing for some entities.

    For entity :math:`e` with modality embeddings :math:`\mathbf{e}_1, \ldots, \mathbf{e}_M`
    (structure first in NativE), presence :math:`a_{e,m} \in \{0, 1\}` and the query relation
    :math:`r`:

    .. math::
        s_{e,m} = \mathbf{w}^\top \tanh(\mathbf{e}_m), \qquad
        T_r = \sigma(g_r), \qquad
        \alpha_{e,m}^{(r)} = \frac{a_{e,m} \exp(s_{e,m} / T_r)}
                                  {\sum_{m'} a_{e,m'} \exp(s_{e,m'} / T_r)}, \qquad
        \mathbf{e}^{(r)} = \sum_m \alpha_{e,m}^{(r)}\, \mathbf{e}_m

    The weights form a distribution over the modalities the entity **has**: an absent
    modality gets weight exactly zero (no made-up embedding takes part), and an entity with
    no modality at all gets the zero vector. :math:`\mathbf{w}` is one shared
    ``Linear(F, 1, bias=False)``; :math:`g` one scalar per relation, drawn from
    :math:`\mathcal{U}(-\rho, \rho)` (the released code uses NativE's entity range
    :math:`\rho = (\gamma + \epsilon) / F`, so :math:`T_r \approx 0.5` at the start).

    Ablations: ``temperature=False`` fixes :math:`T_r = 1` (no relation guidance);
    ``adaptive=False`` replaces :math:`\alpha` by the plain mean over the present modalities,
    :math:`a_{e,m} / \sum_{m'} a_{e,m'}`.

    Args:
        channels (int): Width :math:`F` of the modality embeddings.
        num_relations (int): Number of relations (one temperature each).
        temperature (bool): Learn the relation temperatures :math:`T_r`. (default: :obj:`True`)
        adaptive (bool): Learn the weights (else: plain masked mean). (default: :obj:`True`)
        init_range (float): :math:`\rho` of the temperature initialisation.
            (default: :obj:`0.028`, i.e. :math:`(12 + 2) / 500`, NativE's DB15K setting)

    Shapes:
        - **input:** embeddings :math:`(*, M, F)`, presence :math:`(*, M)` bool (or
          :obj:`None`: all present), relations :math:`(*)` (or :obj:`None`: :math:`T = 1`)
        - **output:** :math:`(*, F)`
    """

    def __init__(self, channels: int, num_relations: int, temperature: bool = True,
                 adaptive: bool = True, init_range: float = 14.0 / 500) -> None:
        super().__init__()
        if channels <= 0 or num_relations <= 0:
            raise ValueError(f"ReDAF needs channels > 0 and num_relations > 0, got {channels} "
                             f"and {num_relations}")
        self.channels, self.num_relations = channels, num_relations
        self.temperature, self.adaptive = temperature, adaptive
        self.init_range = init_range
        if adaptive:
            self.attention = torch.nn.Linear(channels, 1, bias=False)
        else:
            self.register_module("attention", None)
        if adaptive and temperature:
            self.gate = torch.nn.Embedding(num_relations, 1)
        else:
            self.register_module("gate", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.attention is not None:
            self.attention.reset_parameters()
        if self.gate is not None:
            torch.nn.init.uniform_(self.gate.weight, -self.init_range, self.init_range)

    def logits(self, emb: Tensor) -> Tensor:
        r"""Relation-independent scores :math:`s_{e,m} = \mathbf{w}^\top \tanh(\mathbf{e}_m)`
        :math:`(*, M)` (zeros without ``adaptive``)."""
        if self.attention is None:
            return emb.new_zeros(emb.shape[:-1])
        return self.attention(torch.tanh(emb)).squeeze(-1)

    def relation_temperature(self, r: Tensor) -> Tensor:
        r""":math:`T_r = \sigma(g_r)` :math:`(*)` for relation ids ``r``."""
        if self.gate is None:
            return torch.ones(r.shape, device=r.device)
        return torch.sigmoid(self.gate(r).squeeze(-1))

    def weights(self, logits: Tensor, mask: Tensor | None = None,
                r: Tensor | None = None) -> Tensor:
        r"""The fusion weights :math:`\alpha^{(r)}` :math:`(*, M)` from :meth:`logits`;
        ``r`` broadcasts against the leading shape of ``logits``."""
        if r is not None and self.gate is not None:
            logits = logits / self.relation_temperature(r)[..., None]
        if mask is None:
            return torch.softmax(logits, dim=-1)
        mask = mask.to(logits.device, torch.bool).expand_as(logits)
        # Rows without any modality: a finite softmax of zeros, then masked to all-zero.
        logits = torch.where(mask, logits, torch.finfo(logits.dtype).min)
        return torch.softmax(logits, dim=-1) * mask

    def combine(self, emb: Tensor, weights: Tensor) -> Tensor:
        r""":math:`\sum_m \alpha_m \mathbf{e}_m` :math:`(*, F)`."""
        return (weights[..., None] * emb).sum(dim=-2)

    def forward(self, emb: Tensor, mask: Tensor | None = None,
                r: Tensor | None = None) -> Tensor:
        if emb.size(-1) != self.channels:
            raise ValueError(f"ReDAF expects embeddings of width {self.channels}, got "
                             f"{tuple(emb.shape)}")
        return self.combine(emb, self.weights(self.logits(emb), mask, r))

    def __repr__(self) -> str:
        extra = "".join([", temperature=False" if not self.temperature else "",
                         ", adaptive=False" if not self.adaptive else ""])
        return f"{type(self).__name__}({self.channels}, num_relations={self.num_relations}{extra})"
