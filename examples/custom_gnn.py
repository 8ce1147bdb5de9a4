"""Build your own GNN link predictor from a PyG layer, mmgnn's KBGATConv and an mmgnn decoder,
train it on FB15k-237 and rank the test split with mmgnn's filtered evaluation.

    MMGNN_DATA=/path/to/datasets python examples/custom_gnn.py --minutes 5

Any :class:`~mmgnn.models.LinkPredictor` trains with :func:`mmgnn.train.fit` and evaluates with
:func:`mmgnn.eval.evaluate`: it only has to say how it computes entity representations
(``encode``); the decoder scores triples against them.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import SAGEConv

from mmgnn.data import MultiModalKG, load_dataset
from mmgnn.eval import evaluate
from mmgnn.models import LinkPredictor
from mmgnn.nn.conv import KBGATConv
from mmgnn.nn.kge import DistMult
from mmgnn.train import TrainConfig, fit, seed_everything


class SageKBGAT(LinkPredictor):
    """Entity table -> SAGEConv (PyG) -> KBGATConv (mmgnn) with a residual, scored by DistMult."""

    def __init__(self, kg: MultiModalKG, dim: int = 64, heads: int = 2) -> None:
        super().__init__(kg.num_entities, kg.num_relations, DistMult(kg.num_relations, dim))
        # Training edges only, both directions (inverse relations r + R): never valid/test.
        edge_index, edge_type = kg.train_graph(add_inverse=True)
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("edge_type", edge_type, persistent=False)
        self.entity = torch.nn.Embedding(kg.num_entities, dim)
        self.relation = torch.nn.Embedding(2 * kg.num_relations, dim)  # attention features
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="FB15k-237")
    parser.add_argument("--minutes", type=float, default=5.0, help="training wall-time budget")
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()

    kg = load_dataset(args.dataset, add_side_info=False)
    seed_everything(0)  # the TrainConfig's seed, before the weights are drawn
    model = SageKBGAT(kg, dim=args.dim)
    print(kg, model, sep="\n")
    # The encoder runs once per step over the whole graph: few, large batches.
    config = TrainConfig(model="custom", dim=args.dim, regime="negative", loss="softplus",
                         num_negatives=16, batch_size=8192, lr=5e-3,
                         epochs=1000, eval_every=0, patience=0, max_minutes=args.minutes)
    trainer = fit(model, kg, config)
    print(f"trained {trainer.epoch} epochs, validation MRR {trainer.best_mrr:.4f}")
    print(evaluate(model, kg, "test").format())


if __name__ == "__main__":
    main()
