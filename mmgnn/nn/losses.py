"""Training losses for link prediction: negative-sampling losses and 1-to-all losses.

Negative-sampling losses take positive scores :obj:`(B,)` and negative scores :obj:`(B, K)`
(``K`` corruptions per positive); 1-to-all losses take a :obj:`(B, N)` score matrix. Scores
follow mmgnn's convention: higher means more plausible.

Every training loss is registered in :data:`LOSSES` with its :attr:`kind` (``"negative"`` or
``"one_to_all"``); :func:`build_loss` builds one from a run's settings.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.utils.registry import Registry

SMOOTHING_FORMS = ("standard", "released")
#: The two kinds of training loss: of positive and negative scores, or of 1-to-all scores.
LOSS_KINDS = ("negative", "one_to_all")

#: Training losses by name; each class says its :attr:`kind` (and a 1-to-all loss whether it
#: ``takes_gold_ids``).
LOSSES = Registry("loss")


def register_loss(name: str, target: Any = None, **fixed: Any):
    """Registers a loss class under ``name`` (without ``target``: a class decorator). The
    class says its ``kind``: ``"negative"`` (``forward(pos (B,), neg (B, K))``) or
    ``"one_to_all"`` (``forward(scores (B, N), target)``, with ``takes_gold_ids`` true if the
    target of a 1vsAll batch is the gold ids :obj:`(B,)` rather than one-hot rows)."""
    def add(cls: Any) -> Any:
        kind = getattr(cls, "kind", None)
        if kind not in LOSS_KINDS:
            raise ValueError(f"loss {name!r}: {getattr(cls, '__name__', cls)} must say its kind "
                             f"(a class attribute, one of {LOSS_KINDS}), got {kind!r}")
        return LOSSES.register(name, cls, **fixed)
    return add if target is None else add(target)


def loss_kind(name: str) -> str:
    """The kind of the loss registered as ``name``: ``"negative"`` or ``"one_to_all"``."""
    return LOSSES.get(name)[0].kind


def build_loss(name: str, **settings: Any) -> torch.nn.Module:
    """The loss registered as ``name``, built with those of ``settings`` its constructor
    takes (a run's config holds the settings of every loss: ``margin``, ``temperature``,
    ``label_smoothing``, ``form``); settings it does not take do not apply to it."""
    cls, _ = LOSSES.get(name)
    if isinstance(cls, type) and cls.__init__ is torch.nn.Module.__init__:
        return LOSSES.build(name)  # no constructor of its own: no settings apply
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return LOSSES.build(name, **settings)
    return LOSSES.build(name, **{k: v for k, v in settings.items() if k in params})


class MarginRankingLoss(torch.nn.Module):
    r"""Pairwise hinge loss of TransE (Bordes et al., 2013, Eq. 1):

    .. math::
        \mathcal{L} = \frac{1}{BK} \sum_{i,k} \max(0,\ \gamma - s_i + s'_{ik})

    Args:
        margin (float): :math:`\gamma`. (default: :obj:`1.0`)
    """

    kind: ClassVar[str] = "negative"

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

    kind: ClassVar[str] = "negative"

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

    kind: ClassVar[str] = "negative"

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
        \tilde y = (1 - \epsilon)\, y + \delta / N, \qquad
        \mathcal{L} = -\frac{1}{BN}\sum_{i,j} \tilde y_{ij}\log\sigma(s_{ij})
        + (1 - \tilde y_{ij}) \log(1 - \sigma(s_{ij}))

    ``form="standard"`` (the default) is label smoothing proper, :math:`\delta = \epsilon`
    (targets still sum to the number of answers). ``form="released"`` is what the released
    code of ConvE, TuckER and IMF computes, :math:`\delta = 1`
    (``((1.0 - eps) * targets) + (1.0 / targets.size(1))``; spec ``IMF.md``, section 4):
    every target gets :math:`1/N` more, whatever :math:`\epsilon`.

    Args:
        label_smoothing (float): :math:`\epsilon`. (default: :obj:`0.1`)
        form (str): ``standard`` or ``released``. (default: ``standard``)
    """

    kind: ClassVar[str] = "one_to_all"
    takes_gold_ids: ClassVar[bool] = False

    def __init__(self, label_smoothing: float = 0.1, form: str = "standard") -> None:
        super().__init__()
        if form not in SMOOTHING_FORMS:
            raise ValueError(f"label smoothing form must be one of {SMOOTHING_FORMS}, got "
                             f"{form!r}")
        self.label_smoothing = label_smoothing
        self.form = form

    def forward(self, scores: Tensor, targets: Tensor) -> Tensor:
        uniform = self.label_smoothing if self.form == "standard" else 1.0
        targets = (1.0 - self.label_smoothing) * targets + uniform / scores.size(-1)
        return F.binary_cross_entropy_with_logits(scores, targets)


class CrossEntropy1vsAll(torch.nn.Module):
    r"""1-vs-all softmax cross-entropy (Lacroix et al., 2018; "kl" in LibKGE):

    .. math::
        \mathcal{L} = -\frac1B \sum_i \log \frac{e^{s_{i, y_i}}}{\sum_j e^{s_{ij}}}

    Args:
        label_smoothing (float): Passed to :func:`torch.nn.functional.cross_entropy`.
            (default: :obj:`0.0`)
    """

    kind: ClassVar[str] = "one_to_all"
    #: A 1vsAll batch's target is the gold ids :obj:`(B,)`.
    takes_gold_ids: ClassVar[bool] = True

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, scores: Tensor, gold: Tensor) -> Tensor:
        return F.cross_entropy(scores, gold, label_smoothing=self.label_smoothing)


class CrossModalInfoNCE(torch.nn.Module):
    r"""Cross-modal InfoNCE with in-batch negatives (CLIP, `Radford et al., 2021
    <https://arxiv.org/abs/2103.00020>`_, Eq. of Fig. 3): the views of one entity in two
    modalities are pulled together, the other entities of the batch pushed apart.

    For every pair of views :math:`a < b` and the :math:`B_{ab}` entities of the batch present
    in both (rows ``masks[a] & masks[b]``), with :math:`\hat z = z / \|z\|_2` per row and
    temperature :math:`\tau`:

    .. math::
        S_{ij} = \hat z^a_i \cdot \hat z^b_j / \tau, \qquad
        \mathcal{L}_{ab} = \frac{1}{2 B_{ab}} \sum_i \Big(
        -\log \frac{e^{S_{ii}}}{\sum_j e^{S_{ij}}}
        -\log \frac{e^{S_{ii}}}{\sum_j e^{S_{ji}}} \Big), \qquad
        \mathcal{L} = \operatorname{mean}_{a < b,\ B_{ab} \ge 2} \mathcal{L}_{ab}

    This is the loss IMF's paper describes (spec ``IMF.md``, section 4) in its standard form;
    the released ``IMF.contrastive_loss`` is never called (and normalises by the global
    tensor norm, with negatives taken within one modality): weight 0 in
    :class:`~mmgnn.models.IMF` reproduces the released training.

    Args:
        temperature (float): :math:`\tau`. (default: :obj:`0.1`)

    Shapes:
        - **input:** a list of :math:`M \ge 2` views :obj:`(B, d)`, optional list of
          :obj:`(B,)` bool presence masks (:obj:`None` entries: all present).
        - **output:** scalar (zero when no pair has two common rows).
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, views: list[Tensor], masks: list[Tensor | None] | None = None) -> Tensor:
        if len(views) < 2:
            raise ValueError(f"CrossModalInfoNCE needs at least 2 views, got {len(views)}")
        masks = list(masks) if masks is not None else [None] * len(views)
        losses = []
        for a in range(len(views)):
            for b in range(a + 1, len(views)):
                za, zb = views[a], views[b]
                both = _both_present(masks[a], masks[b], len(za), za.device)
                if both is not None:
                    za, zb = za[both], zb[both]
                if len(za) < 2:
                    continue
                sim = F.normalize(za, dim=-1) @ F.normalize(zb, dim=-1).t() / self.temperature
                labels = torch.arange(len(za), device=za.device)
                losses.append(0.5 * (F.cross_entropy(sim, labels)
                                     + F.cross_entropy(sim.t(), labels)))
        if not losses:
            return views[0].new_zeros(())
        return torch.stack(losses).mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(temperature={self.temperature})"


def _both_present(a: Tensor | None, b: Tensor | None, n: int,
                  device: torch.device) -> Tensor | None:
    """The rows present in both views (:obj:`None`: all rows)."""
    if a is None and b is None:
        return None
    keep = torch.ones(n, dtype=torch.bool, device=device)
    for m in (a, b):
        if m is not None:
            keep = keep & m.to(device)
    return keep


def n3_penalty(factors: list[Tensor]) -> Tensor:
    r"""Nuclear 3-norm regulariser of Lacroix et al. (2018, Eq. 9) on a batch of factors:
    :math:`\frac1B \sum_f \sum_{i,k} |f_{ik}|^3` (``factors`` are per-dimension magnitudes)."""
    if not factors:
        return torch.zeros(())
    return sum(f.abs().pow(3).sum() for f in factors) / factors[0].size(0)


for _name, _cls in (("margin", MarginRankingLoss), ("softplus", SoftplusLoss),
                    ("self_adversarial", SelfAdversarialLoss), ("bce", BCEWithLabelSmoothing),
                    ("ce", CrossEntropy1vsAll)):
    register_loss(_name, _cls)
