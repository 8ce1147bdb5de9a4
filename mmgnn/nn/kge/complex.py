"""ComplEx (Trouillon et al., 2016)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mmgnn.nn.kge.base import KGEDecoder, as_complex


class ComplEx(KGEDecoder):
    r"""The complex bilinear-diagonal decoder from `"Complex Embeddings for Simple Link
    Prediction" <https://arxiv.org/abs/1606.06357>`_ (Trouillon et al., 2016, Eq. 11)

    .. math::
        f(h, r, t) = \operatorname{Re}\Big(\sum_{k=1}^{d} e_{h,k}\, w_{r,k}\,
        \overline{e_{t,k}}\Big)
        = \langle \operatorname{Re} \mathbf{e}_h, \operatorname{Re} \mathbf{w}_r,
          \operatorname{Re} \mathbf{e}_t \rangle
        + \langle \operatorname{Im} \mathbf{e}_h, \operatorname{Re} \mathbf{w}_r,
          \operatorname{Im} \mathbf{e}_t \rangle
        + \langle \operatorname{Re} \mathbf{e}_h, \operatorname{Im} \mathbf{w}_r,
          \operatorname{Im} \mathbf{e}_t \rangle
        - \langle \operatorname{Im} \mathbf{e}_h, \operatorname{Im} \mathbf{w}_r,
          \operatorname{Re} \mathbf{e}_t \rangle

    with :math:`\mathbf{e}, \mathbf{w} \in \mathbb{C}^d`. Entity representations are real
    tensors of width :math:`2d` laid out :obj:`[re | im]` (PyG's
    :class:`torch_geometric.nn.kge.ComplEx` keeps the two halves in two tables; concatenating
    them gives this layout); relations are stored the same way.

    1-to-all scoring is one matrix product: with :math:`q = \mathbf{e}_h \mathbf{w}_r`,
    :math:`f = \operatorname{Re}(q)\cdot\operatorname{Re}(\mathbf{e}_t) +
    \operatorname{Im}(q)\cdot\operatorname{Im}(\mathbf{e}_t)`, i.e.
    :obj:`[Re q | Im q] @ E.T`; head queries use
    :math:`q' = \overline{\mathbf{w}_r \overline{\mathbf{e}_t}}` the same way.

    Initialisation follows the official code (``ttrouill/complex``, ``efe/tools.py``): every
    real and imaginary part from :math:`\mathcal{N}(0, 1)`; ``init_std`` rescales it (e.g.
    :obj:`1e-3` as in Lacroix et al., 2018, with N3). :meth:`factors` returns the moduli
    :math:`|e_{h,k}|, |w_{r,k}|, |e_{t,k}|` for the N3 regulariser of Lacroix et al. (2018,
    Eq. 9).

    Args:
        num_relations (int): Number of relations.
        hidden_channels (int): Number of complex dimensions :math:`d`.
        init_std (float): Standard deviation of the normal initialisation.
            (default: :obj:`1.0`)
        **kwargs: ``chunk_elements`` of :class:`~mmgnn.nn.kge.base.KGEDecoder`.

    Shapes:
        - **entities:** :math:`(*, 2d)` laid out :obj:`[re | im]`; scores as in
          :class:`~mmgnn.nn.kge.base.KGEDecoder` (:meth:`score_hrt` broadcasts over leading
          dimensions).
    """

    def __init__(self, num_relations: int, hidden_channels: int, init_std: float = 1.0,
                 **kwargs) -> None:
        super().__init__(num_relations, hidden_channels, **kwargs)
        self.init_std = init_std
        self.rel_emb = torch.nn.Embedding(num_relations, 2 * hidden_channels)
        self.reset_parameters()

    @property
    def entity_channels(self) -> int:
        return 2 * self.hidden_channels

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.rel_emb.weight, std=self.init_std)

    @torch.no_grad()
    def reset_entity_parameters(self, weight: Tensor) -> None:
        torch.nn.init.normal_(weight, std=self.init_std)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[..., :self.hidden_channels], x[..., self.hidden_channels:]

    def _tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        """:obj:`[Re q | Im q]` with :math:`q = e_h w_r`, so that scores are ``q · e_t``."""
        h_re, h_im = self._split(h)
        r_re, r_im = self._split(self.rel_emb(r))
        return torch.cat([h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re], dim=-1)

    def _head_query(self, r: Tensor, t: Tensor) -> Tensor:
        r""":obj:`[Re q | -Im q]` with :math:`q = w_r \overline{e_t}`, so that scores are
        ``e_h · q`` (:math:`\operatorname{Re}(e_h q)`)."""
        t_re, t_im = self._split(t)
        r_re, r_im = self._split(self.rel_emb(r))
        return torch.cat([r_re * t_re + r_im * t_im, r_re * t_im - r_im * t_re], dim=-1)

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return (self._tail_query(h, r) * t).sum(dim=-1)

    def score_t(self, h: Tensor, r: Tensor, candidates: Tensor) -> Tensor:
        return self._tail_query(h, r) @ candidates.t()

    def score_h(self, r: Tensor, t: Tensor, candidates: Tensor) -> Tensor:
        return self._head_query(r, t) @ candidates.t()

    def factors(self, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        return [torch.linalg.vector_norm(torch.stack(self._split(x), dim=-1), dim=-1)
                for x in (h, self.rel_emb(r), t)]

    def export_entities(self, x: Tensor) -> Tensor:
        """Complex entity embeddings :obj:`(N, d)`."""
        return as_complex(x)

    @torch.no_grad()
    def export_relations(self) -> dict[str, Any]:
        """Complex relation embeddings :obj:`(R, d)`."""
        return {"relation": as_complex(self.rel_emb.weight.detach().cpu().float()), "p": None}

    def extra_repr_args(self) -> str:
        return f"init_std={self.init_std}" if self.init_std != 1.0 else ""
