"""K3M's downstream heads: item classification and product alignment (paper Sec. 4.3-4.4;
the release has no downstream code, spec ``K3M.md``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmgnn.models.k3m.model import K3M


class ItemClassifier(nn.Module):
    r"""Item category classification from the item representation:
    :math:`\mathrm{softmax}(W\,\mathrm{dropout}(\mathbf{c}^*_i) + b)`, fine-tuned end to end
    with the (pre)trained :class:`~mmgnn.models.K3M`.

    Args:
        model (K3M): The encoder.
        num_classes (int): Categories.
        dropout (float): Dropout before the linear layer. (default: :obj:`0.1`)

    Shapes:
        - **input:** item ids :math:`(B,)`
        - **output:** logits :math:`(B, C)`
    """

    def __init__(self, model: K3M, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.model, self.num_classes = model, num_classes
        self.dropout = nn.Dropout(dropout)
        self.lin = nn.Linear(model.hidden, num_classes)

    def forward(self, items: Tensor) -> Tensor:
        return self.lin(self.dropout(self.model(items).item))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r}, num_classes={self.num_classes})"


class PairClassifier(nn.Module):
    r"""Product alignment: whether two items are the same product, from
    :math:`[\mathbf{a}; \mathbf{b}; |\mathbf{a} - \mathbf{b}|; \mathbf{a} \odot \mathbf{b}]`
    of their representations through a two-layer MLP to two logits. The paper fine-tunes K3M
    on item pairs but does not print the head; this symmetric matching head is ours.

    Args:
        model (K3M): The encoder.
        hidden (int, optional): MLP width. (default: the encoder width)
        dropout (float): Dropout. (default: :obj:`0.1`)

    Shapes:
        - **input:** item ids :math:`(B,)` and :math:`(B,)`
        - **output:** logits :math:`(B, 2)`
    """

    def __init__(self, model: K3M, hidden: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.model = model
        d = model.hidden
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * d, hidden or d), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden or d, 2))

    @staticmethod
    def features(a: Tensor, b: Tensor) -> Tensor:
        return torch.cat([a, b, (a - b).abs(), a * b], dim=-1)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        rep = self.model(torch.cat([left, right])).item
        a, b = rep.split([len(left), len(right)])
        return self.mlp(self.features(a, b))


@torch.no_grad()
def classification_accuracy(classifier: nn.Module, items: Tensor, y: Tensor,
                            batch_size: int = 64, seed: int = 0) -> float:
    """Accuracy of ``classifier(items)`` against ``y[items]`` in eval mode (deterministic by
    default; with ``K3MConfig.eval_noise``, the released Gumbel draws of hard IIFM at
    evaluation, the draws are seeded so that repeated evaluations share them)."""
    was = classifier.training
    classifier.eval()
    correct = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for batch in items.split(batch_size):
            pred = classifier(batch).argmax(-1).cpu()
            correct += int((pred == y[batch]).sum())
    classifier.train(was)
    return correct / max(1, len(items))
