"""ViLBERT's co-attention layer, the cross-modal block of K3M (spec ``K3M.md``, section 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """:obj:`(B, L)` bool validity as the additive :obj:`(B, 1, 1, L)` attention mask
    (0 for valid keys, the dtype's minimum for padding)."""
    return (~mask)[:, None, None, :].to(dtype) * torch.finfo(dtype).min


class _FeedForward(nn.Module):
    """BERT's intermediate + output: :math:`\\mathrm{LN}(x + W_o\\,\\mathrm{GELU}(W_i x))`."""

    def __init__(self, channels: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.lin_in = nn.Linear(channels, hidden)
        self.lin_out = nn.Linear(hidden, channels)
        self.norm = nn.LayerNorm(channels, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.lin_out(F.gelu(self.lin_in(x)))))


class CoAttentionLayer(nn.Module):
    r"""One co-attention block of `ViLBERT <https://arxiv.org/abs/1908.02265>`_ as K3M runs it
    for every modality pair (``BertConnectionLayer`` of ``vilbert_k3m.py``).

    Each stream queries the other: with :math:`Q_a = W^Q_a x_a`, :math:`K_b = W^K_b x_b`,
    :math:`V_b = W^V_b x_b` split into :math:`H` heads of width :math:`d_h`,

    .. math::
        \mathbf{z}_a &= \mathrm{LN}\big(\mathbf{x}_a + W^O_a \,
        \mathrm{softmax}\big(Q_a K_b^\top / \sqrt{d_h} + M_b\big) V_b\big) \\
        \mathbf{x}'_a &= \mathrm{LN}\big(\mathbf{z}_a + W_{2,a}\,
        \mathrm{GELU}(W_{1,a} \mathbf{z}_a)\big)

    and symmetrically for :math:`b` (:math:`M_b` masks :math:`b`'s padding). The two streams
    keep their own widths; the attention runs at ``hidden_channels``.

    Args:
        channels (tuple[int, int]): Widths :math:`(d_a, d_b)` of the streams.
        hidden_channels (int): Width of the co-attention (K3M: 1024).
        heads (int): Attention heads (K3M: 8). (default: :obj:`8`)
        ffn_channels (tuple[int, int], optional): Feed-forward widths per stream. (default:
            :math:`4 d_a, 4 d_b`)
        dropout (float): Dropout of attention probabilities and outputs. (default:
            :obj:`0.1`)

    Shapes:
        - **input:** :math:`(B, L_a, d_a)`, mask :math:`(B, L_a)`, :math:`(B, L_b, d_b)`,
          mask :math:`(B, L_b)` (bool, valid positions)
        - **output:** :math:`(B, L_a, d_a)`, :math:`(B, L_b, d_b)`
    """

    def __init__(self, channels: tuple[int, int], hidden_channels: int, heads: int = 8,
                 ffn_channels: tuple[int, int] | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        if hidden_channels % heads:
            raise ValueError(f"hidden_channels ({hidden_channels}) must be divisible by heads "
                             f"({heads})")
        self.channels = tuple(channels)
        self.hidden_channels = hidden_channels
        self.heads = heads
        self.ffn_channels = tuple(ffn_channels or (4 * channels[0], 4 * channels[1]))
        self.dropout = dropout
        self.qkv = nn.ModuleList(nn.Linear(d, 3 * hidden_channels) for d in self.channels)
        self.lin_out = nn.ModuleList(nn.Linear(hidden_channels, d) for d in self.channels)
        self.norm = nn.ModuleList(nn.LayerNorm(d, eps=1e-12) for d in self.channels)
        self.ffn = nn.ModuleList(_FeedForward(d, f, dropout)
                                 for d, f in zip(self.channels, self.ffn_channels, strict=True))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.LayerNorm):
                module.reset_parameters()

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, L, _ = x.shape
        q, k, v = x.view(B, L, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(self, x_a: Tensor, mask_a: Tensor, x_b: Tensor,
                mask_b: Tensor) -> tuple[Tensor, Tensor]:
        qa, ka, va = self._split(self.qkv[0](x_a))
        qb, kb, vb = self._split(self.qkv[1](x_b))
        p = self.dropout if self.training else 0.0
        ctx_a = F.scaled_dot_product_attention(qa, kb, vb, additive_mask(mask_b, qa.dtype),
                                               dropout_p=p)
        ctx_b = F.scaled_dot_product_attention(qb, ka, va, additive_mask(mask_a, qb.dtype),
                                               dropout_p=p)
        out = []
        for s, (x, ctx) in enumerate(((x_a, ctx_a), (x_b, ctx_b))):
            ctx = ctx.transpose(1, 2).reshape(x.size(0), x.size(1), self.hidden_channels)
            z = self.norm[s](x + F.dropout(self.lin_out[s](ctx), p, self.training))
            out.append(self.ffn[s](z))
        return out[0], out[1]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.channels}, {self.hidden_channels}, "
                f"heads={self.heads})")

