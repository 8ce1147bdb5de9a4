"""Parity of MKGformer with its released code (zjunlp/MKGformer, ``../shared/reference/MKGformer``;
spec ``MKGformer.md``), all in float64: one hybrid layer (a CLIP vision layer with the PGI
prefix, ``CLIPEncoderLayer`` / ``CLIPAttention`` with ``past_key_values``, and a BERT layer
with CAF, ``BertLayer`` / ``BertFusion`` / ``BertIntermediate``), the whole hybrid encoder
with the masked-entity head (``UnimoForMaskedLM``: 12 lock-step layers, fusion in the last 4,
109-token-style visual sequence of 7 images at three sizes, the MLM head at ``[MASK]``
restricted to the entity tokens), and the losses of both stages as
``lit_models/transformer.py: TransformerLitModel.training_step`` computes them (stage 1:
``LabelSmoothSoftmaxCEV1``; stage 2: ``BCEWithLogitsLoss`` over every entity) — outputs and
the gradients of every weight.

The released files are imported as they are, with two shims: ``modeling_unimo.py`` imports
``apply_chunking_to_forward`` from ``transformers.modeling_utils``, where transformers 5 no
longer has it (it lives in ``transformers.pytorch_utils``); ``transformer.py``'s base class
(``lit_models/base.py``) is a PyTorch-Lightning module, replaced by a plain ``nn.Module``
holding ``model`` and ``args`` (what ``training_step`` reads). The released configs are
``transformers`` configs; the reference modules read plain attributes, given here as
namespaces.

mmgnn runs as released with ``mask_prefix_padding=False`` (the release does not mask text
padding in the PGI prefix) and ``pretrain_label_smoothing_form="released"``; the queries are
built by the test from the released layout (``processor.py``: ``[CLS] [ENT_h] [SEP] rel
[REL_r] [SEP] [MASK] desc_h [SEP]`` / ``[CLS] [MASK] [SEP] rel [REL_r] [SEP] [ENT_t] desc_t
[SEP]``; stage 1 ``the description of [MASK] is that desc .``), not by mmgnn's code.
"""

from __future__ import annotations

import types

import pytest
import torch
from transformers import BertConfig, BertModel, CLIPVisionConfig, CLIPVisionModel
from transformers import modeling_utils as hf_modeling_utils
from transformers.pytorch_utils import apply_chunking_to_forward

from mmgnn.data.kg import MultiModalKG
from mmgnn.modalities.image_slots import EntityImages
from mmgnn.modalities.pretrained import default_text_encoder, load_tokenizer
from mmgnn.models import MKGformer
from mmgnn.nn.fusion import HybridEncoder
from mmgnn.nn.losses import BCEWithLabelSmoothing
from mmgnn.sampling.batches import QueryBatch
from tests.parity.conftest import REFERENCE, assert_close, copy_params, load_reference, stub_module

TOL = 1e-10
D, HEADS, FF, LAYERS = 16, 2, 32, 12  # the release hard-codes fusion at layers 8..11 of 12
SIZES = (32, 16, 16, 16, 8, 8, 8)     # main, 3 aux, 3 rcnn images: 16 + 3*4 + 3*1 tokens
NAMES = ["lion", "tiger", "house cat", "oak tree", "maple", "granite"]
DESCS = ["large tawny cat of africa", "striped big cat of asia", "small domestic feline",
         "tree bearing acorns", "tree with lobed leaves", "coarse igneous rock"]
RELS = ["_hypernym", "_part_of"]


@pytest.fixture(scope="module")
def unimo():
    shim = stub_module("transformers.modeling_utils",
                       PreTrainedModel=hf_modeling_utils.PreTrainedModel,
                       apply_chunking_to_forward=apply_chunking_to_forward)
    return load_reference("MKGformer/MKG/models/modeling_unimo.py", "models.modeling_unimo",
                          shims={"transformers.modeling_utils": shim})


class _LitBase(torch.nn.Module):
    """Stand-in for ``lit_models/base.py: BaseLitModel`` (a Lightning module): what
    ``TransformerLitModel.__init__`` and ``training_step`` use of it."""

    def __init__(self, model, args) -> None:
        super().__init__()
        self.model, self.args = model, args

    def save_hyperparameters(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def lit():
    root = REFERENCE / "MKGformer" / "MKG" / "lit_models"
    shims = {"lit_models": stub_module("lit_models", root),
             "lit_models.base": stub_module("lit_models.base", BaseLitModel=_LitBase)}
    return load_reference("MKGformer/MKG/lit_models/transformer.py", "lit_models.transformer",
                          shims=shims)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(default_text_encoder())


def _configs(vocab: int):
    text = types.SimpleNamespace(
        vocab_size=vocab, hidden_size=D, num_attention_heads=HEADS, intermediate_size=FF,
        num_hidden_layers=LAYERS, hidden_act="gelu", hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, layer_norm_eps=1e-12, max_position_embeddings=64,
        type_vocab_size=2, pad_token_id=0, initializer_range=0.02, chunk_size_feed_forward=0,
        add_cross_attention=False, torchscript=False)
    vision = types.SimpleNamespace(
        hidden_size=D, num_attention_heads=HEADS, intermediate_size=FF,
        num_hidden_layers=LAYERS, hidden_act="quick_gelu", attention_dropout=0.0,
        image_size=SIZES[0], patch_size=8, device="cpu")
    return text, vision


@torch.no_grad()
def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Every weight drawn afresh (layer norms around 1), so no parameter is at a value that
    hides a wrong mapping (a zero bias, a unit gain)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
        norm = any(k in name.lower() for k in ("layernorm", "layer_norm", "layrnorm"))
        p.copy_(1.0 + 0.1 * noise if norm and name.endswith("weight") else 0.2 * noise)


def _mapping(ours: HybridEncoder, head, ref) -> dict:
    """mmgnn tensor -> released tensor, for the encoder (text embeddings, every text and
    vision layer, the patch convolution and pre-layernorm) and, with ``head``, the MLM head
    (its entity slice of the bias); ``ref`` a released ``UnimoForMaskedLM``."""
    u, m = ref.unimo, {}

    def linear(a, b):
        m[a.weight] = b.weight
        if a.bias is not None:
            m[a.bias] = b.bias

    emb = ours.embeddings
    m[emb.word_embeddings.weight] = u.text_embeddings.word_embeddings.weight
    m[emb.position_embeddings.weight] = u.text_embeddings.position_embeddings.weight
    m[emb.token_type_embeddings.weight] = u.text_embeddings.token_type_embeddings.weight
    linear(emb.LayerNorm, u.text_embeddings.LayerNorm)
    for i, (t, r) in enumerate(zip(ours.text_layers, u.encoder.text_layer, strict=True)):
        _text_layer_mapping(m, linear, t, r, i >= LAYERS - ours.fusion_layers)
    for v, r in zip(ours.vision_layers, u.encoder.vision_layers, strict=True):
        _vision_layer_mapping(linear, v, r)
    m[ours.patch_embedding.weight] = u.vision_embeddings.patch_embedding.weight
    linear(ours.pre_layernorm, u.vision_pre_layrnorm)
    if head is not None:
        p = ref.cls.predictions
        linear(head.dense, p.transform.dense)
        linear(head.norm, p.transform.LayerNorm)
    return m


def _text_layer_mapping(m, linear, ours, ref, fused: bool) -> None:
    sa, rsa = ours.attention.self, ref.attention.self
    for name in ("query", "key", "value"):
        linear(getattr(sa, name), getattr(rsa, name))
    linear(ours.attention.output.dense, ref.attention.output.dense)
    linear(ours.attention.output.LayerNorm, ref.attention.output.LayerNorm)
    linear(ours.intermediate.dense, ref.intermediate.dense)
    if fused:
        linear(ours.caf.fusion_dense, ref.intermediate.fusion_dense)
    linear(ours.output.dense, ref.output.dense)
    linear(ours.output.LayerNorm, ref.output.LayerNorm)


def _vision_layer_mapping(linear, ours, ref) -> None:
    for a, b in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj")):
        linear(getattr(ours.pgi, a), getattr(ref.self_attn, b))
    linear(ours.ln1, ref.layer_norm1)
    linear(ours.ln2, ref.layer_norm2)
    linear(ours.mlp.fc1, ref.mlp.fc1)
    linear(ours.mlp.fc2, ref.mlp.fc2)


def _encoder(vocab: int, layers: int = LAYERS, fusion: int = 4) -> HybridEncoder:
    shape = dict(hidden_size=D, num_hidden_layers=layers, num_attention_heads=HEADS,
                 intermediate_size=FF)
    text = BertModel(BertConfig(vocab_size=vocab, max_position_embeddings=64, **shape),
                     add_pooling_layer=False)
    tower = CLIPVisionModel(CLIPVisionConfig(image_size=SIZES[0], patch_size=8, **shape))
    return HybridEncoder(text, tower, fusion_layers=fusion, image_sizes=SIZES,
                         mask_prefix_padding=False).eval()


def _compare_grads(mapping: dict, tol: float, what: str) -> float:
    worst = 0.0
    for ours, theirs in mapping.items():
        a = ours.grad if ours.grad is not None else torch.zeros_like(ours)
        b = theirs.grad if theirs.grad is not None else torch.zeros_like(theirs)
        worst = max(worst, assert_close(a, b, tol, f"{what} gradient {tuple(ours.shape)}"))
    return worst


# --------------------------------------------------------------------------- one layer
def test_one_hybrid_layer_pgi_and_caf(unimo, float64):
    """Vision layer with the text prefix (PGI), then the text layer with CAF over its
    output: outputs, the text keys/values handed to the next PGI, and every gradient."""
    torch.manual_seed(0)
    ours = _encoder(vocab=40, layers=2, fusion=1)
    text_cfg, vision_cfg = _configs(40)
    ref_v, ref_t = unimo.CLIPEncoderLayer(vision_cfg).eval(), unimo.BertLayer(text_cfg).eval()
    _randomise(ref_v, 1)
    _randomise(ref_t, 2)
    mapping: dict = {}

    def linear(a, b):
        mapping[a.weight] = b.weight
        if a.bias is not None:
            mapping[a.bias] = b.bias

    _vision_layer_mapping(linear, ours.vision_layers[1], ref_v)
    _text_layer_mapping(mapping, linear, ours.text_layers[1], ref_t, fused=True)
    copy_params(mapping)

    b, length, p, dh = 3, 7, 31, D // HEADS
    g = torch.Generator().manual_seed(3)
    x = torch.randn(b, p, D, generator=g)
    h = torch.randn(b, length, D, generator=g)
    pk, pv = torch.randn(2, b, HEADS, length, dh, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[1, 5:] = False
    leaves = [t.requires_grad_() for t in (x.clone(), h.clone(), pk.clone(), pv.clone())]
    ref_leaves = [t.detach().clone().requires_grad_() for t in leaves]

    vis = ours.vision_layers[1](leaves[0], leaves[2], leaves[3], None, None)
    out, k, v = ours.text_layers[1](leaves[1], mask, vis, torch.arange(b), None)
    ref_vis = ref_v(ref_leaves[0], past_key_values=(ref_leaves[2], ref_leaves[3]))[0]
    extended = (1.0 - mask[:, None, None, :].long()) * -10000.0
    ref_out = ref_t(ref_leaves[1], attention_mask=extended, visual_hidden_state=ref_vis,
                    output_qks=True)
    ref_k, ref_v_ = ref_out[-1]
    assert_close(vis, ref_vis, TOL, "PGI vision layer")
    assert_close(out, ref_out[0], TOL, "CAF text layer")
    assert_close(k, ref_k, TOL, "text keys for the next PGI")
    assert_close(v, ref_v_, TOL, "text values for the next PGI")
    g_out = torch.randn(out.shape, generator=g)
    (out * g_out).sum().add(k.sum() + (v ** 2).sum()).backward()
    (ref_out[0] * g_out).sum().add(ref_k.sum() + (ref_v_ ** 2).sum()).backward()
    for name, a, r in zip(("visual input", "text input", "prefix keys", "prefix values"),
                          leaves, ref_leaves, strict=True):
        assert_close(a.grad, r.grad, TOL, f"{name} gradient")
    _compare_grads(mapping, TOL, "hybrid layer")


# ------------------------------------------------------------------ whole model, losses
class _Tokenizer:
    """What ``TransformerLitModel`` reads of the released tokenizer."""

    def __init__(self, mask_token_id: int, size: int) -> None:
        self.mask_token_id, self.size = mask_token_id, size

    def __len__(self) -> int:
        return self.size

    def batch_decode(self, *args, **kwargs):  # training_step decodes batch 0 only
        return []


def _graph() -> MultiModalKG:
    train = torch.tensor([[0, 0, 2], [1, 0, 2], [3, 1, 4], [4, 0, 3], [5, 1, 3], [0, 1, 1]])
    return MultiModalKG(NAMES, RELS, train, train[:2], train[2:4], name="toy",
                        texts={"name": NAMES, "description": DESCS})


def _images(n: int, seed: int) -> EntityImages:
    """Random images for every slot of every entity, except that entities 3 and 5 lack some:
    the release feeds a missing image as zeros that the attention still sees, which mmgnn
    reproduces by zero pixels marked present (its default masks absent images instead)."""
    g = torch.Generator().manual_seed(seed)
    pixels = [torch.randn(n, 3, s, s, generator=g) for s in SIZES]
    for k in (2, 3, 5, 6):
        pixels[k][3] = 0.0
    for k in range(1, len(SIZES)):
        pixels[k][5] = 0.0
    return EntityImages(pixels, torch.ones(n, len(SIZES), dtype=torch.bool), torch.arange(n))


def _pair(unimo, tokenizer):
    """An mmgnn MKGformer and the released ``UnimoForMaskedLM`` with the same weights: the
    released model randomised, copied into mmgnn's."""
    kg = _graph()
    vocab = tokenizer.vocab_size
    torch.manual_seed(0)
    model = MKGformer(kg, encoder=_encoder(vocab), tokenizer=tokenizer,
                      images=_images(kg.num_entities, 5), max_length=32,
                      pretrain_label_smoothing_form="released", progress=False).eval()
    total = vocab + kg.num_entities + kg.num_relations
    ref = unimo.UnimoForMaskedLM(*reversed(_configs(total))).eval()
    _randomise(ref, 7)
    mapping = _mapping(model.encoder, model.decoder, ref)
    copy_params(mapping)
    with torch.no_grad():
        model.decoder.bias.copy_(ref.cls.predictions.bias[vocab:vocab + kg.num_entities])
    return kg, model, ref, mapping


def _released_batch(tokenizer, kg, model, queries, stage: int) -> dict:
    """The released model's batch: token ids in the released layout (built here from the
    spec, not by mmgnn), padding, and the images of each query's known entity."""
    v, n = tokenizer.vocab_size, kg.num_entities
    cls, sep, mask = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id

    def words(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    rows, known = [], []
    for side, e, r in queries:
        desc = words(f"{NAMES[e]}, {DESCS[e]}")  # name, gloss
        rel = words(" ".join(RELS[r].replace("_", " ").split())) + [v + n + r]
        if stage == 1:
            rows.append([cls, *words("the description of"), mask, *words("is that"), *desc,
                         *words("."), sep])
        elif side == "tail":
            rows.append([cls, v + e, sep, *rel, sep, mask, *desc, sep])
        else:
            rows.append([cls, mask, sep, *rel, sep, v + e, *desc, sep])
        known.append(e)
    width = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    px = [getattr(model, f"pixels_{k}")[model.image_rows[known]] for k in range(len(SIZES))]
    return {"input_ids": ids, "attention_mask": attention, "pixel_values": px[0],
            "aux_values": torch.stack(px[1:4], dim=1), "rcnn_values": torch.stack(px[4:], 1)}


def _released_lit(lit, ref, tokenizer, kg, stage: int):
    args = types.SimpleNamespace(bce=int(stage == 2), label_smoothing=0.1,
                                 pretrain=int(stage == 1))
    v = tokenizer.vocab_size
    module = lit.TransformerLitModel(
        ref, args, tokenizer=_Tokenizer(tokenizer.mask_token_id, ref.config.vocab_size),
        data_config={"entity_id_st": v, "entity_id_ed": v + kg.num_entities})
    return module


def test_whole_encoder_and_entity_scores(unimo, tokenizer, float64):
    """Tail and head queries through all 12 layers and the head: mmgnn's scores of every
    entity equal the released MLM logits at ``[MASK]`` over the entity-token range."""
    kg, model, ref, mapping = _pair(unimo, tokenizer)
    v, n = tokenizer.vocab_size, kg.num_entities
    for side in ("tail", "head"):
        queries = [(side, 0, 0), (side, 3, 1), (side, 5, 1)]
        batch = _released_batch(tokenizer, kg, model, queries, stage=2)
        logits = ref(**batch, return_dict=True).logits
        where = (batch["input_ids"] == tokenizer.mask_token_id).nonzero()[:, 1]
        theirs = logits[torch.arange(len(queries)), where][:, v:v + n]
        e, r = torch.tensor([q[1] for q in queries]), torch.tensor([q[2] for q in queries])
        x = model.encode()
        ours = model.score_tails(x, e, r) if side == "tail" else model.score_heads(x, r, e)
        assert_close(ours, theirs, TOL, f"{side} entity scores")
        weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1))
        (ours * weights).sum().backward()
        (theirs * weights).sum().backward()
        _compare_grads(mapping, TOL, f"{side} scores")
        silent = [tuple(t.shape) for t in mapping if t.grad is None or not t.grad.any()]
        assert not silent, f"weights without gradient: {silent}"  # every weight compared
        bias = ref.cls.predictions.bias.grad[v:v + n]
        assert_close(model.decoder.bias.grad, bias, TOL, "head bias gradient")
        model.zero_grad(set_to_none=True)
        ref.zero_grad(set_to_none=True)


def test_stage_one_loss(unimo, lit, tokenizer, float64):
    """Stage 1 (``--pretrain 1 --bce 0``): the label-smoothed entity loss of every entity
    from its description and images, and its gradient (the word embeddings only train)."""
    kg, model, ref, mapping = _pair(unimo, tokenizer)
    module = _released_lit(lit, ref, tokenizer, kg, stage=1)
    entities = torch.tensor([4, 0, 2, 5])
    batch = _released_batch(tokenizer, kg, model, [("", e, 0) for e in entities.tolist()], 1)
    batch.update(labels=torch.zeros(len(entities), kg.num_entities), label=entities)
    theirs = module.training_step(batch, batch_idx=1)
    for p in model.parameters():  # as pretrain_entities trains: the word embeddings only
        p.requires_grad_(p is model.word_embeddings.weight)
    ours = model.pretrain_loss(entities)
    assert_close(ours, theirs, TOL, "stage-1 loss")
    ours.backward()
    theirs.backward()
    words = model.word_embeddings.weight
    assert_close(words.grad, ref.unimo.text_embeddings.word_embeddings.weight.grad, TOL,
                 "stage-1 word-embedding gradient")
    assert sum(p.grad is not None for p in ref.parameters()) == 1  # _freeze_attention
    # The default form is label smoothing proper: the gold class gets eps/N more, so the
    # loss is the release's minus (eps / N) * mean log p(gold), p from the released logits.
    with torch.no_grad():
        model.pretrain_label_smoothing_form = "standard"
        standard = model.pretrain_loss(entities)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values",
                                        "aux_values", "rcnn_values")}
        where = (inputs["input_ids"] == tokenizer.mask_token_id).nonzero()[:, 1]
        v, n = tokenizer.vocab_size, kg.num_entities
        logits = ref(**inputs, return_dict=True).logits[torch.arange(len(entities)), where]
        log_gold = torch.log_softmax(logits[:, v:v + n], -1)[torch.arange(len(entities)),
                                                              entities].mean()
    assert_close(standard, theirs.detach() - 0.1 / n * log_gold, TOL, "standard form")
    assert float(standard - theirs.detach()) > 1e-3


def test_stage_two_loss(unimo, lit, tokenizer, float64):
    """Stage 2 (``--bce 1``): BCE with logits over every entity against the multi-hot train
    answers, tail and head queries, through mmgnn's ``model.loss`` on a KvsAll batch."""
    kg, model, ref, mapping = _pair(unimo, tokenizer)
    module = _released_lit(lit, ref, tokenizer, kg, stage=2)
    loss_fn = BCEWithLabelSmoothing(label_smoothing=0.0)
    for side in ("tail", "head"):
        queries = [(side, 0, 0), (side, 4, 0), (side, 3, 1)]
        e = torch.tensor([q[1] for q in queries])
        r = torch.tensor([q[2] for q in queries])
        answers = [[2], [3], [4]] if side == "tail" else [[], [3], [4, 5]]
        rows = torch.tensor([i for i, a in enumerate(answers) for _ in a])
        cols = torch.tensor([c for a in answers for c in a])
        labels = torch.zeros(len(queries), kg.num_entities)
        labels[rows, cols] = 1.0
        batch = _released_batch(tokenizer, kg, model, queries, stage=2)
        batch.update(labels=labels, label=torch.zeros(len(queries), dtype=torch.long))
        theirs = module.training_step(batch, batch_idx=1)
        ours = model.loss(model.encode(), QueryBatch(side, e, r, target_rows=rows,
                                                     target_cols=cols), loss_fn)
        assert_close(ours, theirs, TOL, f"stage-2 {side} loss")
        ours.backward()
        theirs.backward()
        _compare_grads(mapping, TOL, f"stage-2 {side}")
        model.zero_grad(set_to_none=True)
        ref.zero_grad(set_to_none=True)
