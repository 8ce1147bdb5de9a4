"""The attention-weighted sum of per-relation vectors at each target node, shared by
:class:`~mmgnn.nn.conv.KBGATConv` and :class:`~mmgnn.nn.conv.K3MGATConv`."""

from __future__ import annotations

from torch import Tensor
from torch_geometric.utils import scatter

# Use the dense route while the (N, R) weight matrix has at most this many entries per edge:
# its matrix products then cost less than gathering and scattering an (E, H, C) tensor.
DENSE_ENTRIES_PER_EDGE = 16


def use_dense_route(num_nodes: int, num_relations: int, num_edges: int) -> bool:
    """Whether :func:`relation_weighted_sum` beats gathering ``rel[edge_type]`` per edge."""
    return num_nodes * num_relations <= DENSE_ENTRIES_PER_EDGE * max(num_edges, 1)


def relation_weighted_sum(alpha: Tensor, rel: Tensor, index: Tensor, edge_type: Tensor,
                          num_nodes: int) -> Tensor:
    r""":math:`\mathbf{o}_i = \sum_{e:\, \mathrm{index}_e = i} \alpha_e\,
    \mathbf{g}_{\mathrm{type}_e}` per head, computed as :math:`\mathbf{o}_i = \sum_r
    A_{ir} \mathbf{g}_r` with :math:`A_{ir} = \sum_{e \to i,\, \mathrm{type}_e = r}
    \alpha_e`: one scatter of the :obj:`(E, H)` weights into an :obj:`(N, R, H)` matrix and
    one batched matrix product, instead of an :obj:`(E, H, C)` gather and scatter.

    Args:
        alpha (Tensor): :obj:`(E, H)` edge weights.
        rel (Tensor): :obj:`(R, H, C)` relation vectors per head.
        index (Tensor): :obj:`(E,)` target node of each edge.
        edge_type (Tensor): :obj:`(E,)` relation of each edge.
        num_nodes (int): Number of target nodes :math:`N`.

    Returns:
        :obj:`(N, H, C)`.
    """
    num_rel, heads = rel.size(0), rel.size(1)
    weights = scatter(alpha, index * num_rel + edge_type, dim=0, dim_size=num_nodes * num_rel,
                      reduce="sum").view(num_nodes, num_rel, heads)
    # (H, N, R) @ (H, R, C) -> (H, N, C)
    return (weights.permute(2, 0, 1) @ rel.permute(1, 0, 2)).permute(1, 0, 2)
