"""Parity of mmgnn's K3M with the released code (``YushanZhu/K3M`` at the spec commit; spec
``K3M.md``): ``vilbert_k3m/vilbert_k3m.py`` (the co-attention layers ``BertConnectionLayer``
and ``BertConnectionLayer_two_text``, IIFM ``get_sequence_pooled_output_final`` in its four
strategies, ``structure_aggregator``, and the whole pretraining forward of
``BertForMultiModalPreTraining_tri_stru``: MLM, PV, MOM and LP losses) and
``vilbert_k3m/datasets/concept_cap_dataset_struc.py`` (``index_pv``, ``random_word_pv``).
Outputs and gradients, float64, tiny sizes, the weights copied with an explicit mapping.

The released file imports ``.utils`` (boto3, tensorboardX, ``torch._six``: none used by the
model); a stub supplies the two members the model needs from it, ``PreTrainedModel.__init__``
(stores the config) and ``_tie_or_clone_weights`` (ties the decoder), written as released. Its
``structure_aggregator`` moves the labels with ``.cuda()``, made a no-op for the test.

Released-code settings of :class:`~mmgnn.models.k3m.K3M`: ``aggregator="code"`` (one head,
LeakyReLU(0.01) before W2, no sigma, W3 on the aggregate), ``pair_reading="code"``
(``index_pv`` pairs, p / v the mean of two hidden states), ``pooling="code"`` (padding
included), ``eval_noise=True`` (hard IIFM draws Gumbel noise in eval mode too), ``lp="code"``
of :class:`~mmgnn.models.k3m.K3MPretraining`. Dropout is 0 on both sides (the passes are in
training mode, where hard IIFM draws its Gumbel noise); in the whole-model test the Gumbel noise
is a function of the tensor's shape (:func:`shape_keyed_gumbel`), so both sides draw the same
noise although the released code fuses the modalities in another order (v, t, pv).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mmgnn.models.k3m import K3M, K3MConfig, K3MPretraining
from mmgnn.models.k3m.pretraining import IGNORE, mask_values
from mmgnn.nn.conv import K3MGATConv
from mmgnn.nn.fusion import CoAttentionLayer
from tests.parity.conftest import (
    REFERENCE,
    assert_close,
    copy_params,
    load_reference,
    stub_module,
)

TOL = 1e-10  # float64, the same operations up to summation order
# token ids: ':' and ';' are bert-base-chinese's 131 / 132, hard-coded in the loader
PAD, CLS, SEP, MASK, KV, PAIR = 0, 2, 3, 4, 131, 132
VOCAB = 140
SIZES = dict(hidden=16, text_layers=2, text_heads=2, text_ffn=24, image_channels=6,
             image_hidden=12, image_layers=1, image_heads=2, image_ffn=20, co_layers=1,
             co_hidden=12, co_heads=2)  # widths distinct where the release allows it
# The released IIFM gates and map_bi_to_individual read the visual stream at the co-attention
# width (bi_hidden_size), so the whole model needs co_hidden == image_hidden (1024 both in
# bert_base_6layer_6conect.json); the co-attention test alone uses a distinct width.
CO_HIDDEN_ALONE = 8
REGION_CLASSES = 5
MODES = {"mean": 0, "hard": 1, "soft": 2, "interaction": 3}  # --if_pre_sampling


class ReleasedPreTrainedModel(torch.nn.Module):
    """The members of ``vilbert_k3m/utils.py``'s ``PreTrainedModel`` the model uses."""

    def __init__(self, config, *inputs, **kwargs):
        super().__init__()
        self.config = config

    def _tie_or_clone_weights(self, first_module, second_module):
        first_module.weight = second_module.weight


@pytest.fixture(scope="module")
def released():
    package = REFERENCE / "K3M" / "vilbert_k3m"
    model = load_reference("K3M/vilbert_k3m/vilbert_k3m.py", "vilbert_k3m.vilbert_k3m", shims={
        "vilbert_k3m": stub_module("vilbert_k3m", package),
        "vilbert_k3m.utils": stub_module("vilbert_k3m.utils",
                                         PreTrainedModel=ReleasedPreTrainedModel)})
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    data = load_reference(  # its storage and LMDB imports serve the loaders, not these methods
        "K3M/vilbert_k3m/datasets/concept_cap_dataset_struc.py", "concept_cap_dataset_struc",
        shims={"lmdb": stub_module("lmdb"), "tensorpack": stub_module("tensorpack"),
               "tensorpack.dataflow": stub_module("tensorpack.dataflow"),
               "msgpack": stub_module("msgpack"),
               "msgpack_numpy": stub_module("msgpack_numpy", patch=lambda: None)})
    root.setLevel(level)  # the file calls logging.basicConfig on import
    root.handlers[:] = handlers
    return SimpleNamespace(model=model, data=data)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)


def released_config(ref, mode: str = "mean", **changes):
    c = {**SIZES, **changes}
    config = ref.BertConfig(
        VOCAB, hidden_size=c["hidden"], num_hidden_layers=c["text_layers"],
        num_attention_heads=c["text_heads"], intermediate_size=c["text_ffn"],
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=16,
        v_feature_size=c["image_channels"], v_target_size=REGION_CLASSES,
        v_hidden_size=c["image_hidden"], v_num_hidden_layers=c["image_layers"],
        v_num_attention_heads=c["image_heads"], v_intermediate_size=c["image_ffn"],
        bi_hidden_size=c["co_hidden"], bi_num_attention_heads=c["co_heads"],
        v_attention_probs_dropout_prob=0.0, v_hidden_dropout_prob=0.0,
        v_biattention_id=[0], t_biattention_id=[1], visual_target=0)
    config.if_pre_sampling = MODES[mode]
    return config


def ours_model(fusion: str = "mean") -> K3M:
    return K3M(K3MConfig(vocab_size=VOCAB, **SIZES, streams=("title", "knowledge", "image"),
                         fusion=fusion, eval_noise=True, aggregator="code",
                         pair_reading="code", pooling="code", dropout=0.0, max_position=16),
               cls_id=CLS, sep_id=SEP, pad_id=PAD, kv_id=KV, pair_id=PAIR)


def shape_keyed_gumbel(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """``F.gumbel_softmax`` (torch's algorithm) with noise drawn from a generator seeded by
    the tensor's shape: the same noise for the same modality on both sides."""
    seed = sum(s * 1000 ** i for i, s in enumerate(logits.shape))
    g = torch.Generator().manual_seed(seed)
    gumbels = -torch.empty(logits.shape, dtype=logits.dtype).exponential_(generator=g).log()
    y = ((logits + gumbels) / tau).softmax(dim)
    if not hard:
        return y
    index = y.argmax(dim, keepdim=True)
    return torch.zeros_like(logits).scatter_(dim, index, 1.0) - y.detach() + y


# ----------------------------------------------------------------------- weight mapping
def coattention_mapping(ours: CoAttentionLayer, theirs) -> dict:
    """Stream 0 of ours is the released side 2 (the text, ``query2``, ``dense2``,
    ``t_intermediate``), stream 1 the released side 1 (image or knowledge text)."""
    att, out = theirs.biattention, theirs.biOutput
    m = {}
    for s, (side, ffn_in, ffn_out) in enumerate((
            ("2", theirs.t_intermediate, theirs.t_output),
            ("1", theirs.v_intermediate, theirs.v_output))):
        q, k, v = (getattr(att, f"{n}{side}") for n in ("query", "key", "value"))
        m[ours.qkv[s].weight] = torch.cat([q.weight, k.weight, v.weight])
        m[ours.qkv[s].bias] = torch.cat([q.bias, k.bias, v.bias])
        dense, norm = getattr(out, f"dense{side}"), getattr(out, f"LayerNorm{side}")
        m.update({ours.lin_out[s].weight: dense.weight, ours.lin_out[s].bias: dense.bias,
                  ours.norm[s].weight: norm.weight, ours.norm[s].bias: norm.bias,
                  ours.ffn[s].lin_in.weight: ffn_in.dense.weight,
                  ours.ffn[s].lin_in.bias: ffn_in.dense.bias,
                  ours.ffn[s].lin_out.weight: ffn_out.dense.weight,
                  ours.ffn[s].lin_out.bias: ffn_out.dense.bias,
                  ours.ffn[s].norm.weight: ffn_out.LayerNorm.weight,
                  ours.ffn[s].norm.bias: ffn_out.LayerNorm.bias})
    return m


def same_names(ours: torch.nn.Module, theirs: torch.nn.Module) -> dict:
    """Modules whose parameters have the released names (HF BERT layers and embeddings)."""
    mine = dict(ours.named_parameters())
    theirs = dict(theirs.named_parameters())
    assert set(mine) == set(theirs), (set(mine) ^ set(theirs))
    return {mine[n]: theirs[n] for n in theirs}


def linear(ours, theirs) -> dict:
    return {ours.weight: theirs.weight, ours.bias: theirs.bias}


FUSION = {"title": "t", "knowledge": "pv", "image": "v"}


def iifm_mapping(ours: K3M, theirs) -> dict:
    m = {}
    for stream, key in FUSION.items():
        fusion = ours.fusion[stream]
        names = ("self", "cross1", "cross2") if len(fusion.gates) else ()
        for gate, name in zip(fusion.gates, names, strict=True):
            m.update(linear(gate, getattr(theirs, f"score_{name}_{key}")))
        if fusion.lin_out is not None:
            m.update(linear(fusion.lin_out, getattr(theirs, f"soft_{key}")))
    m.update(linear(ours.image_to_text, theirs.map_bi_to_individual))
    return m


def aggregator_mapping(ours: K3MGATConv, theirs) -> dict:
    d = ours.out_channels
    w1 = theirs.struc_w1.weight  # (d, 3d) on [c ; p ; v]
    return {ours.lin_item.weight: w1[:, :d], ours.lin_item.bias: theirs.struc_w1.bias,
            ours.lin_prop.weight: w1[:, d:2 * d], ours.lin_value.weight: w1[:, 2 * d:],
            ours.att: theirs.struc_w2.weight.view(1, 1, d),
            **linear(ours.lin_out, theirs.struc_w3)}


def pretraining_mapping(ours: K3MPretraining, theirs) -> dict:
    """Every parameter of ours, from the released ``BertForMultiModalPreTraining_tri_stru``
    (which also has unused ones: poolers, ``q_dense*``, ``map_individual_to_bi``, NSP)."""
    model, bert, enc = ours.model, theirs.bert_tri, theirs.bert_tri.encoder_tri
    m = same_names(model.text.embeddings, bert.embeddings)
    for i, layer in enumerate(model.text.encoder.layer):
        m.update(same_names(layer, enc.layer[i]))
    for i, layer in enumerate(model.image_layers):
        m.update(same_names(layer, enc.v_layer[i]))
    emb = model.image_embedding
    m.update({**linear(emb.lin_feat, bert.v_embeddings.image_embeddings),
              **linear(emb.lin_box, bert.v_embeddings.image_location_embeddings),
              **linear(emb.norm, bert.v_embeddings.LayerNorm)})
    for pair, released in (("title_image", enc.c_layer), ("knowledge_image", enc.c_layer_pv_v),
                           ("title_knowledge", enc.c_layer_pv_t)):
        for k, block in enumerate(model.co_attention[pair]):
            m.update(coattention_mapping(block, released[k]))
    m.update(iifm_mapping(model, theirs))
    m.update(aggregator_mapping(model.aggregator, theirs))
    m.update(linear(ours.lp_head, theirs.struc_w_loss))
    lm = theirs.cls.predictions
    m.update({**linear(ours.lm_head.transform, lm.transform.dense),
              **linear(ours.lm_head.norm, lm.transform.LayerNorm), ours.lm_head.bias: lm.bias})
    img = theirs.cls.imagePredictions
    m.update({**linear(ours.region_head.transform, img.transform.dense),
              **linear(ours.region_head.norm, img.transform.LayerNorm),
              **linear(ours.region_head.lin_out, img.decoder)})
    missing = {n for n, p in ours.named_parameters() if all(p is not q for q in m)}
    assert not missing, f"unmapped mmgnn parameters: {sorted(missing)}"
    return m


def compare_derived_grads(pairs: list[tuple[torch.Tensor, torch.Tensor]], what: str) -> float:
    """Max difference over (mmgnn, released) gradient pairs; a tensor no output depends on
    (``interaction`` ignores the individual feature) has no gradient on either side."""
    worst = 0.0
    for a, b in pairs:
        assert (a is None) == (b is None), f"{what}: a gradient on one side only"
        if a is not None:
            worst = max(worst, assert_close(a, b, TOL, what))
    return worst


# --------------------------------------------------------------------------------- inputs
def masks(lengths: list[int], size: int) -> torch.Tensor:
    return torch.arange(size)[None] < torch.tensor(lengths)[:, None]


def extended(mask: torch.Tensor) -> torch.Tensor:
    """The released additive mask (``BertModel_tri.forward``)."""
    return (1.0 - mask[:, None, None, :].to(torch.get_default_dtype())) * -10000.0


KNOWLEDGE = [  # real tokens. Item 0: a lone pair without ';', which index_pv drops, so the
    # aggregator falls back to t = c. It is first because the released loop keeps the
    # previous item's triples (a stale variable `t`) for a pair-less item further down the
    # batch; mmgnn's code form takes the fallback the code means for every pair-less item.
    [CLS, 15, KV, 16, SEP],
    [CLS, 7, 8, KV, 9, PAIR, 10, KV, 11, 12, PAIR, 13, KV, 14, SEP],  # last pair open
    [CLS, 7, KV, 9, 9, PAIR, 10, 10, KV, 11, PAIR, SEP],  # every pair closed by ';'
    [CLS, 17, KV, 18, PAIR, 19, KV, 20, SEP],
]
TITLES = [[CLS, 21, 22, 23, SEP], [CLS, 24, 25, 26, 27, 28, SEP], [CLS, 29, 30, SEP],
          [CLS, 31, 32, 33, 34, SEP]]


def padded(rows: list[list[int]], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(rows), size), PAD)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    return ids, torch.tensor([len(r) for r in rows])


def released_index_pv(data, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``index_p`` / ``index_v`` as the released loader builds them (padded to 10 pairs)."""
    index_p, index_v = [], []
    for r in rows:
        p, v = data.BertPreprocessBatch.index_pv(None, list(r))
        index_p.append(p + [[0, 0]] * (10 - len(p)))
        index_v.append(v + [[0, 0]] * (10 - len(v)))
    return torch.tensor(index_p), torch.tensor(index_v)


# ---------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("pair", ["image", "two_text"])
def test_co_attention_layer(released, float64, pair):
    torch.manual_seed(0)
    ref = released.model
    c = {**SIZES, "co_hidden": CO_HIDDEN_ALONE}
    config = released_config(ref, co_hidden=CO_HIDDEN_ALONE)
    if pair == "image":  # side 1 = image regions, side 2 = title
        theirs = ref.BertConnectionLayer(config)
        ours = CoAttentionLayer((c["hidden"], c["image_hidden"]), c["co_hidden"],
                                c["co_heads"], (c["text_ffn"], c["image_ffn"]), dropout=0.0)
        width_b, len_b, lengths_b = c["image_hidden"], 5, [5, 3, 5]
    else:  # side 1 = knowledge text, side 2 = title, attention at the text width
        theirs = ref.BertConnectionLayer_two_text(config)
        ours = CoAttentionLayer((c["hidden"], c["hidden"]), c["hidden"], c["co_heads"],
                                (c["text_ffn"], c["text_ffn"]), dropout=0.0)
        width_b, len_b, lengths_b = c["hidden"], 9, [9, 4, 6]
    for p in theirs.parameters():  # LayerNorms start at (1, 0): make them count
        p.data.normal_(0.0, 0.3)
    mapping = coattention_mapping(ours, theirs)
    copy_params(mapping)
    x_a = torch.randn(3, 7, c["hidden"])
    x_b = torch.randn(3, len_b, width_b)
    mask_a, mask_b = masks([7, 4, 2], 7), masks(lengths_b, len_b)
    xs_ours = [x.clone().requires_grad_() for x in (x_a, x_b)]
    xs_theirs = [x.clone().requires_grad_() for x in (x_a, x_b)]
    out_a, out_b = ours(xs_ours[0], mask_a, xs_ours[1], mask_b)
    ref_b, ref_a, _ = theirs(xs_theirs[1], extended(mask_b), xs_theirs[0], extended(mask_a))
    diff = max(assert_close(out_a, ref_a, TOL, "text stream"),
               assert_close(out_b, ref_b, TOL, "other stream"))
    w_a, w_b = torch.randn_like(out_a), torch.randn_like(out_b)
    ((out_a * w_a).sum() + (out_b * w_b).sum()).backward()
    ((ref_a * w_a).sum() + (ref_b * w_b).sum()).backward()
    grads = [(xs_ours[i].grad, xs_theirs[i].grad) for i in range(2)]
    for ours_p, theirs_p in mapping.items():
        if theirs_p.grad_fn is not None:  # the q/k/v concatenation: compare the parts
            continue
        grads.append((ours_p.grad, theirs_p.grad))
    att = theirs.biattention
    for s, side in enumerate("21"):
        parts = [getattr(att, f"{n}{side}") for n in ("query", "key", "value")]
        grads.append((ours.qkv[s].weight.grad, torch.cat([p.weight.grad for p in parts])))
        grads.append((ours.qkv[s].bias.grad, torch.cat([p.bias.grad for p in parts])))
    grad_diff = compare_derived_grads(grads, "gradient")
    print(f"co-attention ({pair}): max |diff| forward {diff:.2g}, gradient {grad_diff:.2g}")


@pytest.mark.parametrize("mode", list(MODES))
def test_iifm_and_pooling(released, float64, mode):
    torch.manual_seed(0)
    ref = released.model
    theirs = ref.BertForMultiModalPreTraining_tri_stru(released_config(ref, mode))
    ours = ours_model(mode)
    mapping = iifm_mapping(ours, theirs)
    for t in mapping.values():  # the released init zeroes biases: make them count
        t.data.normal_(0.0, 0.3)
    copy_params(mapping)
    c = SIZES
    shapes = {"t": (3, 7, c["hidden"]), "pv": (3, 9, c["hidden"]),
              "v": (3, 5, c["image_hidden"])}
    src = {k: [torch.randn(s, requires_grad=True) for _ in range(3)] for k, s in shapes.items()}
    mine = {k: [x.detach().clone().requires_grad_() for x in xs] for k, xs in src.items()}
    # get_sequence_pooled_output_final(t_with_v, v_with_t, _, pv_with_v, v_with_pv, _,
    #                                   t_with_pv, pv_with_t, _, individual t, pv, v)
    torch.manual_seed(1)  # hard: the released draws v, t, pv in this order
    seq_v, seq_t, seq_pv, pool_v, pool_t, pool_pv = theirs.get_sequence_pooled_output_final(
        src["t"][1], src["v"][1], None, src["pv"][1], src["v"][2], None, src["t"][2],
        src["pv"][2], None, src["t"][0], src["pv"][0], src["v"][0])
    torch.manual_seed(1)
    fused = {k: ours.fusion[s](mine[k]) for k, s in (("v", "image"), ("t", "title"),
                                                    ("pv", "knowledge"))}
    pooled = {k: x[:, 1:].mean(1) for k, x in fused.items()}  # pooling="code"
    pooled["v"] = ours.image_to_text(pooled["v"])
    diff = max(assert_close(fused[k], r, TOL, f"fused {k}")
               for k, r in (("v", seq_v), ("t", seq_t), ("pv", seq_pv)))
    diff = max(diff, *(assert_close(pooled[k], r, TOL, f"pooled {k}")
                       for k, r in (("v", pool_v), ("t", pool_t), ("pv", pool_pv))))
    w = {k: torch.randn_like(x) for k, x in pooled.items()}
    sum((pooled[k] * w[k]).sum() + fused[k].sum() for k in w).backward()
    sum((r * w[k]).sum() + s.sum() for k, r, s in (("v", pool_v, seq_v), ("t", pool_t, seq_t),
                                                   ("pv", pool_pv, seq_pv))).backward()
    grads = [(mine[k][i].grad, src[k][i].grad) for k in src for i in range(3)]
    grads += [(a.grad, b.grad) for a, b in mapping.items() if a.grad is not None]
    if mode in ("hard", "soft"):
        assert all(g.weight.grad is not None for f in ours.fusion.values() for g in f.gates)
    grad_diff = compare_derived_grads(grads, "gradient")
    print(f"IIFM {mode}: max |diff| forward {diff:.2g}, gradient {grad_diff:.2g}")


def test_structure_aggregator(released, float64, no_cuda):
    torch.manual_seed(0)
    ref = released.model
    theirs = ref.BertForMultiModalPreTraining_tri_stru(released_config(ref))
    d = SIZES["hidden"]
    ours = K3MGATConv(d, d, edge_dim=d, variant="code")
    mapping = aggregator_mapping(ours, theirs)
    for t in (theirs.struc_w1.bias, theirs.struc_w3.bias, theirs.struc_w2.bias):
        t.data.normal_(0.0, 0.3)
    copy_params(mapping)
    index_p, index_v = released_index_pv(released.data, KNOWLEDGE)
    pooled = [torch.randn(4, d, requires_grad=True) for _ in range(3)]  # v, t, pv
    seq = torch.randn(4, 16, d, requires_grad=True)
    c_init, c_final, _ = theirs.structure_aggregator(*pooled, seq, index_p, index_v)

    mine = [x.detach().clone().requires_grad_() for x in [*pooled, seq]]
    initial = (mine[0] + mine[1] + mine[2]) / 3
    # the released reading, written out: the mean of the two indexed hidden states
    rows = [(i, j) for i in range(4) for j in range(10) if index_p[i, j, 0] != 0]
    item = torch.tensor([i for i, _ in rows])
    ends = [(index_p[i, j], index_v[i, j]) for i, j in rows]
    prop = torch.stack([mine[3][i, p].mean(0) for (i, _), (p, _) in zip(rows, ends,
                                                                         strict=True)])
    value = torch.stack([mine[3][i, v].mean(0) for (i, _), (_, v) in zip(rows, ends,
                                                                          strict=True)])
    edge_index = torch.stack([torch.arange(len(rows)), item])
    out = ours((value, initial), edge_index, prop)
    assert 0 not in item.tolist()  # item 0 has no released pair: the c + W3 c fallback
    diff = max(assert_close(initial, c_init, TOL, "c_initial"),
               assert_close(out, c_final, TOL, "c_final"))
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (c_final * w).sum().backward()
    grads = [(a.grad, b.grad) for a, b in zip(mine, [*pooled, seq], strict=True)]
    grads += [(ours.lin_item.weight.grad, theirs.struc_w1.weight.grad[:, :d]),
              (ours.lin_prop.weight.grad, theirs.struc_w1.weight.grad[:, d:2 * d]),
              (ours.lin_value.weight.grad, theirs.struc_w1.weight.grad[:, 2 * d:]),
              (ours.lin_item.bias.grad, theirs.struc_w1.bias.grad),
              (ours.att.grad.view(1, d), theirs.struc_w2.weight.grad),
              (ours.lin_out.weight.grad, theirs.struc_w3.weight.grad),
              (ours.lin_out.bias.grad, theirs.struc_w3.bias.grad)]
    grad_diff = compare_derived_grads(grads, "gradient")
    # W2's bias, which mmgnn leaves out, shifts every logit of an item: no gradient
    assert theirs.struc_w2.bias.grad.abs().max() < 1e-12
    print(f"structure aggregator: max |diff| forward {diff:.2g}, gradient {grad_diff:.2g}")


def test_pair_reading_and_pv_masking_match_the_loader(released, float64):
    """``pair_spans(form="code")`` gives the released ``index_pv`` pairs; PV masking
    (``mask_values``, code form, on the ``span`` pairs) masks what ``random_word_pv`` masks."""
    model = ours_model()
    rows = KNOWLEDGE + [
        [CLS, 7, KV, 8, KV, 9, SEP],  # two ':' and no ';': no pairs
        [CLS, 7, KV, 8, PAIR, PAIR, SEP],  # more ';' than ':': no pairs
        [CLS] + [t for j in range(12) for t in (7 + j, KV, 20 + j, PAIR)] + [SEP],  # 12 pairs
    ]
    ids, lengths = padded(rows, 52)
    got = model.pair_spans(ids, lengths, form="code")
    for i, r in enumerate(rows):
        p, v = released.data.BertPreprocessBatch.index_pv(None, list(r))
        expect = [(i, pb, pe, vb, ve) for (pb, pe), (vb, ve) in zip(p, v, strict=True)][:10]
        assert got[got[:, 0] == i].tolist() == [list(e) for e in expect], r
    tokenizer = SimpleNamespace(mask_token="[MASK]", convert_tokens_to_ids=lambda t: MASK)
    masked, labels = mask_values(ids, model.pair_spans(ids, lengths), MASK, "code")
    for i, r in enumerate(rows[:4]):  # well-formed texts (on malformed ones the loader's
        # own parse differs from index_pv's)
        tokens, label = released.data.BertPreprocessBatch.random_word_pv(
            None, list(r[1:-1]), tokenizer, None)
        assert masked[i, 1:len(r) - 1].tolist() == tokens
        assert [x if x != IGNORE else -1 for x in labels[i, 1:len(r) - 1].tolist()] == label


@pytest.mark.parametrize("mode", ["hard", "soft"])  # the gated ones; all four: IIFM test
def test_pretraining_losses_and_gradients(released, float64, no_cuda, monkeypatch, mode):
    """The whole released pretraining forward (``BertForMultiModalPreTraining_tri_stru``:
    three two-stream passes, IIFM, pooling, the structure aggregator, MLM / MOM / PV / LP)
    against :class:`K3MPretraining` on the same masked batch."""
    monkeypatch.setattr(F, "gumbel_softmax", shape_keyed_gumbel)
    torch.manual_seed(0)
    ref = released.model
    theirs = ref.BertForMultiModalPreTraining_tri_stru(released_config(ref, mode)).train()
    model = ours_model(mode)
    ours = K3MPretraining(model, lp="code", num_region_classes=REGION_CLASSES,
                          mask_id=MASK).train()
    mapping = pretraining_mapping(ours, theirs)
    with torch.no_grad():
        for t in set(mapping.values()):  # biases and norms start constant: make them count
            if t.grad_fn is None and t.dim() == 1:
                t.normal_(0.0, 0.3)
    copy_params(mapping)

    B, R, C = 4, 4, SIZES["image_channels"]
    title, title_len = padded(TITLES, 7)
    knowledge, know_len = padded(KNOWLEDGE, 16)
    regions, boxes = torch.randn(B, R, C), torch.rand(B, R, 5)
    present = torch.ones(B, dtype=torch.bool)
    model.set_modality("text", title, present, title_len)
    model.set_modality("knowledge", knowledge, present, know_len)
    model.set_modality("image", regions, present)
    model.image_boxes = boxes
    # one masked batch for both (the masking itself is drawn at random on each side)
    masked_t = title.clone()
    labels_t = torch.full_like(title, IGNORE)
    for i, j in ((0, 1), (0, 3), (1, 2), (2, 1), (3, 4)):
        labels_t[i, j], masked_t[i, j] = title[i, j], MASK if j != 2 else 12
    masked_pv, labels_pv = mask_values(knowledge, model.pair_spans(knowledge, know_len), MASK)
    chosen = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0]]).bool()
    masked_regions = regions.clone()
    masked_regions[0, 0] = masked_regions[1, 1] = masked_regions[3, 1] = 0.0
    targets = torch.randn(B, R, REGION_CLASSES).softmax(-1)
    batch = {"text": {"title": (masked_t, title_len), "knowledge": (masked_pv, know_len)},
             "labels": {"title": labels_t, "knowledge": labels_pv},
             "regions": masked_regions, "original": regions, "chosen": chosen}
    items = torch.arange(B)
    losses = ours.losses(items, batch, region_classes=targets)
    out = model(items, text=batch["text"], image=masked_regions)

    # the released inputs: the global region (the mean region) first, as mmgnn builds it
    feats = torch.cat([masked_regions.mean(1, keepdim=True), masked_regions], 1)
    locs = torch.cat([torch.tensor([[[0.0, 0.0, 1.0, 1.0, 1.0]]]).expand(B, 1, 5), boxes], 1)
    index_p, index_v = released_index_pv(released.data, KNOWLEDGE)
    zero = torch.zeros(B, dtype=torch.long)
    res = theirs(
        masked_t, feats, locs, attention_mask=masks(title_len.tolist(), 7).long(),
        image_attention_mask=torch.ones(B, R + 1, dtype=torch.long),
        masked_lm_labels=labels_t.masked_fill(labels_t == IGNORE, -1),
        image_label=torch.where(chosen, 1, -1), image_target=targets,
        next_sentence_label=zero, input_ids_pv=masked_pv,
        attention_mask_pv=masks(know_len.tolist(), 16).long(),
        masked_lm_labels_pv=labels_pv.masked_fill(labels_pv == IGNORE, -1),
        next_sentence_label_pv_v=zero, next_sentence_label_pv_t=zero, index_p=index_p,
        index_v=index_v)
    mlm, mom, _, pv, _, _, _, c_initial, c_final, lp = res
    total = mlm + mom + pv + lp  # train_concap_struc.py:713, img_weight 1
    diffs = {name: assert_close(losses[key].view(1), value, TOL, name) for key, name, value in (
        ("mlm", "MLM", mlm), ("mom", "MOM", mom), ("pv", "PV", pv), ("lp", "LP", lp),
        ("loss", "total", total))}
    diffs["c"] = assert_close(out.initial, c_initial, TOL, "c_initial")
    diffs["c*"] = assert_close(out.item, c_final, TOL, "c_final")
    losses["loss"].backward()
    total.backward()
    grads = [(a.grad, b.grad) for a, b in mapping.items() if b.grad_fn is None]
    enc = theirs.bert_tri.encoder_tri
    for pair, layers in (("title_image", enc.c_layer), ("knowledge_image", enc.c_layer_pv_v),
                         ("title_knowledge", enc.c_layer_pv_t)):
        block, att = model.co_attention[pair][0], layers[0].biattention
        for s, side in enumerate("21"):
            parts = [getattr(att, f"{n}{side}") for n in ("query", "key", "value")]
            grads.append((block.qkv[s].weight.grad, torch.cat([p.weight.grad for p in parts])))
    d = SIZES["hidden"]
    grads += [(model.aggregator.lin_prop.weight.grad, theirs.struc_w1.weight.grad[:, d:2 * d]),
              (model.aggregator.att.grad.view(1, d), theirs.struc_w2.weight.grad)]
    assert all(a is not None and b is not None for a, b in grads)
    grad_diff = compare_derived_grads(grads, "gradient")
    print(f"pretraining ({mode}): max |diff| " + ", ".join(f"{k} {v:.2g}"
                                                          for k, v in diffs.items())
          + f"; gradients ({len(grads)} tensors) {grad_diff:.2g}")
