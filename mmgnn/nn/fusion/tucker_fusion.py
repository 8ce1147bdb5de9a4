"""Low-rank Tucker (Mutan-style) bilinear fusion of any number of modalities (IMF)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from mmgnn.nn import dropout as dropout_masks


class TuckerFusion(torch.nn.Module):
    r"""Multimodal Tucker fusion with a low-rank core, as in IMF's multimodal fusion module
    (`Li et al., WWW 2023 <https://arxiv.org/abs/2303.10816>`_, Sec. 3.2; spec ``IMF.md``,
    section 2), generalising Mutan (`Ben-younes et al., ICCV 2017
    <https://arxiv.org/abs/1705.06676>`_, Eq. 9-10) from two to :math:`M` modalities.

    For modality inputs :math:`x_1, \ldots, x_M` and rank :math:`k`:

    .. math::
        \mathbf{z}^{(i)}_m = \mathrm{ReLU}\big(\mathbf{W}^{(i)}_m\, \mathrm{Dropout}(x_m)
        + \mathbf{b}^{(i)}_m\big), \qquad
        \mathbf{z} = \mathrm{ReLU}\Big(\sum_{i=1}^{k} \mathbf{z}^{(i)}_1 \odot
        \mathbf{z}^{(i)}_2 \odot \cdots \odot \mathbf{z}^{(i)}_M\Big)

    Each rank component is a rank-1 slice of a Tucker core over the :math:`M` projected
    modalities, so the fusion is multiplicative (interactive) in all of them with
    :math:`k \sum_m d_m d` parameters instead of :math:`d \prod_m d_m`. Every (rank,
    modality) projection draws its own dropout mask, as the released ``MutanLayer`` (one
    ``Sequential(Dropout, Linear, ReLU)`` per rank component; the masks are drawn by
    :func:`mmgnn.nn.dropout.keep_mask`, a third of the cost of Bernoulli draws on CPU, where
    IMF fuses every entity at every step); weights and biases are
    initialised as :class:`torch.nn.Linear`. With :math:`M = 1` it is a rank-:math:`k` sum of
    ReLU projections.

    Args:
        in_channels (int or Sequence[int]): Width :math:`d_m` of each modality (one int: the
            same for all).
        out_channels (int): Width :math:`d` of the fused representation.
        num_modalities (int, optional): :math:`M`; needed when ``in_channels`` is an int.
        rank (int): Number of rank components :math:`k`. (default: :obj:`2`, IMF's
            ``multi``)
        dropout (float): Input dropout of every projection. (default: :obj:`0.2`)
        bias (bool): Learn the biases :math:`\mathbf{b}`. (default: :obj:`True`)

    Shapes:
        - **input:** a list of :math:`M` tensors :math:`(*, d_m)` with equal leading shapes.
        - **output:** :math:`(*, d)`.
    """

    def __init__(self, in_channels: int | Sequence[int], out_channels: int,
                 num_modalities: int | None = None, rank: int = 2, dropout: float = 0.2,
                 bias: bool = True) -> None:
        super().__init__()
        if isinstance(in_channels, int):
            if num_modalities is None:
                raise ValueError("TuckerFusion needs num_modalities when in_channels is an int")
            in_channels = [in_channels] * num_modalities
        in_channels = list(in_channels)
        if num_modalities is not None and num_modalities != len(in_channels):
            raise ValueError(f"num_modalities={num_modalities} but {len(in_channels)} input "
                             f"widths were given")
        if not in_channels or rank < 1:
            raise ValueError(f"TuckerFusion needs at least one modality and rank >= 1, got "
                             f"{len(in_channels)} modalities and rank {rank}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_modalities = len(in_channels)
        self.rank = rank
        self.dropout = dropout
        # weight[m]: (k, d, d_m), one Linear per rank component stacked along dim 0.
        self.weight = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.empty(rank, out_channels, d)) for d in in_channels])
        if bias:
            self.bias = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.empty(rank, out_channels)) for _ in in_channels])
        else:
            self.register_module("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m, w in enumerate(self.weight):
            bound = 1.0 / math.sqrt(self.in_channels[m])
            # torch.nn.Linear's default: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(d_m), ...).
            torch.nn.init.uniform_(w, -bound, bound)
            if self.bias is not None:
                torch.nn.init.uniform_(self.bias[m], -bound, bound)

    def project(self, x: Tensor, m: int) -> Tensor:
        r"""The :math:`k` projections :math:`\mathbf{z}^{(i)}_m`: :math:`(*, d_m) \rightarrow
        (*, k, d)`, each rank component with its own dropout mask."""
        x = x.unsqueeze(-2).expand(*x.shape[:-1], self.rank, x.size(-1))
        x = dropout_masks.dropout(x, self.dropout, self.training)
        z = torch.einsum("...kc,koc->...ko", x, self.weight[m])
        if self.bias is not None:
            z = z + self.bias[m]
        return torch.relu(z)

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        if len(xs) != self.num_modalities:
            raise ValueError(f"TuckerFusion was built for {self.num_modalities} modalities, "
                             f"got {len(xs)} inputs")
        prod = self.project(xs[0], 0)
        for m in range(1, self.num_modalities):
            prod = prod * self.project(xs[m], m)
        return torch.relu(prod.sum(dim=-2))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"rank={self.rank}, dropout={self.dropout})")
