"""TransE (Bordes et al., 2013)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.nn.kge.base import KGEDecoder, gather_pair
from mmgnn.nn.kge.distances import anchored_l1_distance, l1_distance, l2_distance
from mmgnn.utils.compile import check_kernel


def _negated(distances: Tensor) -> Tensor:
    """Scores from distances; in place when no gradient flows (one pass less at evaluation)."""
    return -distances if distances.requires_grad else distances.neg_()


class TransE(KGEDecoder):
    r"""The translational decoder from `"Translating Embeddings for Modeling Multi-relational
    Data" <https://papers.nips.cc/paper_files/paper/2013/hash/
    1cecc7a77928ca8133fa24680a88d2f9-Abstract.html>`_ (Bordes et al., 2013, Sec. 2)

    .. math::
        f(h, r, t) = -\|\mathbf{e}_h + \mathbf{r}_r - \mathbf{e}_t\|_p,
        \qquad p \in \{1, 2\}

    Initialisation and constraint as in Algorithm 1 of the paper: entities and relations are
    drawn from :math:`\mathcal{U}(-6/\sqrt{d}, 6/\sqrt{d})`, relations are L2-normalised once,
    and entities are kept at unit L2 norm (re-normalised after every optimiser step through
    :meth:`constrain_entities_`; ``normalize_entities=False`` lifts the constraint). PyG's
    :class:`torch_geometric.nn.kge.TransE` instead normalises relations with the
    :math:`p`-norm at initialisation and head/tail rows with the :math:`p`-norm inside every
    score; feeding it :math:`p`-normalised rows gives identical scores.

    1-to-all scoring never builds a :obj:`(B, N, d)` tensor. For :math:`p = 2` it is one
    matrix product, :math:`\|q\|^2 + \|e\|^2 - 2\, q \cdot e`
    (:func:`~mmgnn.nn.kge.distances.l2_distance`); for :math:`p = 1` it is
    :func:`~mmgnn.nn.kge.distances.l1_distance` (a compiled fused kernel or
    :func:`torch.cdist`; see ``kernel``). Head queries use
    :math:`\|\mathbf{e}_c + \mathbf{r} - \mathbf{e}_t\| =
    \|\mathbf{e}_c - (\mathbf{e}_t - \mathbf{r})\|`. For the same reason negative sampling with
    :math:`p = 1` scores a corruption as the L1 distance between an anchor
    (:math:`\mathbf{e}_h + \mathbf{r}` or :math:`\mathbf{e}_t - \mathbf{r}`) and the
    replacement entity (:meth:`score_corruptions`,
    :func:`~mmgnn.nn.kge.distances.anchored_l1_distance`).

    Args:
        num_relations (int): Number of relations.
        hidden_channels (int): Embedding size :math:`d`.
        p_norm (int): The norm :math:`p` of the distance, 1 or 2. (default: :obj:`1`)
        normalize_entities (bool): Keep entity rows at unit L2 norm (the paper's constraint).
            (default: :obj:`True`)
        kernel (str): L1 kernel of 1-to-all and corruption scoring: ``"auto"``,
            ``"compiled"`` or ``"eager"`` (see :mod:`mmgnn.nn.kge.distances`).
            (default: :obj:`"auto"`)
        **kwargs: ``chunk_elements`` of :class:`~mmgnn.nn.kge.base.KGEDecoder`.

    Shapes:
        - **entities:** :math:`(*, d)`; scores as in :class:`~mmgnn.nn.kge.base.KGEDecoder`
          (:meth:`score_hrt` broadcasts over leading dimensions).
    """

    def __init__(self, num_relations: int, hidden_channels: int, p_norm: int = 1,
                 normalize_entities: bool = True, kernel: str = "auto", **kwargs) -> None:
        super().__init__(num_relations, hidden_channels, **kwargs)
        if p_norm not in (1, 2):
            raise ValueError(f"TransE supports p_norm=1 or p_norm=2, got {p_norm!r}")
        self.p_norm = int(p_norm)
        self.normalize_entities = normalize_entities
        self.kernel = check_kernel(kernel)
        self.rel_emb = torch.nn.Embedding(num_relations, hidden_channels)
        self.reset_parameters()

    @property
    def bound(self) -> float:
        r"""Half-width :math:`6/\sqrt{d}` of the uniform initialisation."""
        return 6.0 / math.sqrt(self.hidden_channels)

    def reset_parameters(self) -> None:
        torch.nn.init.uniform_(self.rel_emb.weight, -self.bound, self.bound)
        with torch.no_grad():
            self.rel_emb.weight.copy_(F.normalize(self.rel_emb.weight, p=2.0, dim=-1))

    @torch.no_grad()
    def reset_entity_parameters(self, weight: Tensor) -> None:
        torch.nn.init.uniform_(weight, -self.bound, self.bound)
        self.constrain_entities_(weight)

    @torch.no_grad()
    def constrain_entities_(self, weight: Tensor) -> None:
        if self.normalize_entities:
            # In place: F.normalize would allocate a new table every optimiser step.
            weight.div_(torch.linalg.vector_norm(weight, dim=-1, keepdim=True).clamp_min_(1e-12))

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        diff = h + self.rel_emb(r) - t
        return -torch.linalg.vector_norm(diff, ord=self.p_norm, dim=-1)

    def score_corruptions(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor,
                          corrupt_head: Tensor, candidates: Tensor) -> Tensor:
        if self.p_norm != 1:
            return super().score_corruptions(x, h, r, t, corrupt_head, candidates)
        rel = self.rel_emb(r)
        hh, tt = gather_pair(x, h, t)
        # Anchor 0 of triple i is e_h + r (its tail corruptions), anchor 1 is e_t - r (its head
        # corruptions): |e_c + r - e_t| = |e_c - (e_t - r)|.
        anchors = torch.stack([hh + rel, tt - rel], dim=1)
        return -anchored_l1_distance(anchors, x, corrupt_head, candidates, kernel=self.kernel)

    def _scores(self, q: Tensor, candidates: Tensor) -> Tensor:
        """:math:`-D(q, c)` against every candidate (for L1 written by the kernel's own
        pass)."""
        if self.p_norm == 2:
            return _negated(l2_distance(q, candidates))
        return l1_distance(q, candidates, kernel=self.kernel, chunk_elements=self.chunk_elements,
                           negate_from=0.0)

    def score_t(self, h: Tensor, r: Tensor, candidates: Tensor) -> Tensor:
        return self._scores(h + self.rel_emb(r), candidates)

    def score_h(self, r: Tensor, t: Tensor, candidates: Tensor) -> Tensor:
        return self._scores(t - self.rel_emb(r), candidates)

    @torch.no_grad()
    def export_relations(self) -> dict[str, Any]:
        """Translations :obj:`(R, d)` and the norm ``p``."""
        return {**super().export_relations(), "p": self.p_norm}

    def extra_repr_args(self) -> str:
        args = [f"p_norm={self.p_norm}"]
        if not self.normalize_entities:
            args.append("normalize_entities=False")
        if self.kernel != "auto":
            args.append(f"kernel={self.kernel!r}")
        return ", ".join(args)
