"""PairRE (Chao et al., 2021)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.nn.kge.base import KGEDecoder
from mmgnn.nn.kge.distances import l1_distance
from mmgnn.nn.kge.rotate import RotatEInit
from mmgnn.utils.compile import check_kernel


class PairRE(RotatEInit, KGEDecoder):
    r"""The paired-relation-vector decoder from `"PairRE: Knowledge Graph Embeddings via Paired
    Relation Vectors" <https://arxiv.org/abs/2011.03798>`_ (Chao et al., 2021, Eq. 2)

    .. math::
        f(h, r, t) = \gamma - \|\hat{\mathbf{e}}_h \circ \mathbf{r}^H
        - \hat{\mathbf{e}}_t \circ \mathbf{r}^T\|_1,
        \qquad \hat{\mathbf{e}} = \mathbf{e} / \|\mathbf{e}\|_2

    Entities are L2-normalised inside the score, as in the paper and the official code
    (``alipay/KnowledgeGraphEmbeddingsViaPairedRelationVectors_PairRE``), so the entity table
    itself is unconstrained. Also as there: the margin :math:`\gamma` is part of the score
    (train with a self-adversarial loss of margin 0), and entities and both relation vectors
    (stored as one table :obj:`[r^H | r^T]`) are drawn from :math:`\mathcal{U}(-\rho, \rho)`,
    :math:`\rho = (\gamma + \epsilon) / d`.

    1-to-all scoring normalises the candidates once and calls
    :func:`~mmgnn.nn.kge.distances.l1_distance` with per-query weights:
    :math:`\sum_k |q_k - r^T_k \hat e_{c,k}|` with :math:`q = \hat{\mathbf{e}}_h \circ
    \mathbf{r}^H` (tails), :math:`\sum_k |q_k - r^H_k \hat e_{c,k}|` with
    :math:`q = \hat{\mathbf{e}}_t \circ \mathbf{r}^T` (heads); no :obj:`(B, N, d)` tensor.

    Args:
        num_relations (int): Number of relations.
        hidden_channels (int): Embedding size :math:`d`.
        margin (float): :math:`\gamma`; 12 is the default of the official code, whose
            ogbl-wikikg2 scripts use 6 for :math:`d = 200`. (default: :obj:`12.0`)
        epsilon (float): :math:`\epsilon` of the initialisation range. (default: :obj:`2.0`)
        kernel (str): 1-to-all kernel: ``"auto"``, ``"compiled"`` or ``"eager"`` (see
            :mod:`mmgnn.nn.kge.distances`). (default: :obj:`"auto"`)
        **kwargs: ``chunk_elements`` of :class:`~mmgnn.nn.kge.base.KGEDecoder`.

    Shapes:
        - **entities:** :math:`(*, d)`; scores as in :class:`~mmgnn.nn.kge.base.KGEDecoder`
          (:meth:`score_hrt` broadcasts over leading dimensions).
    """

    def __init__(self, num_relations: int, hidden_channels: int, margin: float = 12.0,
                 epsilon: float = 2.0, kernel: str = "auto", **kwargs) -> None:
        super().__init__(num_relations, hidden_channels, **kwargs)
        self.margin = margin
        self.epsilon = epsilon
        self.kernel = check_kernel(kernel)
        self.rel_emb = torch.nn.Embedding(num_relations, 2 * hidden_channels)
        self.reset_parameters()

    def _relation(self, r: Tensor) -> tuple[Tensor, Tensor]:
        """:math:`(r^H, r^T)`."""
        rel = self.rel_emb(r)
        return rel[..., :self.hidden_channels], rel[..., self.hidden_channels:]

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        r_h, r_t = self._relation(r)
        diff = F.normalize(h, p=2.0, dim=-1) * r_h - F.normalize(t, p=2.0, dim=-1) * r_t
        return self.margin - diff.abs().sum(dim=-1)

    def score_t(self, h: Tensor, r: Tensor, candidates: Tensor) -> Tensor:
        r_h, r_t = self._relation(r)
        q = F.normalize(h, p=2.0, dim=-1) * r_h
        return self.margin - l1_distance(q, F.normalize(candidates, p=2.0, dim=-1), r_t,
                                         kernel=self.kernel, chunk_elements=self.chunk_elements)

    def score_h(self, r: Tensor, t: Tensor, candidates: Tensor) -> Tensor:
        r_h, r_t = self._relation(r)
        q = F.normalize(t, p=2.0, dim=-1) * r_t
        return self.margin - l1_distance(q, F.normalize(candidates, p=2.0, dim=-1), r_h,
                                         kernel=self.kernel, chunk_elements=self.chunk_elements)

    @torch.no_grad()
    def export_relations(self) -> dict[str, Any]:
        r"""The pairs :obj:`(R, 2, d)` (:math:`r^H`, :math:`r^T`), ``p = 1`` and ``margin``."""
        rel = self.rel_emb.weight.detach().cpu().float()
        return {"relation": rel.view(-1, 2, self.hidden_channels), "p": 1,
                "margin": self.margin}

    def extra_repr_args(self) -> str:
        args = [f"margin={self.margin}"]
        if self.kernel != "auto":
            args.append(f"kernel={self.kernel!r}")
        return ", ".join(args)
