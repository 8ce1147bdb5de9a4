"""Build your own GNN link predictor from a PyG layer, mmgnn's KBGATConv and an mmgnn decoder,
register it by name, train it on FB15k-237 with mmgnn's trainer and rank the test split with
mmgnn's filtered evaluation.

    MMGNN_DATA=/path/to/datasets python examples/custom_gnn.py --minutes 5

A model is a :class:`~mmgnn.models.LinkPredictor` whose ``__init__`` takes plain keyword
arguments; it only has to say how it computes entity representations (``encode``), and the
decoder scores triples against them. ``@register_model("sage_kbgat")`` gives it a name, as the
built-in models have, so that :func:`~mmgnn.models.build_model` builds it for a graph: the
arguments that come from the data (``num_entities``, ``num_relations``, the training graph's
``edge_index`` / ``edge_type``, ...) are filled from ``kg`` by the constructor's signature,
the rest are yours (``dim``, ``heads``). A :class:`~mmgnn.train.config.ModelSpec`
``(name="sage_kbgat", args={"dim": 64})`` in a config file names it the same way. The one
:class:`~mmgnn.train.Trainer` trains it as it trains every built-in model, and
:func:`mmgnn.eval.evaluate` ranks it.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import SAGEConv

from mmgnn.data import load_dataset, relation_count
from mmgnn.eval import evaluate
from mmgnn.models import LinkPredictor, build_model, register_model
from mmgnn.nn.conv import KBGATConv
from mmgnn.train import TrainConfig, Trainer, seed_everything


@register_model("sage_kbgat")
class SageKBGAT(LinkPredictor):
    """Entity table -> SAGEConv (PyG) -> KBGATConv (mmgnn) with a residual, scored by DistMult.

    Args:
        num_entities (int): Entities :math:`N` (from the graph).
        num_relations (int): Relations :math:`R` (from the graph).
        edge_index (Tensor): Training edges :obj:`(2, E)`, head to tail (from the graph).
        edge_type (Tensor): Their relation ids :obj:`(E,)` (from the graph).
        dim (int): Width of the entity and relation representations. (default: :obj:`64`)
        heads (int): Attention heads of the KBGAT layer. (default: :obj:`2`)
    """

    def __init__(self, num_entities: int, num_relations: int, edge_index: Tensor,
                 edge_type: Tensor, dim: int = 64, heads: int = 2) -> None:
        super().__init__(num_entities, num_relations, "distmult", hidden_channels=dim)
        # Messages flow both ways: every training edge also reversed, with relation r + R.
        # Training edges only: never valid/test.
        self.register_buffer("edge_index", torch.cat([edge_index, edge_index.flip(0)], dim=1),
                             persistent=False)
        self.register_buffer("edge_type", torch.cat([edge_type, edge_type + num_relations]),
                             persistent=False)
        self.entity = torch.nn.Embedding(num_entities, dim)
        # Attention features of the relations and their inverses.
        self.relation = torch.nn.Embedding(relation_count(num_relations, True), dim)
        self.sage = SAGEConv(dim, dim)
        self.kbgat = KBGATConv(dim, dim // heads, heads=heads, rel_channels=dim, dropout=0.1,
                               relation_update=False)  # no next layer to feed relations
        torch.nn.init.xavier_uniform_(self.entity.weight)
        torch.nn.init.xavier_uniform_(self.relation.weight)

    def encode(self) -> Tensor:
        x = self.entity.weight
        h = F.relu(self.sage(x, self.edge_index))
        h = self.kbgat(h, self.edge_index, self.relation.weight, self.edge_type)
        return x + h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="FB15k-237")
    parser.add_argument("--minutes", type=float, default=5.0, help="training wall-time budget")
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()

    kg = load_dataset(args.dataset, add_side_info=False)
    # The encoder runs once per step over the whole graph: few, large batches.
    config = TrainConfig(regime="negative", loss="softplus", num_negatives=16,
                         batch_size=8192, lr=5e-3, epochs=1000, eval_every=0, patience=0,
                         max_minutes=args.minutes)
    seed_everything(config.seed)  # before the weights are drawn
    model = build_model("sage_kbgat", kg, dim=args.dim)  # the graph fills the rest
    print(kg, model, sep="\n")
    trainer = Trainer(model, kg, config)  # what fit(model, kg, config) does in one call
    trainer.fit()
    print(f"trained {trainer.epoch} epochs, validation MRR {trainer.best_mrr:.4f}")
    print(evaluate(model, kg, "test").format())


if __name__ == "__main__":
    main()
