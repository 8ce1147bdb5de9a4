"""MKGformer's scorer: the masked-language-model head restricted to entity tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class MaskedEntityHead(torch.nn.Module):
    r"""MKGformer's scorer: the masked-language-model head at the ``[MASK]`` position,
    restricted to the entity tokens (spec ``MKGformer.md``, section 2), its decoder tied to
    their word embeddings :math:`E`:

    .. math::
        s(q, e) = \mathrm{LN}\big(\mathrm{GELU}(W q + b)\big)^\top E_e + \beta_e

    It scores a query's ``[MASK]`` state against every entity at once (:meth:`score_t`) and
    is no :class:`~mmgnn.nn.kge.base.KGEDecoder`: a single triple's score needs the
    transformer pass of its query, so per-triple scoring lives in the model
    (:meth:`MKGformer.score_triples <mmgnn.models.MKGformer.score_triples>`), whose class
    says ``fused_corruptions = False``.

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
        super().__init__()
        if num_relations <= 0 or hidden_channels <= 0:
            raise ValueError(f"MaskedEntityHead needs num_relations > 0 and hidden_channels > 0,"
                             f" got {num_relations} and {hidden_channels}")
        self.num_entities, self.num_relations = num_entities, num_relations
        self.hidden_channels, self.initializer_range = hidden_channels, initializer_range
        self.dense = torch.nn.Linear(hidden_channels, hidden_channels)
        self.norm = torch.nn.LayerNorm(hidden_channels, eps=layer_norm_eps)
        self.bias = torch.nn.Parameter(torch.empty(num_entities))
        self.reset_parameters()

    @property
    def entity_channels(self) -> int:
        """Width :math:`d` of the entity token embeddings it scores."""
        return self.hidden_channels

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.dense.weight, std=self.initializer_range)
        torch.nn.init.zeros_(self.dense.bias)
        self.norm.reset_parameters()
        torch.nn.init.zeros_(self.bias)

    def transform(self, states: Tensor) -> Tensor:
        """:math:`\\mathrm{LN}(\\mathrm{GELU}(W q + b))` of the mask states :obj:`(B, d)`."""
        return self.norm(F.gelu(self.dense(states)))

    def score_t(self, h: Tensor, r: Tensor, candidates: Tensor) -> Tensor:
        """Scores :obj:`(B, N)` of every candidate entity at the ``[MASK]`` states ``h``."""
        return self.transform(h) @ candidates.t() + self.bias

    def __repr__(self) -> str:
        return (f"MaskedEntityHead({self.num_entities}, num_relations={self.num_relations}, "
                f"hidden_channels={self.hidden_channels})")
