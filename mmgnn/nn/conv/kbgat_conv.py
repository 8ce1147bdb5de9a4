"""KBGAT's relational graph attention, the structural encoder of IMF (spec IMF.md, section 5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot, zeros
from torch_geometric.typing import OptTensor, PairTensor
from torch_geometric.utils import scatter, softmax

from mmgnn.nn.conv.relation_sum import relation_weighted_sum, use_dense_route


class KBGATConv(MessagePassing):
    r"""The relational graph attention layer from `"Learning Attention-based Embeddings for
    Relation Prediction in Knowledge Graphs" <https://arxiv.org/abs/1906.01195>`_ (Nathani et
    al., 2019, Sec. 3.3), used by IMF as its structural encoder (spec ``IMF.md``,
    section 5).

    For a target entity :math:`i` and its incoming edges :math:`(j, k, i)` of relation
    :math:`k`, per head :math:`m`:

    .. math::
        \mathbf{c}^m_{ijk} &= \mathbf{W}^m \left[\mathbf{h}_i \,\Vert\, \mathbf{h}_j
        \,\Vert\, \mathbf{g}_k\right] \\
        \alpha^m_{ijk} &= \operatorname{softmax}_{(j,k) \in \mathcal{N}(i)}\left(
        \mathrm{LeakyReLU}\left(\mathbf{a}^{m\top} \mathbf{c}^m_{ijk}\right)\right) \\
        \mathbf{h}'_i &= \mathrm{ELU}\Big(\big\Vert_{m=1}^{M} \sum_{(j,k) \in \mathcal{N}(i)}
        \alpha^m_{ijk}\, \mathbf{c}^m_{ijk}\Big)

    with dropout on :math:`\alpha`, and the heads averaged instead of concatenated when
    ``concat=False`` (KBGAT's output layer). The softmax is
    :func:`torch_geometric.utils.softmax` over each target's incoming edges. Relation
    embeddings are transformed alongside by :meth:`transform_relations`,
    :math:`\mathbf{g}'_k = \mathbf{W}^R \mathbf{g}_k` (Sec. 3.3), to feed the next layer.

    :math:`\mathbf{W}^m` is held as three blocks (``lin_dst``, ``lin_src``, ``lin_rel``), so
    :math:`\mathbf{c}_{ijk} = \mathbf{W}_\mathrm{dst} \mathbf{h}_i + \mathbf{W}_\mathrm{src}
    \mathbf{h}_j + \mathbf{W}_\mathrm{rel} \mathbf{g}_k` is never built per edge: the attention
    logit is a sum of per-node and per-relation scalars (as in
    :class:`~torch_geometric.nn.conv.GATConv`), and the target term of the sum is
    :math:`\mathbf{W}_\mathrm{dst} \mathbf{h}_i \sum_{(j,k)} \alpha_{ijk}`, a scatter of the
    attention weights only. With a relation table and few relations per edge, the relation
    term is summed per (target, relation) pair by a matrix product
    (:func:`~mmgnn.nn.conv.relation_sum.relation_weighted_sum`). A node without incoming
    edges gets :math:`\mathrm{ELU}(\mathbf{b})` (zero without bias), as in KBGAT's code,
    which divides an empty sum by :math:`10^{-12}`.

    Released code (KBGAT ``SpGraphAttentionLayer``, copied by IMF ``layers/layer.py``) versus
    paper: the code weights edges by :math:`\exp(-\mathrm{LeakyReLU}(\cdot))`, i.e. a softmax
    of the **negated** logits (``negate_attention=True``), and IMF's structural encoder passes
    no relation term (``rel_channels=None``). Defaults follow the paper.

    Args:
        in_channels (int or tuple): Size of each input entity feature, or a tuple of source
            and target sizes for bipartite graphs.
        out_channels (int): Size of each output feature per head.
        heads (int): Number of attention heads :math:`M`. (default: :obj:`1`)
        concat (bool): Concatenate the heads; if :obj:`False`, average them. (default:
            :obj:`True`)
        rel_channels (int, optional): Size of the relation features :math:`\mathbf{g}_k`;
            :obj:`None` leaves the relation term out (IMF's released code). (default:
            :obj:`None`)
        negative_slope (float): LeakyReLU angle of the negative slope. (default: :obj:`0.2`)
        dropout (float): Dropout probability of the normalised attention coefficients.
            (default: :obj:`0.0`)
        negate_attention (bool): Softmax of :math:`-\mathrm{LeakyReLU}(\cdot)`, the released
            code's form. (default: :obj:`False`)
        bias (bool): Add a learnable bias before the ELU (KBGAT has none). (default:
            :obj:`False`)
        relation_update (bool): Hold :math:`\mathbf{W}^R` for :meth:`transform_relations`
            (with ``rel_channels``; a last layer has no next layer to feed). (default:
            :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})` or
          :math:`((|\mathcal{V_s}|, F_{s}), (|\mathcal{V_t}|, F_{t}))` if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)` (source :math:`\to` target),
          relation features :math:`(|\mathcal{E}|, D)` per edge, or :math:`(R, D)` with
          edge types :math:`(|\mathcal{E}|)` indexing them *(optional)*
        - **output:** node features :math:`(|\mathcal{V}_t|, M \cdot F_{out})` or
          :math:`(|\mathcal{V}_t|, F_{out})` if ``concat=False``; with
          ``return_attention_weights``, also :math:`((2, |\mathcal{E}|), (|\mathcal{E}|, M))`
        - **transform_relations:** :math:`(*, D) \rightarrow (*, M \cdot F_{out})` or
          :math:`(*, F_{out})` if ``concat=False``
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        rel_channels: int | None = None,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        negate_attention: bool = False,
        bias: bool = False,
        relation_update: bool = True,
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.concat = concat
        self.rel_channels = rel_channels
        self.negative_slope = negative_slope
        self.dropout = dropout
        self.negate_attention = negate_attention
        self.relation_update = relation_update

        src, dst = (in_channels, in_channels) if isinstance(in_channels, int) else in_channels
        self.lin_dst = Linear(dst, heads * out_channels, bias=False, weight_initializer="glorot")
        self.lin_src = Linear(src, heads * out_channels, bias=False, weight_initializer="glorot")
        self.att = Parameter(torch.empty(1, heads, out_channels))
        total_out = heads * out_channels if concat else out_channels
        if rel_channels is not None:
            self.lin_rel = Linear(rel_channels, heads * out_channels, bias=False,
                                  weight_initializer="glorot")
        else:
            self.lin_rel = None
        self.lin_rel_out = None
        if rel_channels is not None and relation_update:
            self.lin_rel_out = Linear(rel_channels, total_out, bias=False,
                                      weight_initializer="glorot")
        if bias:
            self.bias = Parameter(torch.empty(total_out))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin_dst.reset_parameters()
        self.lin_src.reset_parameters()
        if self.lin_rel is not None:
            self.lin_rel.reset_parameters()
        if self.lin_rel_out is not None:
            self.lin_rel_out.reset_parameters()
        glorot(self.att)
        zeros(self.bias)

    def forward(
        self,
        x: Tensor | PairTensor,
        edge_index: Tensor,
        edge_attr: OptTensor = None,
        edge_type: OptTensor = None,
        return_attention_weights: bool | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        r"""Runs the layer.

        Args:
            x (Tensor or (Tensor, Tensor)): Entity features, or (source, target) features.
            edge_index (Tensor): :obj:`(2, E)` edges, source :math:`\to` target.
            edge_attr (Tensor, optional): Relation features: :obj:`(E, D)` per edge, or the
                :obj:`(R, D)` relation table when ``edge_type`` is given (the cheaper form:
                the table is projected once, not every edge). Required when the layer has
                ``rel_channels``; ignored otherwise.
            edge_type (Tensor, optional): :obj:`(E,)` relation id per edge into ``edge_attr``.
            return_attention_weights (bool, optional): If set, also return
                :obj:`(edge_index, alpha)` with :obj:`alpha` of shape :obj:`(E, heads)`.
        """
        H, C = self.heads, self.out_channels
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        h_src = self.lin_src(x_src).view(-1, H, C)
        h_dst = self.lin_dst(x_dst).view(-1, H, C)
        size = (h_src.size(0), h_dst.size(0))

        rel: OptTensor = None
        alpha_rel: OptTensor = None
        if self.lin_rel is not None:
            if edge_attr is None:
                raise ValueError(f"{type(self).__name__} was built with rel_channels="
                                 f"{self.rel_channels}: pass the relation features edge_attr")
            rel = self.lin_rel(edge_attr).view(-1, H, C)
            alpha_rel = (rel * self.att).sum(dim=-1)
            if edge_type is not None:  # per relation -> per edge, scalars before vectors
                alpha_rel = alpha_rel.index_select(0, edge_type)

        alpha_src = (h_src * self.att).sum(dim=-1)
        alpha_dst = (h_dst * self.att).sum(dim=-1)

        # edge_updater_type: (alpha: PairTensor, alpha_rel: OptTensor)
        alpha = self.edge_updater(edge_index, alpha=(alpha_src, alpha_dst), alpha_rel=alpha_rel,
                                  size=size)
        # With a relation table, the relation term is summed per (target, relation) pair.
        dense = rel is not None and edge_type is not None and \
            use_dense_route(size[1], rel.size(0), edge_index.size(1))
        # propagate_type: (x: Tensor, alpha: Tensor, rel: OptTensor, edge_type: OptTensor)
        out = self.propagate(edge_index, x=h_src, alpha=alpha, rel=None if dense else rel,
                             edge_type=edge_type, size=size)
        if dense:
            out = out + relation_weighted_sum(alpha, rel, edge_index[1], edge_type, size[1])
        # The target's own term: W_dst h_i times the sum of its (dropped-out) weights.
        weight_sum = scatter(alpha, edge_index[1], dim=0, dim_size=size[1], reduce="sum")
        out = out + h_dst * weight_sum.unsqueeze(-1)

        out = out.reshape(-1, H * C) if self.concat else out.mean(dim=1)
        if self.bias is not None:
            out = out + self.bias
        out = F.elu(out)
        if return_attention_weights:
            return out, (edge_index, alpha)
        return out

    def transform_relations(self, rel: Tensor) -> Tensor:
        r"""Relation embeddings for the next layer, :math:`\mathbf{g}' = \mathbf{W}^R
        \mathbf{g}` (KBGAT Sec. 3.3)."""
        if self.lin_rel_out is None:
            raise ValueError(f"{type(self).__name__} has no relation transform (built without "
                             f"rel_channels or with relation_update=False)")
        return self.lin_rel_out(rel)

    def edge_update(self, alpha_j: Tensor, alpha_i: Tensor, alpha_rel: OptTensor,
                    index: Tensor, ptr: OptTensor, dim_size: int | None) -> Tensor:
        alpha = alpha_j + alpha_i
        if alpha_rel is not None:
            alpha = alpha + alpha_rel
        alpha = F.leaky_relu(alpha, self.negative_slope)
        if self.negate_attention:
            alpha = -alpha
        alpha = softmax(alpha, index, ptr, dim_size)
        return F.dropout(alpha, p=self.dropout, training=self.training)

    def message(self, x_j: Tensor, alpha: Tensor, rel: OptTensor,
                edge_type: OptTensor) -> Tensor:
        if rel is not None:
            x_j = x_j + (rel if edge_type is None else rel.index_select(0, edge_type))
        return alpha.unsqueeze(-1) * x_j

    def __repr__(self) -> str:
        extra = "" if self.rel_channels is None else f", rel_channels={self.rel_channels}"
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"heads={self.heads}{extra})")
