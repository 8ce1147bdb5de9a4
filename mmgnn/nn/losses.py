"""Training losses for link prediction: negative-sampling losses and 1-to-all losses.

Negative-sampling losses take positive scores :obj:`(B,)` and negative scores :obj:`(B, K)`
(``K`` corruptions per positive); 1-to-all losses take a :obj:`(B, N)` score matrix. Scores
follow mmgnn's convention: higher means more plausible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class MarginRankingLoss(torch.nn.Module):
    r"""Pairwise hinge loss of TransE (Bordes et al., 2013, Eq. 1):

    .. math::
        \mathcal{L} = \frac{1}{BK} \sum_{i,k} \max(0,\ \gamma - s_i + s'_{ik})

    Args:
        margin (float): :math:`\gamma`. (default: :obj:`1.0`)
    """

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, pos: Tensor, neg: Tensor) -> Tensor:
        return F.relu(self.margin - pos[:, None] + neg).mean()


class SoftplusLoss(torch.nn.Module):
    r"""Logistic loss (Trouillon et al., 2016, Eq. 11), positives and negatives weighted equally:

    .. math::
        \mathcal{L} = \tfrac12 \Big(\frac{1}{B}\sum_i \log(1 + e^{-s_i})
        + \frac{1}{BK}\sum_{i,k} \log(1 + e^{s'_{ik}})\Big)
    """

    def forward(self, pos: Tensor, neg: Tensor) -> Tensor:
        return 0.5 * (F.softplus(-pos).mean() + F.softplus(neg).mean())


class SelfAdversarialLoss(torch.nn.Module):
    r"""Self-adversarial negative-sampling loss of RotatE (Sun et al., 2019, Eq. 5):

    .. math::
        \mathcal{L} = -\log\sigma(\gamma + s) - \sum_k p_k \log\sigma(-\gamma - s'_k),
        \qquad p_k = \operatorname{softmax}_k(\alpha\, s'_k)

    with the weights :math:`p_k` treated as constants (no gradient), averaged over the batch;
    positive and negative parts are averaged as in the official code. Decoders whose scores
    already contain the margin (RotatE, PairRE: :math:`s = \gamma - d`) use ``margin=0``;
    for a pure distance score such as TransE's :math:`s = -d` pass :math:`\gamma` here.

    Args:
        margin (float): :math:`\gamma` added to the scores. (default: :obj:`0.0`)
        temperature (float): Adversarial temperature :math:`\alpha`. (default: :obj:`1.0`)
    """

    def __init__(self, margin: float = 0.0, temperature: float = 1.0) -> None:
        super().__init__()
        self.margin = margin
        self.temperature = temperature

    def forward(self, pos: Tensor, neg: Tensor) -> Tensor:
        weights = torch.softmax(self.temperature * neg.detach(), dim=-1)
        pos_loss = -F.logsigmoid(self.margin + pos).mean()
        neg_loss = -(weights * F.logsigmoid(-self.margin - neg)).sum(dim=-1).mean()
        return 0.5 * (pos_loss + neg_loss)


class BCEWithLabelSmoothing(torch.nn.Module):
    r"""1-to-all binary cross-entropy with label smoothing (ConvE/TuckER, KvsAll training):

    .. math::
        \tilde y = (1 - \epsilon)\, y + \epsilon / N, \qquad
        \mathcal{L} = -\frac{1}{BN}\sum_{i,j} \tilde y_{ij}\log\sigma(s_{ij})
        + (1 - \tilde y_{ij}) \log(1 - \sigma(s_{ij}))

    Args:
        label_smoothing (float): :math:`\epsilon`. (default: :obj:`0.1`)
    """

    def __init__(self, label_smoothing: float = 0.1) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, scores: Tensor, targets: Tensor) -> Tensor:
        targets = (1.0 - self.label_smoothing) * targets + self.label_smoothing / scores.size(-1)
        return F.binary_cross_entropy_with_logits(scores, targets)


class CrossEntropy1vsAll(torch.nn.Module):
    r"""1-vs-all softmax cross-entropy (Lacroix et al., 2018; "kl" in LibKGE):

    .. math::
        \mathcal{L} = -\frac1B \sum_i \log \frac{e^{s_{i, y_i}}}{\sum_j e^{s_{ij}}}

    Args:
        label_smoothing (float): Passed to :func:`torch.nn.functional.cross_entropy`.
            (default: :obj:`0.0`)
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, scores: Tensor, gold: Tensor) -> Tensor:
        return F.cross_entropy(scores, gold, label_smoothing=self.label_smoothing)


def n3_penalty(factors: list[Tensor]) -> Tensor:
    r"""Nuclear 3-norm regulariser of Lacroix et al. (2018, Eq. 9) on a batch of factors:
    :math:`\frac1B \sum_f \sum_{i,k} |f_{ik}|^3` (``factors`` are per-dimension magnitudes)."""
    if not factors:
        return torch.zeros(())
    return sum(f.abs().pow(3).sum() for f in factors) / factors[0].size(0)


NEGATIVE_SAMPLING_LOSSES = {
    "margin": MarginRankingLoss,
    "softplus": SoftplusLoss,
    "self_adversarial": SelfAdversarialLoss,
}
ONE_TO_ALL_LOSSES = {"bce": BCEWithLabelSmoothing, "ce": CrossEntropy1vsAll}
