"""IMF: Interactive Multimodal Fusion for link prediction (Li et al., WWW 2023)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.data.kg import inverse_relation
from mmgnn.modalities.missing import FILL_STRATEGIES, MissingModalityFill, fill_missing
from mmgnn.modalities.store import ModalityStore, pool_vectors
from mmgnn.models.base import LinkPredictor
from mmgnn.nn.fusion import TuckerFusion
from mmgnn.nn.kge import TuckER
from mmgnn.nn.losses import CrossModalInfoNCE
from mmgnn.sampling.batches import NegativeBatch, QueryBatch
from mmgnn.utils.compile import LazyCompiled

ENCODERS = ("projection", "pool")
DECISIONS = ("learned", "mean", "fused")
STRUCTURE, FUSED = "structure", "fused"
PROB_EPS = 1e-6


def _mixture_logit(s: Tensor, log_pi: Tensor) -> Tensor:
    r""":math:`\operatorname{logit}(\sum_b \pi_b \sigma(s_b))` over the first axis of ``s``."""
    return (torch.logsumexp(log_pi + F.logsigmoid(s), dim=0)
            - torch.logsumexp(log_pi + F.logsigmoid(-s), dim=0))


_MIXTURE_FUSED = LazyCompiled(_mixture_logit)


def prepare_features(name: str, x: Tensor, mask: Tensor, lengths: Tensor | None, *,
                     normalize: bool) -> tuple[Tensor, Tensor, None]:
    """IMF's ``prepare`` of a modality: one float32 row per entity
    (:func:`~mmgnn.modalities.store.pool_vectors`), L2-normalised if ``normalize``."""
    x, mask, _ = pool_vectors(name, x, mask, lengths)
    return (F.normalize(x, dim=-1) if normalize else x), mask, None


def pool_to_width(x: Tensor, width: int) -> Tensor:
    r"""IMF's parameter-free reduction of feature rows :obj:`(N, d_m)` to :obj:`(N, width)`
    by average pooling (spec ``IMF.md``, section 1).

    - :math:`d_m` and ``width`` both squares, :math:`\sqrt{d_m}` a multiple of
      :math:`\sqrt{\text{width}}`: rows viewed as :math:`\sqrt{d_m} \times \sqrt{d_m}` grids,
      square average pooling (IMF's images: 4096 :math:`\to` 64×64 :math:`\to`
      ``AvgPool2d(4, 4)`` :math:`\to` 256);
    - else :math:`d_m` and ``width`` multiples of 64: rows viewed as :math:`(d_m/64) \times 64`,
      adaptive pooling over the first axis to :math:`\text{width}/64` (IMF's text: 768
      :math:`\to` 12×64 :math:`\to` ``AdaptiveAvgPool2d((4, 64))`` :math:`\to` 256);
    - otherwise 1-d adaptive average pooling (which repeats values when :math:`d_m <`
      ``width``).
    """
    n, d = x.shape
    if d == width:
        return x
    side, out_side = math.isqrt(d), math.isqrt(width)
    if side * side == d and out_side * out_side == width and side % out_side == 0:
        k = side // out_side
        return F.avg_pool2d(x.view(n, 1, side, side), k, k).reshape(n, width)
    if d % 64 == 0 and width % 64 == 0:
        return F.adaptive_avg_pool2d(x.view(n, 1, d // 64, 64), (width // 64, 64)).reshape(n, width)
    return F.adaptive_avg_pool1d(x.view(n, 1, d), width).view(n, width)


class IMF(LinkPredictor):
    r"""The Interactive Multimodal Fusion model of `"IMF: Interactive Multimodal Fusion Model
    for Link Prediction" <https://arxiv.org/abs/2303.10816>`_ (Li et al., WWW 2023; spec
    ``IMF.md``), for any set of views: the structure and any modalities of
    :mod:`mmgnn.modalities`, some of them missing for some entities.

    **Views** (section 1). Structure: a free table :math:`\mathbf{E}_s` (optionally
    initialised from :class:`~mmgnn.models.GATTransE`, :meth:`init_structure`). Modality
    :math:`m` with features :math:`x_{i,m}` (rows L2-normalised if ``normalize_features``;
    an absent row replaced by the ``missing`` fill, default the modality mean as the released
    code fills missing images):

    - ``encoder="projection"`` (paper): :math:`\mathbf{e}_{i,m} = \mathbf{W}_m \tilde x_{i,m} +
      \mathbf{b}_m`, the features fixed;
    - ``encoder="pool"`` (released code): a trainable table initialised with
      :func:`pool_to_width` of the features, no projection.

    **Multimodal fusion** (section 2) with :class:`~mmgnn.nn.fusion.TuckerFusion` of the
    :math:`V` views, for entities and for relations:
    :math:`\mathbf{e}_{i,\mathrm{mm}} = \mathrm{TF}_E(\mathbf{e}_{i,1}, \ldots,
    \mathbf{e}_{i,V})`, :math:`\mathbf{w}_{r,\mathrm{mm}} = \mathrm{TF}_R(\mathbf{w}_{r,1},
    \ldots, \mathbf{w}_{r,V})`.

    **Contextual relational model** (section 3): one :class:`~mmgnn.nn.kge.TuckER` decoder per
    branch :math:`b \in \{1, \ldots, V, \mathrm{mm}\}` with its own relation table (the fused
    branch scores with :math:`\mathbf{w}_{r,\mathrm{mm}}`), scoring 1-to-all against its own
    entity table; tails by :math:`(h, r)`, heads by :math:`(t, r + R)` (always reciprocal).

    **Decision fusion** (section 4), with branch logits :math:`s_b` and weights
    :math:`\pi = \operatorname{softmax}(\theta)` (``decision="learned"``, paper; :math:`\theta`
    starts at 0) or :math:`\pi_b = 1/B` (``decision="mean"``, the released code's mean of
    probabilities); ``decision="fused"`` is the paper's "w/o decision fusion" ablation: the
    multimodal branch alone ranks, :math:`s = s_{\mathrm{mm}}` (every branch still trains):

    .. math::
        p = \sum_b \pi_b\, \sigma(s_b), \qquad s = \operatorname{logit}(p)
        = \operatorname{LSE}_b\big(\log\pi_b + \log\sigma(s_b)\big)
        - \operatorname{LSE}_b\big(\log\pi_b + \log\sigma(-s_b)\big),

    :math:`s` being what :meth:`score_tails` / :meth:`score_heads` return (rank-equivalent to
    :math:`p`, computed without saturating).

    **Logit bias** (``logit_bias=True``, not in the paper nor the released code): every
    branch logit is :math:`s_b = f_b(h, r, t) + \beta_b` with a learned scalar
    :math:`\beta_b` initialised at :math:`-\log N`, the prior-probability initialisation of
    `Lin et al. (2017) <https://arxiv.org/abs/1708.02002>`_, Sec. 4.1: every
    :math:`\sigma(s_b)` starts at :math:`\approx 1/N`, the rate of positives in a 1-to-all
    batch. Without it the logits start at 0 (:math:`\sigma = 1/2` for all :math:`N`
    candidates) and BCE's first steps push all :math:`N` scores down at once; a view whose
    entity table is a shared projection of features (``encoder="projection"``) does so by
    inflating the component common to all entities and stays at chance (measured: text-only
    IMF on DB15K, filtered MRR 0.001). :math:`\beta_b` shifts all candidates of a query
    alike, so each branch's ranking is unchanged; it changes the decision-fused mixture only
    through calibration. ``logit_bias=False`` is the released code (TuckER without bias).

    **Training loss** of a 1-to-all batch with targets :math:`y`
    (:meth:`loss`; ``loss_fn`` is the run's BCE with label smoothing, standard or
    released form):

    .. math::
        \mathcal{L} = \sum_b \ell(s_b, y) + [\text{learned}]\ \ell(s, y)
        + \lambda\, \mathcal{L}_{\mathrm{con}}(\mathbf{e}_{\cdot,1}, \ldots,
        \mathbf{e}_{\cdot,V})

    The decision term exists only with learned weights and trains only them
    (:meth:`decision_loss`);
    :math:`\mathcal{L}_{\mathrm{con}}` is :class:`~mmgnn.nn.losses.CrossModalInfoNCE` over
    the views of the batch's query entities, an entity taking part for a modality only where
    it has it. ``contrastive_weight=0`` gives the released code's loss (it never calls its
    contrastive loss).

    Released-code configuration: ``encoder="pool"``, ``decision="mean"``,
    ``contrastive_weight=0``, ``logit_bias=False``, ``dim=256``,
    ``TrainConfig(regime="kvsall", label_smoothing=0.1, label_smoothing_form="released",
    lr=5e-4, batch_size=256)``; :attr:`train_defaults` holds that training recipe in its
    standard label-smoothing form.
    With one view there is no fusion: IMF is TuckER on that view.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R` (inverses are added).
        modalities (ModalityStore, optional): The entity features, :obj:`(N, d_m)` or
            :obj:`(N, L, d_m)` per modality, with masks and lengths. (default: none,
            structure only)
        dim (int): Entity width :math:`d` of every view. (default: :obj:`256`)
        relation_channels (int, optional): Relation width :math:`d_r`. (default: :math:`d`)
        structure (bool): Include the structure view. (default: :obj:`True`)
        encoder (str): ``projection`` or ``pool``. (default: ``projection``)
        missing (str): Fill of absent features: ``zeros``, ``mean`` or ``learned``
            (``learned`` needs ``projection``). (default: ``mean``)
        normalize_features (bool): L2-normalise feature rows. (default: :obj:`True`)
        rank (int): Rank :math:`k` of the Tucker fusions. (default: :obj:`2`)
        fusion_dropout (float): Dropout of the fusions. (default: :obj:`0.2`)
        input_dropout (float): TuckER input dropout. (default: :obj:`0.3`)
        hidden_dropout1 (float): TuckER dropout on :math:`\mathbf{W}_r`. (default: :obj:`0.4`)
        hidden_dropout2 (float): TuckER output dropout. (default: :obj:`0.5`)
        core_init (str): TuckER core init, ``xavier_uniform`` (IMF) or ``uniform``.
            (default: ``xavier_uniform``)
        contrastive_weight (float): :math:`\lambda`. (default: :obj:`0.01`)
        temperature (float): InfoNCE temperature. (default: :obj:`0.1`)
        decision (str): ``learned``, ``mean`` or ``fused``. (default: ``learned``)
        logit_bias (bool): Add a learned scalar per branch to its logits, initialised at
            :math:`-\log N`. (default: :obj:`True`)
        reciprocal (bool): Must be :obj:`True`: IMF always scores head queries through
            inverse relations. (default: :obj:`True`)

    Shapes:
        - **encode:** :math:`\rightarrow (N, B d)`, the branches' entity tables side by side.
        - **scores:** as :class:`~mmgnn.models.base.LinkPredictor`.
    """

    regimes: ClassVar[tuple[str, ...]] = ("kvsall", "1vsall")
    needs_reciprocal: ClassVar[bool] = True
    needs_modalities: ClassVar[bool] = False
    default_modalities: ClassVar[tuple[str, ...]] = ("text",)
    fused_corruptions: ClassVar[bool] = False
    train_defaults: ClassVar[dict[str, Any]] = {
        "regime": "kvsall", "loss": "bce", "label_smoothing": 0.1, "lr": 5e-4,
        "batch_size": 256}

    def __init__(self, num_entities: int, num_relations: int,
                 modalities: ModalityStore | None = None, *, dim: int = 256,
                 relation_channels: int | None = None, structure: bool = True,
                 encoder: str = "projection", missing: str = "mean",
                 normalize_features: bool = True, rank: int = 2, fusion_dropout: float = 0.2,
                 input_dropout: float = 0.3, hidden_dropout1: float = 0.4,
                 hidden_dropout2: float = 0.5, core_init: str = "xavier_uniform",
                 contrastive_weight: float = 0.01, temperature: float = 0.1,
                 decision: str = "learned", logit_bias: bool = True,
                 reciprocal: bool = True) -> None:
        if not reciprocal:
            raise ValueError("IMF scores head queries (?, r, t) as (t, r + R, ?) with its "
                             "inverse relations: it is always reciprocal")
        store = modalities if modalities is not None else ModalityStore(num_entities=num_entities)
        features = store.names
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        if missing not in FILL_STRATEGIES or (encoder == "pool" and missing == "learned"):
            raise ValueError(f"missing must be one of {FILL_STRATEGIES} ('learned' only with "
                             f"encoder='projection'), got {missing!r} with {encoder!r}")
        if STRUCTURE in features or FUSED in features:
            raise ValueError(f"'{STRUCTURE}' and '{FUSED}' are IMF's own branch names, not "
                             f"modality names")
        views = ([STRUCTURE] if structure else []) + list(features)
        if not views:
            raise ValueError("IMF needs at least one view: structure=True or some features")
        d, d_r = dim, relation_channels or dim
        tucker = dict(input_dropout=input_dropout, hidden_dropout1=hidden_dropout1,
                      hidden_dropout2=hidden_dropout2, core_init=core_init)
        fused = len(views) > 1
        # The main decoder scores the fused branch (or the only view); its relations are fused.
        super().__init__(num_entities, num_relations, "tucker", reciprocal=True,
                         hidden_channels=d, decoder_kwargs=dict(
                             relation_channels=d_r, own_relations=not fused, **tucker))
        num_rel = self.decoder_relations
        self.dim, self.relation_channels = d, d_r
        self.modalities = store.with_prepare(partial(prepare_features,
                                                     normalize=normalize_features))
        self.view_names = views
        self.branch_names = views + ([FUSED] if fused else [])
        self.encoder, self.missing = encoder, missing
        self.normalize_features = normalize_features
        self.contrastive_weight, self.decision = float(contrastive_weight), decision

        self.entity = torch.nn.Embedding(num_entities, d) if structure else None
        self.projections = torch.nn.ModuleDict()
        self.fills = torch.nn.ModuleDict()
        self.tables = torch.nn.ModuleDict()
        for m in features:
            width = self.modalities.width(m)
            if encoder == "projection":
                self.projections[m] = torch.nn.Linear(width, d)
                self.fills[m] = MissingModalityFill(width, missing)
            else:
                self.tables[m] = torch.nn.Embedding(num_entities, d)
        self.view_decoders = torch.nn.ModuleDict(
            {v: TuckER(num_rel, d, d_r, **tucker) for v in views} if fused else {})
        if fused:
            self.entity_fusion = TuckerFusion(d, d, len(views), rank, fusion_dropout)
            self.relation_fusion = TuckerFusion(d_r, d_r, len(views), rank, fusion_dropout)
        else:
            self.register_module("entity_fusion", None)
            self.register_module("relation_fusion", None)
        if decision == "learned" and fused:
            self.decision_logits = torch.nn.Parameter(torch.zeros(len(self.branch_names)))
        else:
            self.register_parameter("decision_logits", None)
        if logit_bias:
            self.logit_bias = torch.nn.Parameter(torch.empty(len(self.branch_names)))
        else:
            self.register_parameter("logit_bias", None)
        self.contrastive = CrossModalInfoNCE(temperature)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.decoder.reset_parameters()
        for dec in self.view_decoders.values():
            dec.reset_parameters()
        if self.entity is not None:
            self.decoder.reset_entity_parameters(self.entity.weight)  # xavier_normal (IMF)
        for proj in self.projections.values():
            torch.nn.init.xavier_uniform_(proj.weight)
            torch.nn.init.zeros_(proj.bias)
        for fill in self.fills.values():
            fill.reset_parameters()
        with torch.no_grad():
            for m, table in self.tables.items():
                x, mask, _ = self.modality(m)
                table.weight.copy_(pool_to_width(fill_missing(x, mask, self.missing), self.dim))
        for fusion in (self.entity_fusion, self.relation_fusion):
            if fusion is not None:
                fusion.reset_parameters()
        if self.decision_logits is not None:
            torch.nn.init.zeros_(self.decision_logits)
        if self.logit_bias is not None:
            torch.nn.init.constant_(self.logit_bias, -math.log(self.num_entities))

    # ------------------------------------------------------------------ views
    def set_modality(self, name: str, x: Tensor, mask: Tensor | None = None,
                     lengths: Tensor | None = None) -> None:
        """Replaces the features of modality ``name`` (sequences pooled over ``lengths``,
        rows L2-normalised if ``normalize_features``). The projection encoder reads them at
        every forward pass (so :func:`mmgnn.eval.robustness.robustness_sweep` applies); the
        pool encoder only at :meth:`reset_parameters`."""
        if name not in self.modalities:
            raise KeyError(f"modality {name!r} is not one of this model's {self.modality_names}")
        self.modalities.set(name, x, mask, lengths)

    def modality(self, name: str) -> tuple[Tensor, Tensor, Tensor | None]:
        """The current ``(features, mask, lengths)`` of modality ``name`` (as prepared)."""
        return self.modalities.get(name)

    @property
    def modality_names(self) -> list[str]:
        """The modalities the model reads (its views after the structure)."""
        return self.modalities.names

    def view(self, name: str) -> Tensor:
        """The entity table :obj:`(N, d)` of view ``name``."""
        if name == STRUCTURE:
            return self.entity.weight
        if self.encoder == "pool":
            return self.tables[name].weight
        return self.projections[name](self.fills[name](*self.modality(name)[:2]))

    def encode(self) -> Tensor:
        views = [self.view(v) for v in self.view_names]
        if self.entity_fusion is not None:
            views.append(self.entity_fusion(views))
        return torch.cat(views, dim=-1)

    @torch.no_grad()
    def init_structure(self, entity: Tensor, relation: Tensor | None = None) -> None:
        """Starts the structure view from pre-trained embeddings (IMF's ``pre_trained``
        path, e.g. a trained :class:`~mmgnn.models.GATTransE`'s ``encode()`` and relation
        table): ``entity`` :obj:`(N, d)`; ``relation`` :obj:`(2R, d_r)`, or :obj:`(R, d_r)`
        extended with the negated rows for the inverses as the released code does."""
        if self.entity is None:
            raise ValueError("this IMF has no structure view (structure=False)")
        self.entity.weight.copy_(entity)
        if relation is not None:
            if len(relation) == self.num_relations:
                relation = torch.cat([relation, -relation])
            dec = self.view_decoders[STRUCTURE] if self.view_decoders else self.decoder
            dec.rel_emb.weight.copy_(relation)

    # ---------------------------------------------------------------- scoring
    def _branches(self, x: Tensor) -> list[tuple[Tensor, TuckER, Tensor | None]]:
        """(entity table, decoder, relations or None) of every branch."""
        tables = x.split(self.dim, dim=-1)
        if self.entity_fusion is None:
            return [(tables[0], self.decoder, None)]
        decs = [self.view_decoders[v] for v in self.view_names]
        rel = self.relation_fusion([dec.rel_emb.weight for dec in decs])
        return [(t, dec, None) for t, dec in zip(tables[:-1], decs, strict=True)] + \
            [(tables[-1], self.decoder, rel)]

    def branch_scores(self, x: Tensor, e: Tensor, r: Tensor) -> list[Tensor]:
        """Logits :obj:`(B, N)` of every branch for the tail queries ``(e, r, ?)`` (relation
        ids up to :math:`2R`), in the order of :attr:`branch_names`."""
        return self._biased([dec.score_t(t[e], r, t, relations=rel)
                             for t, dec, rel in self._branches(x)])

    def _biased(self, scores: list[Tensor]) -> list[Tensor]:
        """``scores`` plus each branch's logit bias :math:`\beta_b` (if any)."""
        if self.logit_bias is None:
            return scores
        return [s + b for s, b in zip(scores, self.logit_bias, strict=True)]

    def decision_weights(self) -> Tensor:
        r"""The decision-fusion weights :math:`\pi` :obj:`(B,)` (sum to 1)."""
        if self.decision_logits is not None:
            return torch.softmax(self.decision_logits, dim=0)
        n = len(self.branch_names)
        return torch.full((n,), 1.0 / n, device=self.decoder.core.device)

    def combine(self, scores: list[Tensor]) -> Tensor:
        r"""Decision fusion of the branch logits: :math:`\operatorname{logit}(\sum_b \pi_b
        \sigma(s_b))` in the log domain (see the class docstring); one fused compiled pass
        for large score matrices without gradients (evaluation)."""
        from mmgnn.eval.ranking import COMPILE_MIN_SCORES  # not at the top: import cycle

        if len(scores) == 1:
            return scores[0]
        if self.decision == "fused":
            return scores[-1]
        s = torch.stack(scores)
        log_pi = torch.log(self.decision_weights()).view(-1, *([1] * (s.dim() - 1)))
        if not torch.is_grad_enabled() and s.device.type == "cpu" and \
                s.numel() >= COMPILE_MIN_SCORES and not torch.compiler.is_compiling():
            out = _MIXTURE_FUSED(s, log_pi)
            if out is not None:
                return out
        return _mixture_logit(s, log_pi)

    def score_tails(self, x: Tensor, h: Tensor, r: Tensor) -> Tensor:
        return self.combine(self.branch_scores(x, h, r))

    def score_heads(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return self.combine(self.branch_scores(x, t, inverse_relation(r, self.num_relations)))

    def score_triples(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return self.combine(self._biased([dec.score_hrt(tab[h], r, tab[t], relations=rel)
                                          for tab, dec, rel in self._branches(x)]))

    def regularization(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        return []

    # ------------------------------------------------------------------- loss
    def loss(self, x: Tensor, batch: NegativeBatch | QueryBatch,
             loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """The multi-part loss of the class docstring for one batch of 1-to-all queries (a
        :class:`~mmgnn.sampling.QueryBatch`); other batches: the default loss."""
        if not isinstance(batch, QueryBatch):
            return super().loss(x, batch, loss_fn)
        target = batch.target(self.num_entities,
                              gold_ids=getattr(loss_fn, "takes_gold_ids", False))
        entity = batch.entity
        r = batch.relation if batch.side == "tail" \
            else inverse_relation(batch.relation, self.num_relations)
        scores = self.branch_scores(x, entity, r)
        loss = torch.stack([loss_fn(s, target) for s in scores]).sum()
        if self.decision_logits is not None:
            loss = loss + self.decision_loss(scores, target, loss_fn)
        if self.contrastive_weight and len(self.view_names) > 1:
            loss = loss + self.contrastive_weight * self.contrastive_loss(x, entity.unique())
        return loss

    def decision_loss(self, scores: list[Tensor], target: Tensor,
                      loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        r"""``loss_fn`` on the decision-fused prediction, training the weights :math:`\theta`
        only: the branch logits are detached (each branch is trained by its own term), and
        :math:`p = \sum_b \pi_b \sigma(s_b)` is clamped to :math:`[10^{-6}, 1 - 10^{-6}]`
        and passed as :math:`\log p - \log(1 - p)`, a third of the passes over the
        :obj:`(B, N)` matrices of the exact log-domain form (same value where unclamped)."""
        pi = self.decision_weights()
        p = sum(pi[b] * torch.sigmoid(s.detach()) for b, s in enumerate(scores))
        p = p.clamp(PROB_EPS, 1.0 - PROB_EPS)
        return loss_fn(torch.log(p) - torch.log1p(-p), target)

    def contrastive_loss(self, x: Tensor, entities: Tensor) -> Tensor:
        """:class:`~mmgnn.nn.losses.CrossModalInfoNCE` over the views of ``entities``."""
        tables = x.split(self.dim, dim=-1)
        views = [tables[i][entities] for i in range(len(self.view_names))]
        masks = [None if v == STRUCTURE else self.modalities.get(v)[1][entities]
                 for v in self.view_names]
        return self.contrastive(views, masks)

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}={self.modalities.width(m)}" for m in self.modality_names)
        return (f"IMF({self.num_entities}, num_relations={self.num_relations}, "
                f"dim={self.dim}, views=[{', '.join(self.view_names)}]"
                f"{f', features=[{mods}]' if mods else ''}, encoder={self.encoder!r}, "
                f"decision={self.decision!r}, contrastive_weight={self.contrastive_weight}"
                f"{'' if self.logit_bias is not None else ', logit_bias=False'})")
