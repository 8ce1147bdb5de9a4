"""K3M's pretraining objectives (spec ``K3M.md``, section 2): masked language modelling on
titles, masked property-value modelling, masked object modelling and link prediction."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmgnn.models.k3m.model import K3M
from mmgnn.utils.io import load_checkpoint, save_checkpoint

IGNORE = -100  # label of unmasked positions (the code uses -1)
LP_FORMS = ("code", "margin")
PV_MASKING = ("code", "random")


def mask_tokens(ids: Tensor, lengths: Tensor, mask_id: int, vocab_size: int,
                rate: float = 0.15, generator: torch.Generator | None = None,
                ) -> tuple[Tensor, Tensor]:
    r"""BERT masking (the code's ``random_word``): each token strictly between ``[CLS]`` and
    the final ``[SEP]`` is chosen with probability ``rate``; a chosen token becomes ``[MASK]``
    (80%), a uniform random token (10%) or stays (10%). Returns ``(ids, labels)`` with the
    original id at chosen positions and :data:`IGNORE` elsewhere."""
    pos = torch.arange(ids.size(1), device=ids.device)
    inner = (pos[None] >= 1) & (pos[None] < lengths[:, None] - 1)
    u = torch.rand(ids.shape, generator=generator).to(ids.device)
    chosen = inner & (u < rate)
    labels = torch.where(chosen, ids, IGNORE)
    kind = torch.rand(ids.shape, generator=generator).to(ids.device)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator).to(ids.device)
    out = torch.where(chosen & (kind < 0.8), mask_id, ids)
    out = torch.where(chosen & (kind >= 0.8) & (kind < 0.9), random_ids, out)
    return out, labels


def mask_values(ids: Tensor, pairs: Tensor, mask_id: int, mode: str = "code",
                rate: float = 0.15, generator: torch.Generator | None = None,
                ) -> tuple[Tensor, Tensor]:
    r"""Masked property-value modelling on the knowledge text. ``code`` (the released
    ``random_word_pv``): every value token of every pair except the item's first pair becomes
    ``[MASK]``; an item with one pair has that value masked. ``random``: each value token is
    masked with probability ``rate``. ``pairs`` are :meth:`K3M.pair_spans` rows."""
    if mode not in PV_MASKING:
        raise ValueError(f"pv masking must be one of {PV_MASKING}, got {mode!r}")
    pos = torch.arange(ids.size(1), device=ids.device)
    item, vs, ve = pairs[:, 0], pairs[:, 3], pairs[:, 4]
    if mode == "code":
        count = torch.bincount(item, minlength=ids.size(0))
        first = torch.ones_like(item, dtype=torch.bool)
        first[1:] = item[1:] != item[:-1]
        keep = first & (count[item] >= 2)
        item, vs, ve = item[~keep], vs[~keep], ve[~keep]
    span = (pos[None] >= vs[:, None]) & (pos[None] < ve[:, None])
    chosen = torch.zeros_like(ids).index_add_(0, item, span.long()) > 0
    if mode == "random":
        chosen &= torch.rand(ids.shape, generator=generator).to(ids.device) < rate
    return torch.where(chosen, mask_id, ids), torch.where(chosen, ids, IGNORE)


def mask_regions(regions: Tensor, present: Tensor, rate: float = 0.15,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    r"""The code's ``random_region``: each region of an item that has an image is chosen with
    probability ``rate``; 90% of the chosen have their features zeroed, 10% are kept. Returns
    ``(regions, chosen)``, ``chosen`` :obj:`(B, R)` bool."""
    u = torch.rand(regions.shape[:2], generator=generator).to(regions.device)
    chosen = (u < rate) & present[:, None]
    zero = chosen & (torch.rand(regions.shape[:2], generator=generator)
                     .to(regions.device) < 0.9)
    return regions.masked_fill(zero[..., None], 0.0), chosen


class MaskedTokenHead(nn.Module):
    r"""BERT's ``BertLMPredictionHead``: :math:`E\,\mathrm{LN}(\mathrm{GELU}(W h)) + b` with
    the decoder :math:`E` tied to the word embeddings. Shapes: :math:`(*, d) \to (*, V)`."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        d = embedding.weight.size(1)
        self.transform = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d, eps=1e-12)
        self.embedding = embedding
        self.bias = nn.Parameter(torch.zeros(embedding.weight.size(0)))

    def forward(self, h: Tensor) -> Tensor:
        return F.linear(self.norm(F.gelu(self.transform(h))), self.embedding.weight, self.bias)


class RegionHead(nn.Module):
    r"""ViLBERT's ``BertImagePredictionHead``, K3M's masked-object head:
    :math:`W_o\,\mathrm{LN}(\mathrm{GELU}(W h)) + b_o`. Shapes: :math:`(*, d_v) \to (*, C)`."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.transform = nn.Linear(channels, channels)
        self.norm = nn.LayerNorm(channels, eps=1e-12)
        self.lin_out = nn.Linear(channels, out_channels)

    def forward(self, h: Tensor) -> Tensor:
        return self.lin_out(self.norm(F.gelu(self.transform(h))))


class K3MPretraining(nn.Module):
    r"""K3M with its pretraining heads; :meth:`forward` returns the losses of a batch.

    :math:`\mathcal{L} = \mathcal{L}_{MLM} + \mathcal{L}_{PV} + \lambda\,\mathcal{L}_{MOM} +
    \mathcal{L}_{LP}` (``train_concap_struc.py``, :math:`\lambda` = ``image_weight`` = 1):

    - **MLM**: cross-entropy of the tied decoder on the fused title sequence at the tokens
      :func:`mask_tokens` chose;
    - **PV**: the same on the fused knowledge sequence at the values :func:`mask_values`
      masked;
    - **MOM**: :class:`RegionHead` on the fused image sequence at the regions
      :func:`mask_regions` chose: with
      region class distributions :math:`q` (``classes``, the detector's 1601 classes in the
      code) :math:`\mathrm{KL}(q \,\|\, \mathrm{softmax}(W h))`, else the regression of the
      original features (ViLBERT's ``visual_target=1``), averaged over chosen regions. With no
      image stream it is skipped, with a warning;
    - **LP**: ``code`` form: the released two-way classifier, :math:`W [\mathbf{c}^*_i]`
      labelled 1 against the negative :math:`\mathbf{c}^*_i - s(\mathbf{c}_i) +
      s(\mathbf{c}_{i+1})` labelled 0 (item :math:`i`'s aggregated triples glued onto the
      next item of the batch; :math:`s` = :meth:`K3M.self_term`); ``margin`` form: the
      paper's translation margin loss over the item's triples,
      :math:`[\gamma + \|\mathbf{c}^*_i + \mathbf{p} - \mathbf{v}\| -
      \|\mathbf{c}^*_{i+1} + \mathbf{p} - \mathbf{v}\|]_+`. Both need two items per batch.
      The ``code`` form cannot be learned: :math:`\mathbf{c}^*` is additive in
      :math:`s(\mathbf{c}_i)` and the aggregate, so with the linear head and the cyclic batch
      shift the positives and negatives of a batch have the same mean logit for any weights,
      and by Jensen's inequality the loss never falls below :math:`\ln 2` (it stays there in
      training); it is kept for fidelity, ``margin`` is the learnable choice.

    Args:
        model (K3M): The encoder.
        lp (str): ``margin`` (the paper's, learnable) or ``code`` (the released two-way
            cross-entropy, which cannot fall below :math:`\ln 2`). (default: ``margin``)
        margin (float): :math:`\gamma` of the margin form. (default: :obj:`1.0`)
        pv_masking (str): ``code`` or ``random`` (:func:`mask_values`). (default: ``code``)
        mask_rate (float): Token and region masking rate. (default: :obj:`0.15`)
        image_weight (float): :math:`\lambda`. (default: :obj:`1.0`)
        num_region_classes (int, optional): Classes of the MOM KL target; without it MOM
            regresses the region features.
        mask_id (int): Id of ``[MASK]``. (default: :obj:`103`, bert-base-chinese)
    """

    def __init__(self, model: K3M, lp: str = "margin", margin: float = 1.0,
                 pv_masking: str = "code", mask_rate: float = 0.15, image_weight: float = 1.0,
                 num_region_classes: int | None = None, mask_id: int = 103) -> None:
        super().__init__()
        if lp not in LP_FORMS:
            raise ValueError(f"lp must be one of {LP_FORMS}, got {lp!r}")
        if pv_masking not in PV_MASKING:
            raise ValueError(f"pv_masking must be one of {PV_MASKING}, got {pv_masking!r}")
        self.model, self.lp, self.margin = model, lp, margin
        self.pv_masking, self.mask_rate, self.image_weight = pv_masking, mask_rate, image_weight
        self.mask_id = mask_id
        self.lm_head = MaskedTokenHead(model.text.embeddings.word_embeddings)
        self.skipped: dict[str, str] = {}
        if "image" in model.streams:
            out = num_region_classes or model.config.image_channels
            self.region_head = RegionHead(model.config.image_hidden, out)
        else:
            self.region_head = None
            self.skipped["mom"] = ("no image stream (no image features were given; K3M-sample "
                                   "ships image URLs only)")
            warnings.warn(f"masked object modelling skipped: {self.skipped['mom']}",
                          stacklevel=2)
        self.num_region_classes = num_region_classes
        has_agg = model.aggregator is not None
        if not has_agg:
            self.skipped["lp"] = "no knowledge aggregation (streams without knowledge)"
        if "title" not in model.streams:
            self.skipped["mlm"] = "no title stream"
        if "knowledge" not in model.streams:
            self.skipped["pv"] = "no knowledge stream"
        self.lp_head = nn.Linear(model.hidden, 2) if has_agg and lp == "code" else None

    def forward(self, items: Tensor, generator: torch.Generator | None = None,
                region_classes: Tensor | None = None) -> dict[str, Tensor]:
        """The losses of ``items`` (:meth:`mask`, then :meth:`losses`)."""
        return self.losses(items, self.mask(items, generator), region_classes)

    def mask(self, items: Tensor, generator: torch.Generator | None = None) -> dict:
        """The masked inputs of ``items`` and their targets: ``text`` (stream -> (ids,
        lengths), masked), ``labels`` (stream -> original id at masked tokens,
        :data:`IGNORE` elsewhere), and with an image stream ``regions`` (masked),
        ``original`` and ``chosen`` :obj:`(B, R)`."""
        model = self.model
        text = model.text_inputs(items)
        labels = {}
        if "title" in text:
            ids, ln = text["title"]
            masked, labels["title"] = mask_tokens(ids, ln, self.mask_id,
                                                  model.config.vocab_size, self.mask_rate,
                                                  generator)
            text["title"] = (masked, ln)
        if "knowledge" in text:
            ids, ln = text["knowledge"]
            # the released random_word_pv finds every pair, the last one without ';' too
            masked, labels["knowledge"] = mask_values(ids, model.pair_spans(ids, ln),
                                                      self.mask_id, self.pv_masking,
                                                      self.mask_rate, generator)
            text["knowledge"] = (masked, ln)
        batch = {"text": text, "labels": labels}
        if self.region_head is not None:
            original, _, present = model.image_inputs(items)
            batch["original"] = original
            batch["regions"], batch["chosen"] = mask_regions(original, present,
                                                             self.mask_rate, generator)
        return batch

    def losses(self, items: Tensor, batch: dict,
               region_classes: Tensor | None = None) -> dict[str, Tensor]:
        """The loss terms and their sum ``loss`` on a :meth:`mask` batch (``region_classes``
        :obj:`(B, R, C)`: the MOM targets when ``num_region_classes`` is set)."""
        model, labels = self.model, batch["labels"]
        out = model(items, text=batch["text"], image=batch.get("regions"))
        losses = {}
        for stream, name in (("title", "mlm"), ("knowledge", "pv")):
            if stream in labels:
                losses[name] = self._token_loss(out.sequences[stream], labels[stream])
        if self.region_head is not None:
            chosen = batch["chosen"]
            pred = self.region_head(out.sequences["image"][:, 1:])[chosen]
            if not len(pred):
                losses["mom"] = pred.sum()  # nothing masked: zero (the code divides by 0)
            elif self.num_region_classes:
                if region_classes is None:
                    raise ValueError("MOM with num_region_classes needs region_classes "
                                     "(B, R, C) class distributions")
                target = region_classes.to(pred.device)[chosen]
                losses["mom"] = F.kl_div(F.log_softmax(pred, -1), target,
                                         reduction="batchmean")
            else:
                losses["mom"] = F.mse_loss(pred, batch["original"][chosen])
            losses["mom"] = self.image_weight * losses["mom"]
        if model.aggregator is not None and len(items) >= 2:
            losses["lp"] = self.link_loss(out)
        losses["loss"] = sum(losses.values()) if losses else out.item.sum() * 0
        return losses

    def _token_loss(self, seq: Tensor, labels: Tensor) -> Tensor:
        chosen = labels != IGNORE
        if not chosen.any():
            return seq.sum() * 0
        return F.cross_entropy(self.lm_head(seq[chosen]), labels[chosen])

    def link_loss(self, out) -> Tensor:
        """The LP loss of :class:`K3MPretraining` (``code`` or ``margin`` form)."""
        c, s = out.item, self.model.self_term
        if self.lp == "code":
            neg = c - s(out.initial) + s(out.initial.roll(-1, 0))
            logits = self.lp_head(torch.cat([c, neg]))
            target = torch.cat([torch.ones(len(c)), torch.zeros(len(c))]).long()
            return F.cross_entropy(logits, target.to(c.device))
        if out.pairs is None or not len(out.pairs):
            return c.sum() * 0
        item = out.pairs[:, 0]
        other = (item + 1) % len(c)
        pos = (c[item] + out.prop - out.value).norm(dim=-1)
        neg = (c[other] + out.prop - out.value).norm(dim=-1)
        return F.relu(self.margin + pos - neg).mean()


def save_encoder(path: str | Path, model: nn.Module) -> None:
    """Atomically writes a K3M's weights and config (read back by :func:`load_encoder`)."""
    save_checkpoint(path, {"config": model.config.to_dict(), "model": model.state_dict()})


def load_encoder(path: str | Path, model: nn.Module) -> nn.Module:
    """Loads :func:`save_encoder` weights into ``model`` (same config); returns it."""
    state = load_checkpoint(path)
    if state["config"] != model.config.to_dict():
        diff = {k: (v, model.config.to_dict().get(k)) for k, v in state["config"].items()
                if model.config.to_dict().get(k) != v}
        raise ValueError(f"{path}: the saved K3M differs from the model built now "
                         f"(saved, now): {diff}")
    model.load_state_dict(state["model"])
    return model
