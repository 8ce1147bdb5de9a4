"""K3M: knowledge-perceived multimodal pretraining for e-commerce items (spec ``K3M.md``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mmgnn.data.kg import ENTITY, MultiModalKG
from mmgnn.modalities.store import ModalityStore
from mmgnn.nn.conv import K3MGATConv
from mmgnn.nn.fusion.co_attention import CoAttentionLayer, additive_mask
from mmgnn.nn.fusion.iifm import IIFM

STREAMS = ("title", "knowledge", "image")  # also the modality names of the product graph
# Modality names of the model's inputs, those of the robustness protocol
# (mmgnn.eval.robustness, whose TMR / TNR settings name the title "text"), per stream.
MODALITY_OF = {"title": "text", "knowledge": "knowledge", "image": "image"}


@dataclass
class K3MConfig:
    """Sizes and variants of :class:`K3M`; :meth:`tiny` for CPUs and tests, :meth:`base` for
    the released ``bert_base_6layer_6conect.json``.

    Args:
        vocab_size (int): Text vocabulary (bert-base-chinese: 21128).
        text_encoder (str, optional): A ``transformers`` BERT-family encoder by hub id or
            folder (e.g. ``bert-base-chinese``); :obj:`None` builds a randomly initialised
            BERT of the sizes below.
        hidden (int), text_layers (int), text_heads (int), text_ffn (int): Text stream.
        image_channels (int): Width of the input region / patch features (K3M: 2048).
        image_hidden (int), image_layers (int), image_heads (int), image_ffn (int): Visual
            stream (K3M: 1024, 6, 8, 1024).
        co_layers (int): Co-attention blocks per modality pair, :math:`D \\le` the layers of
            each stream (K3M: 6). Block :math:`k` runs before text layer
            :math:`L_t - D + k` and visual layer :math:`L_v - D + k` (ViLBERT's
            ``t_biattention_id`` / ``v_biattention_id``).
        co_hidden (int), co_heads (int): Width and heads of the co-attention of the pairs
            with the image (K3M: 1024, 8); the title-knowledge pair attends at the text
            width ``hidden`` with ``co_heads`` heads (the released
            ``BertBiAttention_two_text``).
        co_ffn (int, optional): Feed-forward width of both streams of every co-attention
            block; :obj:`None` gives each stream its own layers' width (``text_ffn``,
            ``image_ffn``), as released (``BertConnectionLayer`` builds the text side's
            feed-forward from ``intermediate_size``).
        streams (tuple[str, ...]): Streams in use among ``title``, ``knowledge``,
            ``image``: ``("title",)`` is the text-only baseline, ``("knowledge",)`` the
            knowledge-only one.
        fusion (str): IIFM strategy (``mean``, ``hard``, ``soft``, ``interaction``). A
            stream without a partner (the single-stream baselines) has its own encoder output
            as its one interactive source, and ``interaction`` falls back to ``mean`` there.
            Default ``mean``: on K3M-sample at the released recipe it measured better than
            ``hard`` (the paper's hard-spl, the released ``--if_pre_sampling 1``) for K3M and
            both single-stream baselines, over 5 seeds
            (``benchmarks/results/k3m_reproduce.txt``).
        eval_noise (bool): ``hard`` fusion keeps drawing Gumbel noise in eval mode, as
            released; by default it picks the largest gate there, so evaluation is
            deterministic (:class:`~mmgnn.nn.fusion.IIFM` ``deterministic_eval``).
        aggregator (str): ``paper`` or ``code`` form of :class:`~mmgnn.nn.conv.K3MGATConv`
            (the released code: one head); ``none`` skips the knowledge aggregation.
        aggregator_heads (int): Heads of the paper form (paper: 8).
        pair_reading (str): How the aggregator reads an item's triples from the fused
            knowledge sequence. ``span`` (default): every ``p:v`` pair, :math:`\\mathbf{p}`
            and :math:`\\mathbf{v}` the means over the property's and the value's tokens (the
            paper's "representations" of p and v). ``code``: the released ``index_pv`` and
            ``structure_aggregator``: only pairs closed by ``;`` (the last pair of
            ``p1:v1;p2:v2`` is dropped; unequal ``:`` / ``;`` counts other than one extra
            ``:`` give no pairs), at most 10, and :math:`\\mathbf{p}` (:math:`\\mathbf{v}`)
            the mean of two hidden states: the span's first token and the ``:`` (``;``)
            that closes it (``index_select`` on ``[begin, end]``).
        pooling (str): ``tokens`` (default): the pooled stream is the mean over its tokens
            after the first, padding excluded. ``code``: the released ``torch.mean(x[:,
            1:])``, padding positions included (so it depends on the padded length).
        dropout (float): Dropout of every stream (K3M: 0.1).
        max_position (int): Position embeddings of a random-initialised text encoder.
    """

    vocab_size: int = 21128
    text_encoder: str | None = None
    hidden: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_ffn: int = 3072
    image_channels: int = 2048
    image_hidden: int = 1024
    image_layers: int = 6
    image_heads: int = 8
    image_ffn: int = 1024
    co_layers: int = 6
    co_hidden: int = 1024
    co_heads: int = 8
    co_ffn: int | None = None
    streams: tuple = ("title", "knowledge", "image")
    fusion: str = "mean"
    eval_noise: bool = False
    aggregator: str = "paper"
    aggregator_heads: int = 8
    pair_reading: str = "span"
    pooling: str = "tokens"
    dropout: float = 0.1
    max_position: int = 512

    @classmethod
    def tiny(cls, vocab_size: int = 21128, **changes) -> K3MConfig:
        """Two text layers of width 32, one visual layer and one co-attention block: a
        forward-backward step on a CPU in milliseconds."""
        values = dict(vocab_size=vocab_size, hidden=32, text_layers=2, text_heads=2,
                      text_ffn=64, image_hidden=32, image_layers=1, image_heads=2,
                      image_ffn=64, co_layers=1, co_hidden=32, co_heads=2,
                      aggregator_heads=2, max_position=64)
        return cls(**{**values, **changes})

    @classmethod
    def base(cls, vocab_size: int = 21128, **changes) -> K3MConfig:
        """The released configuration (bert-base text stream, 6 visual layers, 6 blocks)."""
        return cls(vocab_size=vocab_size, **changes)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "streams": list(self.streams)}

    @classmethod
    def from_dict(cls, values: dict) -> K3MConfig:
        values = dict(values)
        values["streams"] = tuple(values.get("streams", cls.streams))
        return cls(**values)


@dataclass
class K3MOutput:
    """What :meth:`K3M.forward` returns: the item representation :math:`\\mathbf{c}^*`, the
    initial one :math:`\\mathbf{c}`, the fused sequences and lengths per stream, and the
    knowledge triples it aggregated (``pairs``: item index, property and value spans)."""

    item: Tensor
    initial: Tensor
    sequences: dict[str, Tensor]
    lengths: dict[str, Tensor]
    pooled: dict[str, Tensor]
    present: dict[str, Tensor]
    pairs: Tensor | None = None
    prop: Tensor | None = None
    value: Tensor | None = None


def _layer(layer: nn.Module, x: Tensor, mask: Tensor) -> Tensor:
    out = layer(x, attention_mask=additive_mask(mask, x.dtype))
    return out[0] if isinstance(out, tuple) else out


def _bert_config(vocab: int, hidden: int, layers: int, heads: int, ffn: int, dropout: float,
                 max_position: int):
    from transformers import BertConfig

    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=ffn,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                        max_position_embeddings=max_position)
    config._attn_implementation = "sdpa"  # also for layers built outside a BertModel
    return config


def load_text_encoder(config: K3MConfig) -> nn.Module:
    """The text stream: ``config.text_encoder`` loaded with ``transformers`` (any model with
    ``embeddings`` and ``encoder.layer``: BERT, RoBERTa, ...), or a random-initialised
    :class:`transformers.BertModel` of the config's sizes."""
    from transformers import AutoModel, BertModel

    if config.text_encoder is None:
        return BertModel(_bert_config(config.vocab_size, config.hidden, config.text_layers,
                                      config.text_heads, config.text_ffn, config.dropout,
                                      config.max_position), add_pooling_layer=False)
    local = Path(config.text_encoder).expanduser().is_dir()
    model = AutoModel.from_pretrained(config.text_encoder, local_files_only=local)
    if not (hasattr(model, "embeddings") and hasattr(getattr(model, "encoder", None), "layer")):
        raise ValueError(f"text encoder {config.text_encoder!r} ({type(model).__name__}) has no "
                         f"embeddings / encoder.layer; K3M interleaves co-attention with the "
                         f"layers of a BERT-family encoder")
    return model


class ImageEmbedding(nn.Module):
    r"""ViLBERT's region embedding (``BertImageEmbeddings``):
    :math:`\mathrm{LN}(W_f \mathbf{f} + W_b \mathbf{b})` with the 5-d box :math:`\mathbf{b}`,
    then dropout. Shapes: :math:`(B, R, F), (B, R, 5) \to (B, R, d_v)`."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.lin_feat = nn.Linear(in_channels, out_channels)
        self.lin_box = nn.Linear(5, out_channels)
        self.norm = nn.LayerNorm(out_channels, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, feat: Tensor, boxes: Tensor) -> Tensor:
        return self.dropout(self.norm(self.lin_feat(feat) + self.lin_box(boxes)))


class K3M(nn.Module):
    r"""K3M from `"Knowledge Perceived Multi-modal Pretraining in E-commerce"
    <https://arxiv.org/abs/2109.00895>`_ (Zhu et al., ACM MM 2021; spec ``K3M.md``).

    Per item, three streams: the **title** and the **knowledge** text
    ``p1:v1;p2:v2;...`` share one text encoder; the **image** stream embeds regions
    (:class:`ImageEmbedding`, a global token = the mean region first) and runs its own
    transformer layers. Every pair of streams runs through the ViLBERT two-stream schedule
    with its own :class:`~mmgnn.nn.fusion.CoAttentionLayer` blocks (the title-knowledge pair
    uses the text layers on both sides). :class:`~mmgnn.nn.fusion.IIFM` fuses each stream's
    embedding output (the individual feature) with its interactive features, pooled
    :math:`\mathbf{x}_m` (image mapped to the text width), and the initial item vector is
    their mean :math:`\mathbf{c} = \frac{1}{|M|}\sum_m \mathbf{x}_m` over the streams the item
    has. The knowledge aggregation (:class:`~mmgnn.nn.conv.K3MGATConv`) attends over the
    item's triples, with :math:`\mathbf{p}` and :math:`\mathbf{v}` the means of the fused
    knowledge sequence over each property and value span (``index_pv`` of the code, read
    from the ``:`` / ``;`` tokens), giving :math:`\mathbf{c}^*`.

    A stream the item lacks is kept minimal, never dropped from the batch: a missing title or
    knowledge text is ``[CLS] [SEP]``; a missing image is the global token alone, with zero
    features. The items' inputs are held in the model's
    :class:`~mmgnn.modalities.ModalityStore` ``modalities`` (:meth:`attach`; modalities
    ``text`` = title, ``knowledge``, ``image``; non-persistent buffers, outside the
    ``state_dict``) so that :mod:`mmgnn.eval.robustness` can swap them through
    :meth:`set_modality`.

    Args:
        config (K3MConfig): Sizes and variants.
        cls_id (int), sep_id (int), pad_id (int), kv_id (int), pair_id (int): Ids of
            ``[CLS]``, ``[SEP]``, ``[PAD]``, ``:`` and ``;``.

    Shapes:
        - **input:** item ids :math:`(B,)`
        - **output:** :class:`K3MOutput`, ``item`` :math:`(B, d)`
    """

    def __init__(self, config: K3MConfig, cls_id: int = 101, sep_id: int = 102,
                 pad_id: int = 0, kv_id: int = 131, pair_id: int = 132) -> None:
        super().__init__()
        streams = tuple(s for s in STREAMS if s in config.streams)
        if not streams or set(config.streams) - set(STREAMS):
            raise ValueError(f"streams must be a non-empty subset of {STREAMS}, got "
                             f"{config.streams}")
        if config.aggregator not in ("paper", "code", "none"):
            raise ValueError(f"aggregator must be 'paper', 'code' or 'none', got "
                             f"{config.aggregator!r}")
        for key, known in (("pair_reading", ("span", "code")), ("pooling", ("tokens", "code"))):
            if getattr(config, key) not in known:
                raise ValueError(f"{key} must be one of {known}, got "
                                 f"{getattr(config, key)!r}")
        self.config, self.streams = config, streams
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
        self.kv_id, self.pair_id = kv_id, pair_id
        d, dv = config.hidden, config.image_hidden
        self.text = load_text_encoder(config)
        d = self.hidden = self.text.config.hidden_size
        if "image" in streams:
            self.image_embedding = ImageEmbedding(config.image_channels, dv, config.dropout)
            vis = _bert_config(1, dv, config.image_layers, config.image_heads,
                               config.image_ffn, config.dropout, 1)
            from transformers.models.bert.modeling_bert import BertLayer

            self.image_layers = nn.ModuleList(BertLayer(vis) for _ in range(config.image_layers))
            self.image_to_text = nn.Linear(dv, d)  # map_bi_to_individual
        self.pairs = [(a, b) for a, b in (("title", "image"), ("knowledge", "image"),
                                          ("title", "knowledge")) if a in streams and b in streams]
        n_text = len(self.text.encoder.layer)
        for a, b in self.pairs:
            depth = (config.co_layers, n_text, config.image_layers if b == "image" else n_text)
            if depth[0] > min(depth[1:]):
                raise ValueError(f"co_layers={config.co_layers} exceeds the layers of the "
                                 f"({a}, {b}) streams {depth[1:]}")
        width = {"title": d, "knowledge": d, "image": dv}
        ffn = {"title": self.text.config.intermediate_size,
               "knowledge": self.text.config.intermediate_size, "image": config.image_ffn}
        if config.co_ffn is not None:
            ffn = dict.fromkeys(ffn, config.co_ffn)
        self.co_attention = nn.ModuleDict({
            f"{a}_{b}": nn.ModuleList(
                CoAttentionLayer((width[a], width[b]), d if b != "image" else config.co_hidden,
                                 config.co_heads, (ffn[a], ffn[b]), config.dropout)
                for _ in range(config.co_layers))
            for a, b in self.pairs})
        self.partners = {s: [b if a == s else a for a, b in self.pairs if s in (a, b)]
                         for s in streams}
        self.fusion = nn.ModuleDict({
            s: IIFM(width[s], 1 + max(1, len(self.partners[s])), config.fusion
                    if self.partners[s] or config.fusion != "interaction" else "mean",
                    deterministic_eval=not config.eval_noise)
            for s in streams})
        use_agg = "knowledge" in streams and config.aggregator != "none"
        self.aggregator = K3MGATConv(
            d, d, edge_dim=d, heads=1 if config.aggregator == "code" else
            config.aggregator_heads, variant=config.aggregator) if use_agg else None
        self.modalities = ModalityStore()
        self.register_buffer("image_boxes", None, persistent=False)

    # ------------------------------------------------------------------ inputs
    @property
    def modality_names(self) -> list[str]:
        """The corruptible inputs (``text`` = title, ``knowledge``, ``image``)."""
        return [MODALITY_OF[s] for s in self.streams]

    def attach(self, graph: MultiModalKG) -> K3M:
        """Holds the item inputs of a product graph (the ``title``, ``knowledge`` and
        ``image`` modalities of :func:`~mmgnn.models.k3m.build_product_graph`); returns
        ``self``."""
        for stream in ("title", "knowledge"):
            x, mask, lengths = (graph.features[stream], graph.masks[stream],
                                graph.lengths[stream])
            self.set_modality(MODALITY_OF[stream], x, mask, lengths)
        if "image" in self.streams:
            if "image" not in graph.modalities or not bool(graph.masks["image"].any()):
                raise ValueError("the image stream needs image features: build the graph "
                                 "with image=(x, mask), or leave 'image' out of streams")
            x = graph.features["image"]
            if x.size(-1) != self.config.image_channels:
                raise ValueError(f"image features of width {x.size(-1)}, expected "
                                 f"image_channels={self.config.image_channels}")
            self.set_modality("image", x, graph.masks["image"])
            self.image_boxes = graph[ENTITY].image_boxes
        return self

    def set_modality(self, name: str, x: Tensor, mask: Tensor | None = None,
                     lengths: Tensor | None = None) -> None:
        """Replaces one input in :attr:`modalities`: token ids :obj:`(N, L)` with lengths
        (``text``, ``knowledge``), or image features :obj:`(N, R, F)`; ``mask`` :obj:`(N,)`
        marks the items that have it (default: all)."""
        if name not in MODALITY_OF.values():
            raise ValueError(f"unknown K3M modality {name!r}; expected text, knowledge, image")
        if name != "image" and lengths is None:
            raise ValueError(f"modality {name!r} holds token ids and needs their lengths")
        self.modalities.set(name, x, mask, lengths)

    def modality(self, name: str) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(x, mask, lengths)`` of an input, as :meth:`set_modality` takes them."""
        return self.modalities.get(name)

    def _tokens(self, name: str, items: Tensor) -> tuple[Tensor, Tensor]:
        dev = self.device
        ids, mask, lengths = self.modalities.get(name)
        ids, lengths = ids[items].to(dev), lengths[items].to(dev)
        present = mask[items].to(dev) & (lengths > 2)
        empty = torch.full_like(ids, self.pad_id)
        empty[:, 0], empty[:, 1] = self.cls_id, self.sep_id
        ids = torch.where(present[:, None], ids, empty)
        lengths = torch.where(present, lengths, 2)
        return ids, lengths

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def text_inputs(self, items: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """Token ids and lengths of the text streams of ``items`` (absent ones
        ``[CLS] [SEP]``)."""
        return {s: self._tokens("text" if s == "title" else "knowledge", items)
                for s in ("title", "knowledge") if s in self.streams}

    def image_inputs(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(regions, boxes, present)`` of ``items``: :obj:`(B, R, F)`, :obj:`(B, R, 5)`,
        :obj:`(B,)`."""
        dev = self.device
        x, mask, _ = self.modalities.get("image")
        x = x[items].to(dev)
        x = x.unsqueeze(1) if x.dim() == 2 else x
        return x, self.image_boxes[items].to(dev), mask[items].to(dev)

    # ----------------------------------------------------------------- encoder
    def pair_spans(self, ids: Tensor, lengths: Tensor, form: str = "span") -> Tensor:
        """:obj:`(P, 5)` rows ``(item, p_start, p_end, v_start, v_end)``: the half-open
        property and value token spans of the ``p:v`` pairs of the knowledge texts, read from
        the ``:`` and ``;`` tokens. ``span``: every pair (pairs with an empty side skipped);
        ``code``: the pairs of the released ``index_pv`` (see ``K3MConfig.pair_reading``),
        whose ``p_end`` / ``v_end`` are the closing ``:`` / ``;``."""
        if form not in ("span", "code"):
            raise ValueError(f"form must be 'span' or 'code', got {form!r}")
        if form == "code":
            return self._released_pairs(ids, lengths)
        rows = []
        for i, (row, n) in enumerate(zip(ids.tolist(), lengths.tolist(), strict=True)):
            start = 1
            for pos in range(1, n):
                if pos == n - 1 or row[pos] == self.pair_id:
                    chunk = row[start:pos]
                    if self.kv_id in chunk:
                        k = start + chunk.index(self.kv_id)
                        if k > start and pos > k + 1:
                            rows.append((i, start, k, k + 1, pos))
                    start = pos + 1
        return torch.tensor(rows, dtype=torch.long, device=ids.device).view(-1, 5)

    def _released_pairs(self, ids: Tensor, lengths: Tensor, max_pairs: int = 10) -> Tensor:
        rows = []
        for i, (row, n) in enumerate(zip(ids.tolist(), lengths.tolist(), strict=True)):
            kv = [p for p in range(n) if row[p] == self.kv_id]
            sep = [p for p in range(n) if row[p] == self.pair_id]
            if len(sep) == len(kv) - 1:
                kv = kv[:-1]
            elif len(sep) != len(kv):
                kv = sep = []
            begin = 1
            for k, e in list(zip(kv, sep, strict=True))[:max_pairs]:
                rows.append((i, begin, k, k + 1, e))
                begin = e + 1
        return torch.tensor(rows, dtype=torch.long, device=ids.device).view(-1, 5)

    def _run(self, x: Tensor, mask: Tensor, layers, start: int, stop: int) -> Tensor:
        for layer in list(layers)[start:stop]:
            x = _layer(layer, x, mask)
        return x

    def _two_stream(self, a: str, b: str, x: dict, mask: dict) -> tuple[Tensor, Tensor]:
        """ViLBERT's schedule for the pair (a, b): co-attention block k runs after the first
        L - D + k layers of each stream; the remaining layers follow."""
        layers = {s: self.image_layers if s == "image" else self.text.encoder.layer
                  for s in (a, b)}
        blocks = self.co_attention[f"{a}_{b}"]
        xa, xb, done = x[a], x[b], {a: 0, b: 0}
        for k, block in enumerate(blocks):
            for s in (a, b):
                stop = len(layers[s]) - len(blocks) + k
                if s == a:
                    xa = self._run(xa, mask[a], layers[a], done[a], stop)
                else:
                    xb = self._run(xb, mask[b], layers[b], done[b], stop)
                done[s] = stop
            xa, xb = block(xa, mask[a], xb, mask[b])
        xa = self._run(xa, mask[a], layers[a], done[a], len(layers[a]))
        xb = self._run(xb, mask[b], layers[b], done[b], len(layers[b]))
        return xa, xb

    def embed(self, items: Tensor, text: dict | None = None,
              image: Tensor | None = None) -> tuple[dict, dict, dict, dict]:
        """Individual features (embedding outputs), masks, lengths and presence per stream;
        ``text`` (ids, lengths per stream) / ``image`` (regions :obj:`(B, R, F)`) override
        the inputs (masked tokens, masked regions)."""
        text = text or self.text_inputs(items)
        emb, mask, lengths, present = {}, {}, {}, {}
        for s, (ids, ln) in text.items():
            pos = torch.arange(ids.size(1), device=ids.device)
            emb[s] = self.text.embeddings(input_ids=ids)
            mask[s], lengths[s] = pos[None] < ln[:, None], ln
            present[s] = ln > 2
        if "image" in self.streams:
            regions, boxes, has = self.image_inputs(items)
            regions = regions if image is None else image
            # the global token: the mean region (of the masked regions, as the loader does)
            feats = torch.cat([regions.mean(1, keepdim=True), regions], 1)
            whole = boxes.new_tensor([0.0, 0.0, 1.0, 1.0, 1.0]).expand(len(items), 1, 5)
            emb["image"] = self.image_embedding(feats, torch.cat([whole, boxes], 1))
            mask["image"] = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
            mask["image"][:, 1:] = has[:, None]
            lengths["image"] = torch.where(has, feats.size(1), 1)
            present["image"] = has
        return emb, mask, lengths, present

    def forward(self, items: Tensor, text: dict | None = None,
                image: Tensor | None = None) -> K3MOutput:
        emb, mask, lengths, present = self.embed(items, text, image)
        cross: dict[str, list[Tensor]] = {s: [] for s in self.streams}
        for a, b in self.pairs:
            xa, xb = self._two_stream(a, b, emb, mask)
            cross[a].append(xa)
            cross[b].append(xb)
        for s in self.streams:
            if not cross[s]:  # a lone stream: its own encoder output is the interactive one
                layers = self.image_layers if s == "image" else self.text.encoder.layer
                cross[s].append(self._run(emb[s], mask[s], layers, 0, len(layers)))
        fused = {s: self.fusion[s]([emb[s]] + cross[s]) for s in self.streams}
        if self.config.pooling == "code":
            pooled = {s: fused[s][:, 1:].mean(1) for s in self.streams}
        else:
            pooled = {s: IIFM.pool(fused[s], lengths[s]) for s in self.streams}
        if "image" in pooled:
            pooled["image"] = self.image_to_text(pooled["image"])
        stack = torch.stack([pooled[s] for s in self.streams], 1)
        has = torch.stack([present[s] for s in self.streams], 1).to(stack.dtype)
        has = torch.where(has.sum(1, keepdim=True) > 0, has, torch.ones_like(has))
        initial = (stack * has[..., None]).sum(1) / has.sum(1, keepdim=True)
        out = K3MOutput(initial, initial, fused, lengths, pooled, present)
        if self.aggregator is not None:
            ids = (text or self.text_inputs(items))["knowledge"]
            pairs = self.pair_spans(*ids, form=self.config.pair_reading)
            seq = fused["knowledge"]
            out.pairs = pairs
            if self.config.pair_reading == "code":  # the span's first token and its delimiter
                out.prop = (seq[pairs[:, 0], pairs[:, 1]] + seq[pairs[:, 0], pairs[:, 2]]) / 2
                out.value = (seq[pairs[:, 0], pairs[:, 3]] + seq[pairs[:, 0], pairs[:, 4]]) / 2
            else:
                out.prop = self.span_mean(seq, pairs[:, 0], pairs[:, 1], pairs[:, 2])
                out.value = self.span_mean(seq, pairs[:, 0], pairs[:, 3], pairs[:, 4])
            edge_index = torch.stack([torch.arange(len(pairs), device=seq.device), pairs[:, 0]])
            out.item = self.aggregator((out.value, initial), edge_index, out.prop)
        return out

    @staticmethod
    def span_mean(seq: Tensor, item: Tensor, start: Tensor, stop: Tensor) -> Tensor:
        r""":math:`\frac{1}{e - s}\sum_{l=s}^{e-1} \mathbf{h}_{i,l}` per span: :obj:`(P, d)`."""
        pos = torch.arange(seq.size(1), device=seq.device)
        w = ((pos[None] >= start[:, None]) & (pos[None] < stop[:, None])).to(seq.dtype)
        w = w / w.sum(1, keepdim=True).clamp(min=1)
        return torch.bmm(w.unsqueeze(1), seq.index_select(0, item)).squeeze(1)

    def self_term(self, initial: Tensor) -> Tensor:
        """The part of :math:`\\mathbf{c}^*` that depends on the item vector alone
        (:math:`W_3\\mathbf{c}` in the paper form, :math:`\\mathbf{c}` in the code form):
        the code's link-prediction negative swaps it for another item's."""
        if self.aggregator is None or self.aggregator.variant == "code":
            return initial
        return self.aggregator.lin_out(initial)

    def __repr__(self) -> str:
        c = self.config
        return (f"{type(self).__name__}(hidden={self.hidden}, text_layers="
                f"{len(self.text.encoder.layer)}, streams={list(self.streams)}, "
                f"co_layers={c.co_layers}, fusion={c.fusion!r}, aggregator={c.aggregator!r})")
