"""MKGformer's scorer: the masked-language-model head restricted to entity tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.nn.kge.base import KGEDecoder


class MaskedEntityHead(KGEDecoder):
    r"""MKGformer's scorer: the masked-language-model head at the ``[MASK]`` position,
    restricted to the entity tokens (spec ``MKGformer.md``, section 2), its decoder tied to
    their word embeddings :math:`E`:

    .. math::
        s(q, e) = \mathrm{LN}\big(\mathrm{GELU}(W q + b)\big)^\top E_e + \beta_e

    Args:
        num_entities (int): Number of entity tokens :math:`N`.
        num_relations (int): Relations of the model (their tokens live in the vocabulary).
        hidden_channels (int): Width :math:`d` of the text model.
        layer_norm_eps (float): Epsilon of the layer norm. (default: :obj:`1e-12`)
        initializer_range (float): Std of the normal initialisation of :math:`W`.
            (default: :obj:`0.02`)

    Shapes:
        - **score_t:** mask states :math:`(B, d)`, relations :math:`(B,)`, entity token
          embeddings :math:`(N, d)` :math:`\rightarrow (B, N)`.
    """

    def __init__(self, num_entities: int, num_relations: int, hidden_channels: int,
                 layer_norm_eps: float = 1e-12, initializer_range: float = 0.02) -> None:
        super().__init__(num_relations, hidden_channels)
        self.num_entities, self.initializer_range = num_entities, initializer_range
        self.dense = torch.nn.Linear(hidden_channels, hidden_channels)
        self.norm = torch.nn.LayerNorm(hidden_channels, eps=layer_norm_eps)
        self.bias = torch.nn.Parameter(torch.empty(num_entities))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.dense.weight, std=self.initializer_range)
        torch.nn.init.zeros_(self.dense.bias)
        self.norm.reset_parameters()
        torch.nn.init.zeros_(self.bias)

    def transform(self, states: Tensor) -> Tensor:
        return self.norm(F.gelu(self.dense(states)))

    def score_t(self, h: Tensor, r: Tensor, candidates: Tensor) -> Tensor:
        return self.transform(h) @ candidates.t() + self.bias

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        raise NotImplementedError("MaskedEntityHead scores all entities at once (score_t); "
                                  "use MKGformer.score_hrt for single triples")
