"""IMF's structural encoder: stacked KBGAT attention over the training graph, scored by TransE
(spec IMF.md, section 5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.data.kg import inverse_relation
from mmgnn.models.base import LinkPredictor
from mmgnn.nn.conv import KBGATConv

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG


class GATTransE(LinkPredictor):
    r"""The GAT + TransE structural encoder of IMF (`Li et al., WWW 2023
    <https://arxiv.org/abs/2303.10816>`_; spec ``IMF.md``, section 5), i.e. KBGAT's encoder
    (`Nathani et al., 2019 <https://arxiv.org/abs/1906.01195>`_, Sec. 3.3-3.4) trained with a
    TransE loss. Its entity and relation embeddings are what IMF's ``pre_trained`` path
    starts from; it is also a link predictor of its own.

    .. math::
        \mathbf{H}^{(0)} &= \mathbf{E}, \qquad
        \mathbf{H}^{(l)} = \mathrm{KBGAT}^{(l)}\big(\mathrm{Dropout}(\mathbf{H}^{(l-1)}),
        \mathcal{G}_\mathrm{train}, \mathbf{G}^{(l)}\big) \\
        \mathbf{X} &= \operatorname{L2norm}\big(\mathbf{E}\,\mathbf{W}^E + \mathbf{H}^{(L)}
        \big), \qquad f(h, r, t) = -\|\mathbf{x}_h + \mathbf{r}_r - \mathbf{x}_t\|_1

    Layers :math:`1 \ldots L-1` have ``heads`` concatenated heads of width
    ``dim / heads``; the last layer has one head of width ``dim``
    (KBGAT's ``out_att``); each is a :class:`~mmgnn.nn.conv.KBGATConv` (ELU inside). Dropout
    between layers, and on the attention, is ``dropout``. Training (IMF): margin ranking loss
    with margin 1 on one head and one tail corruption per positive, filtered with the
    training triples (``TrainConfig(loss="margin", sampler="head_tail", num_negatives=2)``;
    IMF's released code filters with every split: ``negative_filter="all_splits"``, which
    leaks the held-out answers into training); the encoder runs once per optimiser step.

    **Message passing sees the training triples only.** The graph is fixed at construction
    (``build_model`` and :meth:`from_kg` pass ``kg.train_graph()``); validation and test
    triples never enter it,
    the leak that inflated KBGAT's published numbers (Sun et al., ACL 2020,
    `"A Re-evaluation of Knowledge Graph Completion Methods"
    <https://arxiv.org/abs/1911.03903>`_). With ``reciprocal`` the graph also holds every
    training edge reversed with relation :math:`r + R` (added here when the edges given have
    none, as ``kg.train_graph(add_inverse=True)`` orders them), and head queries use those
    relations.

    Relations: the TransE decoder's table :math:`\mathbf{R}` (width ``dim``) is
    the relation output, and feeds the attention of layer 1 (:math:`\mathbf{G}^{(1)} =
    \mathbf{R}`); layer :math:`l` passes :math:`\mathbf{G}^{(l+1)} = \mathbf{W}^{R,(l)}
    \mathbf{G}^{(l)}` on (:meth:`KBGATConv.transform_relations`). KBGAT instead scores with
    the transformed input table :math:`\mathbf{R}\mathbf{W}^R`, a reparametrisation of a
    free table (rank at most the input width). Entity rows of :math:`\mathbf{E}` are
    re-normalised to unit L2 norm after every step (KBGAT and IMF normalise both input
    tables at every forward pass; the relation table is left free here, as in TransE).
    KBGAT's output mask (only tails of the batch keep the attention output) is the identity
    for full-graph message passing: nodes without incoming edges already get
    :math:`\mathrm{ELU}(0) = 0`.

    Released code (IMF ``layers/layer.py``): no relation term in the attention and
    :math:`\exp(-\mathrm{LeakyReLU}(\cdot))` weights; ``relation_attention=False,
    negate_attention=True`` gives it. The defaults follow the KBGAT paper.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R` of the dataset.
        edge_index (Tensor): :obj:`(2, E)` training edges, head :math:`\to` tail (with
            ``reciprocal``, their inverses may be included; otherwise they are added).
        edge_type (Tensor): :obj:`(E,)` relation ids of those edges.
        dim (int): Width of the output embeddings (and of the relations).
            (default: :obj:`200`)
        in_channels (int, optional): Width of the entity input table :math:`\mathbf{E}`.
            (default: ``dim``)
        heads (int): Heads of the hidden layers, concatenated. (default: :obj:`2`)
        num_layers (int): Number of :class:`~mmgnn.nn.conv.KBGATConv` layers. (default:
            :obj:`2`)
        dropout (float): Dropout between layers and on the attention. (default: :obj:`0.3`)
        negative_slope (float): LeakyReLU slope of the attention. (default: :obj:`0.2`)
        relation_attention (bool): Relation term in the attention messages. (default:
            :obj:`True`)
        negate_attention (bool): The released code's :math:`\exp(-\mathrm{LeakyReLU})`.
            (default: :obj:`False`)
        p_norm (int): Norm of the TransE distance. (default: :obj:`1`)
        reciprocal (bool): Inverse edges and relations (see above). (default: :obj:`False`)

    Shapes:
        - **encode:** :math:`\rightarrow (N, \text{dim})`, rows of unit L2 norm.
        - **scores:** as :class:`~mmgnn.models.base.LinkPredictor`.
    """

    regimes: ClassVar[tuple[str, ...]] = ("negative",)
    needs_reciprocal: ClassVar[bool] = False
    needs_modalities: ClassVar[bool] = False
    default_modalities: ClassVar[tuple[str, ...]] = ()
    fused_corruptions: ClassVar[bool] = True
    #: IMF's structural-encoder recipe: margin ranking loss (margin 1) on one head and one
    #: tail corruption per positive, Adam lr 5e-4, weight decay 1e-5.
    train_defaults: ClassVar[dict[str, Any]] = {
        "regime": "negative", "loss": "margin", "margin": 1.0, "sampler": "head_tail",
        "num_negatives": 2, "lr": 5e-4, "weight_decay": 1e-5}

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        edge_index: Tensor,
        edge_type: Tensor,
        dim: int = 200,
        in_channels: int | None = None,
        heads: int = 2,
        num_layers: int = 2,
        dropout: float = 0.3,
        negative_slope: float = 0.2,
        relation_attention: bool = True,
        negate_attention: bool = False,
        p_norm: int = 1,
        reciprocal: bool = False,
    ) -> None:
        super().__init__(num_entities, num_relations, "transe", reciprocal,
                         hidden_channels=dim,
                         decoder_kwargs={"p_norm": p_norm, "normalize_entities": False})
        num_rel = self.decoder_relations
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads}): the hidden "
                             f"layers concatenate heads of width dim / heads")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        edge_index, edge_type = torch.as_tensor(edge_index), torch.as_tensor(edge_type)
        if edge_index.dim() != 2 or edge_index.size(0) != 2 or \
                edge_type.shape != (edge_index.size(1),):
            raise ValueError(f"edge_index must be (2, E) and edge_type (E,), got "
                             f"{tuple(edge_index.shape)} and {tuple(edge_type.shape)}")
        if edge_type.numel() and int(edge_type.max()) >= num_rel:
            raise ValueError(f"edge_type holds relation {int(edge_type.max())}, but the model "
                             f"has {num_rel} relations (reciprocal={reciprocal})")
        if reciprocal and edge_type.numel() and int(edge_type.max()) < num_relations:
            # the plain training graph: add the inverse edges (train_graph's order)
            edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
            edge_type = torch.cat([edge_type, inverse_relation(edge_type, num_relations)])
        self.dim = dim
        self.in_channels = in_channels or dim
        self.heads = heads
        self.num_layers = num_layers
        self.dropout = dropout
        self.relation_attention = relation_attention
        # Not saved with the weights: the graph is rebuilt from kg.train_graph().
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.register_buffer("edge_type", edge_type.long(), persistent=False)

        self.entity = torch.nn.Embedding(num_entities, self.in_channels)
        self.skip = torch.nn.Linear(self.in_channels, dim, bias=False)  # W^E
        rel_channels = dim if relation_attention else None
        self.convs = torch.nn.ModuleList()
        width = self.in_channels
        for layer in range(num_layers):
            last = layer == num_layers - 1
            self.convs.append(KBGATConv(
                width, dim if last else dim // heads,
                heads=1 if last else heads, concat=not last, rel_channels=rel_channels,
                negative_slope=negative_slope, dropout=dropout,
                negate_attention=negate_attention, relation_update=not last))
            width = dim
        self.reset_parameters()

    @classmethod
    def from_kg(cls, kg: MultiModalKG, reciprocal: bool = False, **kwargs) -> GATTransE:
        """The model over ``kg``'s **training** graph (see the class docstring)."""
        edge_index, edge_type = kg.train_graph(add_inverse=reciprocal)
        return cls(kg.num_entities, kg.num_relations, edge_index, edge_type,
                   reciprocal=reciprocal, **kwargs)

    def reset_parameters(self) -> None:
        self.decoder.reset_parameters()
        self.decoder.reset_entity_parameters(self.entity.weight)  # TransE: unit L2 rows
        torch.nn.init.xavier_uniform_(self.skip.weight, gain=1.414)  # KBGAT's init of W^E
        for conv in self.convs:
            conv.reset_parameters()

    def encode(self) -> Tensor:
        x = self.entity.weight
        rel = self.decoder.rel_emb.weight if self.relation_attention else None
        h = x
        for layer, conv in enumerate(self.convs):
            if layer > 0:
                h = F.dropout(h, p=self.dropout, training=self.training)
            h = conv(h, self.edge_index, rel, self.edge_type)
            if rel is not None and layer < self.num_layers - 1:
                rel = conv.transform_relations(rel)
        return F.normalize(self.skip(x) + h, p=2.0, dim=-1)

    @torch.no_grad()
    def after_step(self) -> None:
        self.entity.weight.div_(
            torch.linalg.vector_norm(self.entity.weight, dim=-1, keepdim=True).clamp_min_(1e-12))

    def __repr__(self) -> str:
        return (f"GATTransE({self.num_entities}, num_relations={self.num_relations}, "
                f"dim={self.dim}, heads={self.heads}, "
                f"num_layers={self.num_layers}, edges={self.edge_index.size(1)}"
                f"{', reciprocal=True' if self.reciprocal else ''})")
