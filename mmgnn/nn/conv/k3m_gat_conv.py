"""K3M's structure aggregator: triple attention over an item's (property, value) pairs (spec
K3M.md, section 1, "Structure aggregator")."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot
from torch_geometric.nn.resolver import activation_resolver
from torch_geometric.typing import OptTensor, PairTensor
from torch_geometric.utils import scatter, softmax

from mmgnn.nn.conv.relation_sum import relation_weighted_sum, use_dense_route

VARIANTS = ("paper", "code")


class K3MGATConv(MessagePassing):
    r"""The "enhanced GAT" structure aggregator from `"Knowledge Perceived Multi-modal
    Pretraining in E-commerce" <https://arxiv.org/abs/2109.00895>`_ (Zhu et al., ACM MM 2021,
    Sec. 3.4; spec ``K3M.md``, section 1).

    An item :math:`c` attends over its triples :math:`x = (c, p_x, v_x)`: value nodes
    :math:`v` send messages along edges :math:`v \to c`, and each edge carries the property
    :math:`p_x`. Per head :math:`m` (paper form, the default):

    .. math::
        \mathbf{t}^m_x &= \mathbf{W}^m_1 \left[\mathbf{c} \,\Vert\, \mathbf{p}_x \,\Vert\,
        \mathbf{v}_x\right] \\
        b^m_x &= \mathrm{LeakyReLU}\left(\mathbf{W}^m_2\, \mathbf{t}^m_x\right), \qquad
        a^m_x = \operatorname{softmax}_{x \in X_c}\left(b^m_x\right) \\
        \mathbf{c}^* &= \mathbf{W}_3\, \mathbf{c} + \sigma\Big(\frac{1}{M} \sum_{m=1}^{M}
        \sum_{x \in X_c} a^m_x\, \mathbf{t}^m_x\Big)

    The paper leaves :math:`\sigma` unnamed; the default is ELU, GAT's choice (``act``).
    ``variant="code"`` gives the released code (``vilbert_k3m.py``,
    ``structure_aggregator``): one head, the LeakyReLU before :math:`\mathbf{W}_2`, no
    :math:`\sigma`, and :math:`\mathbf{W}_3` on the aggregate,

    .. math::
        b_x = \mathbf{W}_2\, \mathrm{LeakyReLU}(\mathbf{t}_x), \qquad
        \mathbf{c}^* = \mathbf{c} + \mathbf{W}_3 \sum_{x \in X_c} a_x \mathbf{t}_x,

    which needs item features of width ``out_channels``.

    **Items with no triples.** Paper form: the sum is empty, so
    :math:`\mathbf{c}^* = \mathbf{W}_3 \mathbf{c} + \sigma(\mathbf{0})` (:math:`\mathbf{W}_3
    \mathbf{c}` for ELU). Code form: the code's fallback, one pseudo-triple with
    :math:`\mathbf{t} = \mathbf{c}`, so :math:`\mathbf{c}^* = \mathbf{c} + \mathbf{W}_3
    \mathbf{c}`. (The released loop takes that fallback only for the first item of a batch:
    a later pair-less item keeps the previous item's triples, a stale variable; this class
    takes the fallback for every pair-less item.)

    :math:`\mathbf{W}_1` is held as three blocks (``lin_item`` with :math:`\mathbf{W}_1`'s bias,
    ``lin_prop``, ``lin_value``). In the paper form the logit is a sum of per-node and per-edge
    scalars and the item's term of the sum is :math:`(\mathbf{W}_{1,c} \mathbf{c} +
    \mathbf{b}_1) \sum_x a_x` (a scatter of the weights only), so :math:`\mathbf{t}_x` is
    never built; the code form builds it once per edge for its LeakyReLU. With a property
    table and few properties per edge, the property term is summed per (item, property) pair
    by a matrix product (:func:`~mmgnn.nn.conv.relation_sum.relation_weighted_sum`).
    :math:`\mathbf{W}_2` has no bias: a constant shift cancels in the softmax.

    Args:
        in_channels (int or tuple): Size of the item and value features, or a tuple
            (value size, item size) for bipartite graphs.
        out_channels (int): Size :math:`F_{out}` of :math:`\mathbf{t}` and of the output.
        edge_dim (int): Size :math:`D` of the property features :math:`\mathbf{p}`.
        heads (int): Number of heads :math:`M`, averaged. (default: :obj:`1`)
        negative_slope (float, optional): LeakyReLU angle of the negative slope. (default:
            :obj:`0.2` in the paper form, GAT's; :obj:`0.01` in the code form, the released
            ``F.leaky_relu`` default)
        dropout (float): Dropout probability of the normalised attention weights (the paper
            has none). (default: :obj:`0.0`)
        act (str or Callable, optional): :math:`\sigma` of the paper form. (default:
            :obj:`"elu"`)
        variant (str): ``"paper"`` or ``"code"`` (see above). (default: :obj:`"paper"`)
        bias (bool): Bias of :math:`\mathbf{W}_3` (the code has one). (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          features :math:`(|\mathcal{V}|, F_{in})`, or (values, items)
          :math:`((|\mathcal{V}_v|, F_v), (|\mathcal{V}_c|, F_c))` if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)` (value :math:`\to` item),
          property features :math:`(|\mathcal{E}|, D)` per edge, or :math:`(P, D)` with
          edge types :math:`(|\mathcal{E}|)` indexing them
        - **output:** item features :math:`(|\mathcal{V}_c|, F_{out})`; with
          ``return_attention_weights``, also :math:`((2, |\mathcal{E}|), (|\mathcal{E}|, M))`
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        edge_dim: int,
        heads: int = 1,
        negative_slope: float | None = None,
        dropout: float = 0.0,
        act: str | Callable | None = "elu",
        variant: str = "paper",
        bias: bool = True,
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        value_ch, item_ch = (in_channels, in_channels) if isinstance(in_channels, int) \
            else in_channels
        if variant == "code" and (heads != 1 or item_ch != out_channels):
            raise ValueError(
                f"variant='code' is K3M's released single-head aggregator with the residual "
                f"c + W3(...): it needs heads=1 and item features of width out_channels, got "
                f"heads={heads}, item width {item_ch}, out_channels={out_channels}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.edge_dim = edge_dim
        self.heads = heads
        self.negative_slope = negative_slope if negative_slope is not None else \
            (0.2 if variant == "paper" else 0.01)
        self.dropout = dropout
        self.variant = variant
        self.act = activation_resolver(act) if act is not None and variant == "paper" else None

        hc = heads * out_channels
        self.lin_item = Linear(item_ch, hc, bias=True, weight_initializer="glorot")
        self.lin_prop = Linear(edge_dim, hc, bias=False, weight_initializer="glorot")
        self.lin_value = Linear(value_ch, hc, bias=False, weight_initializer="glorot")
        self.att = Parameter(torch.empty(1, heads, out_channels))  # W2, one row per head
        w3_in = item_ch if variant == "paper" else out_channels
        self.lin_out = Linear(w3_in, out_channels, bias=bias, weight_initializer="glorot")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin_item.reset_parameters()
        self.lin_prop.reset_parameters()
        self.lin_value.reset_parameters()
        self.lin_out.reset_parameters()
        glorot(self.att)

    def forward(
        self,
        x: Tensor | PairTensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        edge_type: OptTensor = None,
        return_attention_weights: bool | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        r"""Runs the aggregator.

        Args:
            x (Tensor or (Tensor, Tensor)): Node features, or (value, item) features.
            edge_index (Tensor): :obj:`(2, E)` edges, value :math:`\to` item.
            edge_attr (Tensor): Property features: :obj:`(E, D)` per edge, or the
                :obj:`(P, D)` property table when ``edge_type`` is given.
            edge_type (Tensor, optional): :obj:`(E,)` property id per edge.
            return_attention_weights (bool, optional): If set, also return
                :obj:`(edge_index, alpha)` with :obj:`alpha` of shape :obj:`(E, heads)`.
        """
        H, C = self.heads, self.out_channels
        x_value, x_item = (x, x) if isinstance(x, Tensor) else x
        t_item = self.lin_item(x_item).view(-1, H, C)  # W1 c + b1
        t_value = self.lin_value(x_value).view(-1, H, C)
        t_prop = self.lin_prop(edge_attr).view(-1, H, C)
        size = (t_value.size(0), t_item.size(0))

        if self.variant == "paper":
            alpha_prop = (t_prop * self.att).sum(-1)
            if edge_type is not None:
                alpha_prop = alpha_prop.index_select(0, edge_type)
            # edge_updater_type: (alpha: OptPairTensor, alpha_edge: Tensor)
            alpha = self.edge_updater(
                edge_index, alpha=((t_value * self.att).sum(-1), (t_item * self.att).sum(-1)),
                alpha_edge=alpha_prop, size=size)
        else:  # the code's LeakyReLU acts on t itself, which must be built per edge
            src, dst = edge_index
            prop = t_prop if edge_type is None else t_prop.index_select(0, edge_type)
            t = t_item.index_select(0, dst) + t_value.index_select(0, src) + prop
            logits = (F.leaky_relu(t, self.negative_slope) * self.att).sum(-1)
            alpha = self.edge_updater(edge_index, alpha=(None, None), alpha_edge=logits,
                                      size=size)

        # With a property table, the property term is summed per (item, property) pair.
        dense = edge_type is not None and \
            use_dense_route(size[1], t_prop.size(0), edge_index.size(1))
        # propagate_type: (x: Tensor, alpha: Tensor, prop: OptTensor, edge_type: OptTensor)
        agg = self.propagate(edge_index, x=t_value, alpha=alpha, prop=None if dense else t_prop,
                             edge_type=edge_type, size=size)
        if dense:
            agg = agg + relation_weighted_sum(alpha, t_prop, edge_index[1], edge_type, size[1])
        weight_sum = scatter(alpha, edge_index[1], dim=0, dim_size=size[1], reduce="sum")
        agg = agg + t_item * weight_sum.unsqueeze(-1)

        if self.variant == "paper":
            agg = agg.mean(dim=1)
            out = self.lin_out(x_item) + (self.act(agg) if self.act is not None else agg)
        else:
            agg = agg.squeeze(1)
            has_triples = scatter(torch.ones_like(edge_index[1]), edge_index[1], dim=0,
                                  dim_size=size[1], reduce="sum") > 0
            agg = torch.where(has_triples.unsqueeze(-1), agg, x_item)
            out = x_item + self.lin_out(agg)
        if return_attention_weights:
            return out, (edge_index, alpha)
        return out

    def edge_update(self, alpha_j: OptTensor, alpha_i: OptTensor, alpha_edge: Tensor,
                    index: Tensor, ptr: OptTensor, dim_size: int | None) -> Tensor:
        if alpha_j is not None and alpha_i is not None:
            # paper form: LeakyReLU(W2 t), with W2 t split into its node and edge blocks
            alpha = F.leaky_relu(alpha_j + alpha_i + alpha_edge, self.negative_slope)
        else:  # code form: the logits W2 LeakyReLU(t) arrive whole, one per edge
            alpha = alpha_edge
        alpha = softmax(alpha, index, ptr, dim_size)
        return F.dropout(alpha, p=self.dropout, training=self.training)

    def message(self, x_j: Tensor, alpha: Tensor, prop: OptTensor,
                edge_type: OptTensor) -> Tensor:
        if prop is not None:
            x_j = x_j + (prop if edge_type is None else prop.index_select(0, edge_type))
        return alpha.unsqueeze(-1) * x_j

    def __repr__(self) -> str:
        extra = "" if self.variant == "paper" else ", variant='code'"
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"edge_dim={self.edge_dim}, heads={self.heads}{extra})")
