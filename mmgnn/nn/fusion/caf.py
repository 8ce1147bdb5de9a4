"""Correlation-aware fusion (CAF): MKGformer's visual term in the text feed-forward network."""

from __future__ import annotations

import torch
from torch import Tensor


class CorrelationAwareFusion(torch.nn.Module):
    r"""The correlation-aware fusion module of `"Hybrid Transformer with Multi-level Fusion
    for Multimodal Knowledge Graph Completion" <https://arxiv.org/abs/2205.02357>`_ (Chen et
    al., SIGIR 2022, Eq. 6-8; spec ``MKGformer.md``, section 1 "CAF"; released as
    ``BertFusion`` + ``BertIntermediate`` in ``MKG/models/modeling_unimo.py``).

    With :math:`C \in \mathbb{R}^{L \times d}` the self-attention context of a text layer
    (heads merged, before its output projection) and :math:`V \in \mathbb{R}^{P \times d}`
    the output of the vision layer at the same depth, each token aggregates the visual tokens
    by its correlation with them (unscaled), and the aggregate enters the text FFN through an
    extra projection :math:`W^F`:

    .. math::
        S = \operatorname{softmax}(C V^\top + M), \qquad
        \mathrm{CAF}(C, V) = (S V) {W^F}^\top + b^F

        \mathrm{FFN}(A) = \mathrm{GELU}(A W_1^\top + b_1 + \mathrm{CAF}(C, V))\, W_2^\top + b_2

    This module returns :math:`\mathrm{CAF}(C, V) \in \mathbb{R}^{L \times d_{ff}}`, the term
    added to the FFN's intermediate pre-activation. :math:`M` is :math:`-\infty` on absent
    visual tokens; a sample without any visual token gets no term at all (zeros), so an
    entity without images is encoded by the plain text layer. The released code masks
    nothing (missing images are zero tensors whose tokens the softmax still weighs).

    Args:
        channels (int): Width :math:`d` of the text context and the visual states.
        intermediate_channels (int): Width :math:`d_{ff}` of the text FFN.
        bias (bool): Learn :math:`b^F`. (default: :obj:`True`)

    Shapes:
        - **context:** :math:`(B, L, d)`; **visual:** :math:`(B, P, d)`;
          **visual_mask:** :math:`(B, P)` bool (valid tokens).
        - **output:** :math:`(B, L, d_{ff})`.
    """

    def __init__(self, channels: int, intermediate_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.channels, self.intermediate_channels = channels, intermediate_channels
        self.fusion_dense = torch.nn.Linear(channels, intermediate_channels, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.fusion_dense.reset_parameters()

    def forward(self, context: Tensor, visual: Tensor, visual_mask: Tensor | None = None) -> Tensor:
        if context.size(-1) != visual.size(-1):
            raise ValueError(f"CAF correlates text and visual states of one width; got "
                             f"{context.size(-1)} and {visual.size(-1)}")
        scores = context @ visual.transpose(1, 2)  # (B, L, P), unscaled as released
        if visual_mask is None:
            return self.fusion_dense(torch.softmax(scores, dim=-1) @ visual)
        scores = scores.masked_fill(~visual_mask[:, None, :], float("-inf"))
        any_visual = visual_mask.any(dim=1)
        weights = torch.softmax(scores.masked_fill(~any_visual[:, None, None], 0.0), dim=-1)
        out = self.fusion_dense(weights @ visual)
        return out * any_visual[:, None, None].to(out.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.channels}, {self.intermediate_channels})"
