"""Prefix-guided interaction (PGI): MKGformer's visual self-attention over a text prefix."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class PrefixGuidedAttention(torch.nn.Module):
    r"""The prefix-guided interaction module of `"Hybrid Transformer with Multi-level Fusion
    for Multimodal Knowledge Graph Completion" <https://arxiv.org/abs/2205.02357>`_ (Chen et
    al., SIGIR 2022, Eq. 4-5; spec ``MKGformer.md``, section 1 "PGI"): the multi-head
    self-attention of a vision layer whose keys and values are prefixed with the keys and
    values the text layer below computed for its own self-attention.

    With visual states :math:`X \in \mathbb{R}^{P \times d}` (already layer-normed by the
    pre-LN vision block), text keys/values :math:`K_t, V_t \in \mathbb{R}^{H \times L \times
    d_h}` of the previous text layer and head :math:`j`:

    .. math::
        Q_j = X W^Q_j\, d_h^{-1/2}, \quad
        K_j = [K_{t,j} ; X W^K_j], \quad V_j = [V_{t,j} ; X W^V_j]

        \mathrm{PGI}(X) = \big[\operatorname{softmax}(Q_j K_j^\top + M)\, V_j\big]_{j=1}^{H}
        W^O

    :math:`M` is :math:`-\infty` on masked keys (padded text tokens, absent images) and 0
    elsewhere. Without a prefix it is the vision layer's plain self-attention. The released
    code masks neither side (``MKG/models/modeling_unimo.py: CLIPAttention``); pass no masks
    for that variant.

    Args:
        channels (int): Width :math:`d` of the visual states.
        heads (int): Number of heads :math:`H` (:math:`d_h = d / H`).
        dropout (float): Dropout of the attention probabilities. (default: :obj:`0.0`)
        bias (bool): Biases of the projections. (default: :obj:`True`)

    Shapes:
        - **x:** :math:`(B, P, d)`; **prefix_key**, **prefix_value:** :math:`(B, H, L, d_h)`;
          **prefix_mask:** :math:`(B, L)` bool; **mask:** :math:`(B, P)` bool (valid keys).
        - **output:** :math:`(B, P, d)`.
    """

    def __init__(self, channels: int, heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads})")
        self.channels, self.heads, self.dropout = channels, heads, dropout
        self.head_dim = channels // heads
        self.q = torch.nn.Linear(channels, channels, bias=bias)
        self.k = torch.nn.Linear(channels, channels, bias=bias)
        self.v = torch.nn.Linear(channels, channels, bias=bias)
        self.o = torch.nn.Linear(channels, channels, bias=True)
        self.reset_parameters()

    @classmethod
    def from_projections(cls, q: torch.nn.Linear, k: torch.nn.Linear, v: torch.nn.Linear,
                         o: torch.nn.Linear, heads: int, dropout: float = 0.0
                         ) -> PrefixGuidedAttention:
        """A module sharing the given projections (those of a pretrained vision layer)."""
        module = cls(q.in_features, heads, dropout, bias=q.bias is not None)
        module.q, module.k, module.v, module.o = q, k, v, o
        return module

    def reset_parameters(self) -> None:
        for lin in (self.q, self.k, self.v, self.o):
            lin.reset_parameters()

    def split_heads(self, x: Tensor) -> Tensor:
        """:math:`(B, L, d) \\rightarrow (B, H, L, d_h)`."""
        return x.view(*x.shape[:2], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, prefix_key: Tensor | None = None,
                prefix_value: Tensor | None = None, prefix_mask: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        q, k, v = self.split_heads(self.q(x)), self.split_heads(self.k(x)), \
            self.split_heads(self.v(x))
        if prefix_key is not None:
            if prefix_key.shape[1::2] != k.shape[1::2] or prefix_value.shape != prefix_key.shape:
                raise ValueError(f"the text prefix keys/values {tuple(prefix_key.shape)} must "
                                 f"have the visual heads and head width (B, {self.heads}, L, "
                                 f"{self.head_dim})")
            k, v = torch.cat([prefix_key, k], dim=2), torch.cat([prefix_value, v], dim=2)
        valid = None
        if mask is not None or prefix_mask is not None:
            b = x.size(0)
            own = mask if mask is not None else x.new_ones(b, x.size(1), dtype=torch.bool)
            if prefix_key is not None:
                pre = prefix_mask if prefix_mask is not None else \
                    x.new_ones(b, prefix_key.size(2), dtype=torch.bool)
                own = torch.cat([pre, own], dim=1)
            valid = own[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=valid,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.o(out.transpose(1, 2).reshape(x.shape))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.channels}, heads={self.heads})"
