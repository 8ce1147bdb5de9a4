"""K3M on the real K3M-sample: graph, spans, two-stream schedule, aggregation, missing inputs,
objectives, masking rates, downstream heads, checkpoints."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from mmgnn.data import MultiModalKG
from mmgnn.modalities.store import ModalityStore
from mmgnn.models.k3m import K3M, K3MConfig, classification_accuracy, load_encoder, save_encoder
from mmgnn.models.k3m.heads import ItemClassifier, PairClassifier
from mmgnn.models.k3m.pretraining import (
    IGNORE,
    K3MPretraining,
    mask_regions,
    mask_tokens,
    mask_values,
)
from mmgnn.models.k3m.product_graph import (
    ITEM_EDGE,
    build_product_graph,
    category_split,
    k3m_sample_files,
    k3m_tokenizer,
    load_k3m_sample,
)
from mmgnn.models.k3m.products import read_k3m_products
from mmgnn.nn.conv import K3MGATConv
from mmgnn.train import Trainer
from mmgnn.train.config import K3M_FINETUNE, K3M_PRETRAIN, TrainConfig
from mmgnn.train.k3m import PretrainTask, finetune_classification, pretrain
from mmgnn.train.tasks import Task

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def files(data_root):
    return k3m_sample_files(data_root)


@pytest.fixture(scope="module")
def tokenizer(files):
    return k3m_tokenizer(files["vocab"])


@pytest.fixture(scope="module")
def graph(files, tokenizer):
    return load_k3m_sample(files["train"].parent, tokenizer)


def tiny(graph, **changes) -> K3M:
    torch.manual_seed(0)
    return K3M(K3MConfig.tiny(**{"streams": ("title", "knowledge"), **changes})).attach(graph)


# ----------------------------------------------------------------------------- graph
def test_graph_holds_every_triple_and_item(graph, files, tokenizer):
    rows = read_k3m_products(files["train"]), read_k3m_products(files["valid"])
    pairs = [p for t in rows for p in t.properties]
    assert isinstance(graph, MultiModalKG) and graph.validate()
    assert graph["entity"].num_nodes == graph.num_entities == 500
    assert graph.entity_names == [i for t in rows for i in t.item_ids]
    assert graph.modalities == ["title", "knowledge"]  # images are URLs only
    assert graph.metadata() == (["entity", "value"], [ITEM_EDGE])
    assert graph.num_relations == 0 and len(graph.train) == 0  # values are literals
    edge = graph[ITEM_EDGE]
    assert edge.edge_index.size(1) == sum(len(p) for p in pairs)
    flat = [(i, k, v) for i, ps in enumerate(pairs) for k, v in ps]
    for e in range(0, len(flat), 97):
        i, k, v = flat[e]
        assert edge.edge_index[0, e] == i
        assert graph.property_names[edge.edge_type[e]] == k
        assert graph.value_names[edge.edge_index[1, e]] == v
    assert graph["entity"].split.bincount().tolist() == [400, 100]
    # every kept span holds exactly the tokens of its property / value
    ids = graph.features["knowledge"]
    kept = (edge.span[:, 0] >= 0).nonzero().view(-1)
    assert len(kept) + graph.num_pairs_truncated == len(flat)
    for e in kept[::41].tolist():
        i, k, v = flat[e]
        ps, pe, vs, ve = edge.span[e].tolist()
        assert ids[i, ps:pe].tolist() == tokenizer.encode(k, add_special_tokens=False)
        assert ids[i, vs:ve].tolist() == tokenizer.encode(v, add_special_tokens=False)
        assert ids[i, pe] == tokenizer.convert_tokens_to_ids(":")


def test_model_reads_the_same_spans_from_the_tokens(graph):
    m = tiny(graph)
    items = torch.arange(60)
    ids, lengths = m.text_inputs(items)["knowledge"]
    got = m.pair_spans(ids, lengths)
    edge = graph[ITEM_EDGE]
    sel = (edge.edge_index[0] < 60) & (edge.span[:, 0] >= 0)
    ref = torch.cat([edge.edge_index[0, sel, None], edge.span[sel]], 1)
    assert torch.equal(got, ref)


def test_category_split_is_stratified(graph):
    y = graph["entity"].y
    train, test = category_split(y, min_count=3, test_fraction=0.3)
    assert not set(train.tolist()) & set(test.tolist())
    counts = torch.bincount(y)
    assert (counts[y[test]] >= 3).all() and (counts[y[train]] >= 3).all()
    assert set(y[test].tolist()) == set(y[train].tolist())


def test_bad_image_features_are_rejected(files, tokenizer):
    table = read_k3m_products(files["valid"])
    with pytest.raises(ValueError, match="image features"):
        build_product_graph(table, tokenizer, image=(torch.zeros(3, 4), torch.ones(3).bool()))


# --------------------------------------------------------------------------- encoder
def test_lone_stream_is_the_text_encoder(graph):
    m = tiny(graph, streams=("title",), fusion="interaction", aggregator="none").eval()
    items = torch.arange(5)
    ids, lengths = m.text_inputs(items)["title"]
    mask = torch.arange(ids.size(1))[None] < lengths[:, None]
    with torch.no_grad():
        ref = m.text(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        out = m(items)
    # 'interaction' of a lone stream falls back to the mean of embedding and encoder output
    emb = m.text.embeddings(input_ids=ids)
    expected = torch.stack([(emb + ref)[i, 1:lengths[i]].mean(0) / 2 for i in range(5)])
    torch.testing.assert_close(out.item, expected, atol=1e-5, rtol=1e-4)


def test_two_stream_schedule_matches_vilbert_order(graph):
    m = tiny(graph, text_layers=3, co_layers=2, fusion="mean", aggregator="none").eval()
    items = torch.arange(4)
    emb, mask, _, _ = m.embed(items)
    layers = m.text.encoder.layer

    def run(layer, x, msk):
        ext = (~msk)[:, None, None, :].float() * torch.finfo(torch.float).min
        out = layer(x, attention_mask=ext)
        return out[0] if isinstance(out, tuple) else out

    with torch.no_grad():
        a, b = emb["title"], emb["knowledge"]
        ma, mb = mask["title"], mask["knowledge"]
        blocks = m.co_attention["title_knowledge"]
        a, b = run(layers[0], a, ma), run(layers[0], b, mb)      # L - D + 0 = 1 layer first
        a, b = blocks[0](a, ma, b, mb)
        a, b = run(layers[1], a, ma), run(layers[1], b, mb)
        a, b = blocks[1](a, ma, b, mb)
        a, b = run(layers[2], a, ma), run(layers[2], b, mb)      # the tail
        ga, gb = m._two_stream("title", "knowledge", emb, mask)
    torch.testing.assert_close(ga, a)
    torch.testing.assert_close(gb, b)


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_aggregation_uses_span_means_of_the_fused_knowledge(graph, variant):
    m = tiny(graph, aggregator=variant, fusion="mean").eval()
    items = torch.arange(6)
    with torch.no_grad():
        out = m(items)
        seq = out.sequences["knowledge"]
        p = torch.stack([seq[i, a:b].mean(0) for i, a, b, _, _ in out.pairs.tolist()])
        v = torch.stack([seq[i, c:d].mean(0) for i, _, _, c, d in out.pairs.tolist()])
        edge_index = torch.stack([torch.arange(len(p)), out.pairs[:, 0]])
        ref = m.aggregator((v, out.initial), edge_index, p)
        c = torch.stack([(out.pooled["title"][i] + out.pooled["knowledge"][i]) / 2
                         for i in range(6)])
    assert isinstance(m.aggregator, K3MGATConv) and m.aggregator.variant == variant
    torch.testing.assert_close(out.initial, c)
    torch.testing.assert_close(out.item, ref)


def test_inputs_live_in_the_one_modality_store(graph):
    m = tiny(graph)
    assert isinstance(m.modalities, ModalityStore) and m.modalities.names == ["text", "knowledge"]
    for name, stream in (("text", "title"), ("knowledge", "knowledge")):
        x, mask, lengths = m.modality(name)
        assert x is graph.features[stream] and mask is graph.masks[stream]
        assert lengths is graph.lengths[stream]
    assert not [k for k in m.state_dict() if k.startswith("modalities.")]  # weights only
    assert {k for k, _ in m.named_buffers() if k.startswith("modalities.x_")} == \
        {"modalities.x_text", "modalities.x_knowledge"}
    x, mask, lengths = m.modality("text")
    with pytest.raises(ValueError, match="unknown K3M modality 'title'"):
        m.set_modality("title", x, mask, lengths)
    with pytest.raises(ValueError, match="needs their lengths"):
        m.set_modality("knowledge", x, mask)
    with pytest.raises(ValueError, match="expected 500 rows"):
        m.set_modality("text", x[:3], mask[:3], lengths[:3])


def test_missing_inputs_are_minimal_and_swappable(graph):
    m = tiny(graph, fusion="mean", aggregator="code").eval()
    items = torch.arange(3)
    x, mask, lengths = m.modality("text")
    with torch.no_grad():
        clean = m(items).item
        gone = mask.clone()
        gone[0] = False
        m.set_modality("text", x, gone, lengths)
        missing = m(items)
        m.set_modality("text", x, mask, lengths)
    assert missing.lengths["title"][0] == 2  # [CLS] [SEP]
    # the missing title leaves c = the knowledge vector alone
    torch.testing.assert_close(missing.initial[0], missing.pooled["knowledge"][0])
    assert not torch.allclose(clean[0], missing.item[0])
    torch.testing.assert_close(clean[1:], missing.item[1:])
    assert m.modality_names == ["text", "knowledge"]


def test_image_stream_with_precomputed_features(files, tokenizer):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, 12, generator=g)
    present = torch.rand(500, generator=g) < 0.6
    graph = load_k3m_sample(files["train"].parent, tokenizer, image=(x, present))
    m = tiny(graph, streams=("title", "knowledge", "image"), image_channels=12).eval()
    assert [f"{a}_{b}" for a, b in m.pairs] == ["title_image", "knowledge_image",
                                                "title_knowledge"]
    items = torch.arange(10)
    with torch.no_grad():
        out = m(items)
    assert out.item.shape == (10, 32) and torch.isfinite(out.item).all()
    assert torch.equal(out.present["image"], present[:10])
    assert torch.equal(out.lengths["image"], torch.where(present[:10], 4, 1))
    with pytest.raises(ValueError, match="image stream needs image features"):
        K3M(K3MConfig.tiny()).attach(load_k3m_sample(files["train"].parent, tokenizer))


# ------------------------------------------------------------------------ objectives
def test_mlm_masking_rates():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (400, 50), generator=g)
    lengths = torch.full((400,), 40)
    out, labels = mask_tokens(ids, lengths, mask_id=103, vocab_size=21128, generator=g)
    chosen = labels != IGNORE
    assert not chosen[:, 0].any() and not chosen[:, 39:].any()  # CLS, SEP, padding
    rate = chosen.sum() / (400 * 38)
    assert abs(rate - 0.15) < 0.01
    n = chosen.sum()
    masked = (out == 103) & chosen
    kept = (out == ids) & chosen
    assert abs(masked.sum() / n - 0.8) < 0.02
    assert abs(kept.sum() / n - 0.1) < 0.02  # (random draws hit the same id ~1/21128)
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(out[~chosen], ids[~chosen])


def test_pv_masking_masks_every_value_but_the_first(graph):
    m = tiny(graph)
    ids, lengths = m.text_inputs(torch.arange(40))["knowledge"]
    pairs = m.pair_spans(ids, lengths)
    out, labels = mask_values(ids, pairs, mask_id=103)
    expected = torch.zeros_like(ids, dtype=torch.bool)
    for i in range(40):
        rows = pairs[pairs[:, 0] == i].tolist()
        for j, (_, _, _, vs, ve) in enumerate(rows):
            if j > 0 or len(rows) == 1:
                expected[i, vs:ve] = True
    assert torch.equal(labels != IGNORE, expected)
    assert (out[expected] == 103).all() and torch.equal(out[~expected], ids[~expected])


def test_mom_masking_rates():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(500, 36, 4, generator=g) + 0.1
    present = torch.arange(500) % 2 == 0
    out, chosen = mask_regions(x, present, generator=g)
    assert not chosen[~present].any()
    assert abs(chosen[present].float().mean() - 0.15) < 0.01
    zeroed = (out == 0).all(-1)
    assert not (zeroed & ~chosen).any()
    assert abs(zeroed.sum() / chosen.sum() - 0.9) < 0.03
    assert torch.equal(out[~zeroed], x[~zeroed])


def test_pretraining_losses_match_references(graph):
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="masked object modelling skipped"):
        obj = K3MPretraining(tiny(graph, aggregator="code", fusion="mean"), lp="code")
    assert "mom" in obj.skipped and obj.lm_head.embedding.weight is \
        obj.model.text.embeddings.word_embeddings.weight
    obj.eval()
    items = torch.arange(6)
    g = torch.Generator().manual_seed(3)
    losses = obj(items, torch.Generator().manual_seed(3))
    assert set(losses) == {"mlm", "pv", "lp", "loss"}
    torch.testing.assert_close(losses["loss"], losses["mlm"] + losses["pv"] + losses["lp"])
    # reference: redo the masking with the same generator, then explicit losses
    text = obj.model.text_inputs(items)
    t_ids, t_len = text["title"]
    t_masked, t_labels = mask_tokens(t_ids, t_len, 103, 21128, 0.15, g)
    k_ids, k_len = text["knowledge"]
    k_masked, k_labels = mask_values(k_ids, obj.model.pair_spans(k_ids, k_len), 103)
    with torch.no_grad():
        out = obj.model(items, text={"title": (t_masked, t_len), "knowledge": (k_masked, k_len)})
        E = obj.model.text.embeddings.word_embeddings.weight
        h = out.sequences["title"][t_labels != IGNORE]
        logits = obj.lm_head.norm(F.gelu(obj.lm_head.transform(h))) @ E.T + obj.lm_head.bias
        mlm = F.cross_entropy(logits, t_labels[t_labels != IGNORE])
        c = out.item
        agg = c - out.initial  # code form: c* = c + W3(agg)
        neg = out.initial.roll(-1, 0) + agg
        lp = F.cross_entropy(obj.lp_head(torch.cat([c, neg])),
                             torch.tensor([1] * 6 + [0] * 6))
    torch.testing.assert_close(losses["mlm"].detach(), mlm)
    torch.testing.assert_close(losses["lp"].detach(), lp)


def test_margin_link_loss_and_mom_with_images(files, tokenizer):
    g = torch.Generator().manual_seed(0)
    graph = load_k3m_sample(files["train"].parent, tokenizer,
                            image=(torch.rand(500, 5, 6, generator=g), torch.ones(500).bool()))
    m = tiny(graph, streams=("title", "knowledge", "image"), image_channels=6, fusion="mean")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is skipped
        obj = K3MPretraining(m, lp="margin", margin=2.0).eval()
    losses = obj(torch.arange(5), torch.Generator().manual_seed(1))
    assert set(losses) == {"mlm", "pv", "mom", "lp", "loss"}
    out = m(torch.arange(5))  # the margin form, by hand, on a fresh pass
    i = out.pairs[:, 0]
    pos = (out.item[i] + out.prop - out.value).norm(dim=-1)
    neg = (out.item[(i + 1) % 5] + out.prop - out.value).norm(dim=-1)
    torch.testing.assert_close(obj.link_loss(out), (2.0 + pos - neg).clamp(min=0).mean())
    losses["loss"].backward()
    assert obj.region_head.lin_out.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_code_form_link_loss_cannot_fall_below_ln2(graph, variant):
    # c*_i = s(c_i) + A_i and the negative s(c_{i+1}) + A_i: over a batch, a linear head
    # gives positives and negatives the same mean logit, so by Jensen the loss is >= ln 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = K3MPretraining(tiny(graph, aggregator=variant, fusion="mean"), lp="code").eval()
    with torch.no_grad():
        out = obj.model(torch.arange(7))
        g = torch.Generator().manual_seed(0)
        for _ in range(5):
            obj.lp_head.weight.copy_(10 * torch.randn(obj.lp_head.weight.shape, generator=g))
            c = out.item
            neg = c - obj.model.self_term(out.initial) + obj.model.self_term(
                out.initial.roll(-1, 0))
            z = obj.lp_head(torch.cat([c, neg])).diff(dim=-1).view(-1)
            torch.testing.assert_close(z[:7].mean(), z[7:].mean(), atol=1e-3, rtol=1e-4)
            assert float(obj.link_loss(out)) >= math.log(2) - 1e-5


# -------------------------------------------------------------------------- heads
def test_classifier_learns_a_real_subset_above_majority(graph):
    y = graph["entity"].y
    train, test = category_split(y, min_count=4, test_fraction=0.3, seed=0)
    majority = float((y[test] == y[train].bincount().argmax()).float().mean())
    clf = ItemClassifier(tiny(graph, fusion="mean"), len(graph.category_names))
    trainer = finetune_classification(
        clf, y, train, test, TrainConfig(**{**K3M_FINETUNE, "epochs": 8, "lr": 1e-2}),
        progress=False)
    acc = trainer.history[-1]["test_accuracy"]
    assert acc == classification_accuracy(clf, test, y)
    print(f"accuracy {acc:.3f}, majority {majority:.3f}")
    assert acc > majority + 0.15, (acc, majority)


def test_pair_classifier_is_symmetric_in_its_features(graph):
    m = tiny(graph, fusion="mean")
    head = PairClassifier(m).eval()
    a, b = torch.randn(3, 32), torch.randn(3, 32)
    fa, fb = head.features(a, b), head.features(b, a)
    torch.testing.assert_close(fa[:, 64:], fb[:, 64:])
    logits = head(torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert logits.shape == (2, 2)
    logits.sum().backward()
    assert m.text.embeddings.word_embeddings.weight.grad is not None


def test_pretraining_checkpoint_resumes_exactly(graph, tmp_path):
    cfg = TrainConfig(**{**K3M_PRETRAIN, "epochs": 2, "batch_size": 8, "lr": 1e-3})

    def trainer(out):
        torch.manual_seed(0)
        obj = K3MPretraining(tiny(graph, fusion="hard"), lp="code")  # Gumbel draws too
        return Trainer(obj, PretrainTask(torch.arange(24)), cfg, out_dir=out, progress=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = trainer(tmp_path / "full")
        full.fit()
        first = trainer(tmp_path / "part")
        first.config = dataclasses.replace(cfg, epochs=1)  # interrupted after one epoch
        first.fit()
        second = trainer(tmp_path / "part")
        second.fit(resume=True)
    assert second.epoch == 2 and second.steps == full.steps == 6
    for (k, a), b in zip(full.model.state_dict().items(),
                            second.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    assert [h["loss"] for h in second.history] == [h["loss"] for h in full.history]
    assert (tmp_path / "part" / "metrics.json").is_file()
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_epoch_loss_is_the_mean_over_the_items_a_budget_cut_epoch_reached():
    import time

    p = torch.nn.Parameter(torch.zeros(1))

    class Slow(Task):
        def num_batches(self, trainer):
            return 5

        def batches(self, trainer):
            yield from torch.arange(10).split(2)

        def loss(self, trainer, batch):
            time.sleep(0.05)
            return {"loss": p.sum() * 0 + 2.0, "part": p.sum() * 0 + 0.5}, len(batch)

    # 5 steps of >= 0.05 s per epoch against a 0.1 s budget: the epoch stops after 2 or 3
    cfg = TrainConfig(epochs=3, batch_size=2, max_minutes=0.1 / 60)
    t = Trainer(torch.nn.Linear(1, 1), Slow(), cfg, progress=False)
    history = t.fit()
    assert len(history) == 1 and 1 <= t.steps < 5
    assert history[0]["loss"] == pytest.approx(2.0) and history[0]["part"] == \
        pytest.approx(0.5)


def test_encoder_roundtrip_and_config_check(graph, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = K3MPretraining(tiny(graph, fusion="mean"))
        pretrain(obj, torch.arange(16), TrainConfig(**{**K3M_PRETRAIN, "epochs": 1}),
                 out_dir=tmp_path, progress=False)
    fresh = tiny(graph, fusion="mean")
    load_encoder(tmp_path / "encoder.pt", fresh)
    for (k, a), b in zip(obj.model.state_dict().items(), fresh.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), k
    save_encoder(tmp_path / "again.pt", fresh)
    with pytest.raises(ValueError, match="differs"):
        load_encoder(tmp_path / "again.pt", tiny(graph, fusion="soft"))


def test_image_feature_file_is_matched_by_item_id(graph, files, tmp_path):
    from mmgnn.models.k3m import build_k3m, load_product_graph

    ids = [graph.entity_names[7], graph.entity_names[3], "not-an-item"]
    x = torch.arange(3 * 2 * 4, dtype=torch.float).view(3, 2, 4)
    torch.save({"x": x, "entity_names": ids}, tmp_path / "img.pt")
    g = load_product_graph(str(files["train"].parent), image_features=tmp_path / "img.pt")
    assert g.modalities == ["title", "knowledge", "image"]
    image = g.features["image"]
    assert g.masks["image"].nonzero().view(-1).tolist() == [3, 7]
    assert torch.equal(image[7], x[0]) and torch.equal(image[3], x[1])
    assert image[0].abs().sum() == 0
    assert g["entity"].image_boxes.shape == (500, 2, 5)
    m = build_k3m(g, "tiny", fusion="mean")
    assert m.streams == ("title", "knowledge", "image") and m.config.image_channels == 4
    assert build_k3m(graph, "tiny").streams == ("title", "knowledge")
    with pytest.raises(ValueError, match="K3M model argument"):
        build_k3m(graph, "tiny", depth=2)


# ------------------------------------------------------------- evaluation defaults (#17)
@pytest.mark.parametrize("fusion", ["hard", "mean", "soft"])
def test_eval_is_deterministic(graph, fusion):
    """Same input twice in eval mode, same output, whatever the random stream in between;
    hard IIFM picks the largest gate there. ``eval_noise=True`` (the released Gumbel draws
    at evaluation) is the negative control: its outputs change from call to call."""
    items = torch.arange(6)
    m = tiny(graph, fusion=fusion).eval()
    clf = ItemClassifier(m, 5).eval()
    with torch.no_grad():
        first, logits = m(items).item, clf(items)
        torch.manual_seed(123)
        torch.rand(1000)
        torch.testing.assert_close(m(items).item, first, rtol=0, atol=0)
        torch.testing.assert_close(clf(items), logits, rtol=0, atol=0)
    if fusion == "hard":
        noisy = tiny(graph, fusion="hard", eval_noise=True).eval()
        with torch.no_grad():
            assert not torch.equal(noisy(items).item, noisy(items).item)
            # the deterministic pick is the argmax of the gates: the same weights give it
            noisy.load_state_dict(m.state_dict())
            for f in noisy.fusion.values():
                f.deterministic_eval = True
            torch.testing.assert_close(noisy(items).item, first, rtol=0, atol=0)


def test_link_prediction_defaults_to_the_margin_form(graph):
    """The paper's margin loss is the default LP form; written out here on a fresh pass:
    mean over the triples (c, p, v) of [1 + |c_i + p - v| - |c_(i+1) + p - v|]_+ ."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = K3MPretraining(tiny(graph, fusion="mean")).eval()
    assert obj.lp == "margin" and obj.lp_head is None
    with torch.no_grad():
        out = obj.model(torch.arange(4))
    expected = []
    for row, p, v in zip(out.pairs.tolist(), out.prop, out.value, strict=True):
        i = row[0]
        pos = torch.linalg.vector_norm(out.item[i] + p - v)
        neg = torch.linalg.vector_norm(out.item[(i + 1) % 4] + p - v)
        expected.append(max(0.0, float(1.0 + pos - neg)))
    torch.testing.assert_close(obj.link_loss(out).item(), sum(expected) / len(expected))


def test_released_form_flags_are_checked(graph):
    for key in ("pair_reading", "pooling"):
        with pytest.raises(ValueError, match=key):
            tiny(graph, **{key: "paper"})
    m = tiny(graph)
    ids, lengths = m.text_inputs(torch.arange(3))["knowledge"]
    with pytest.raises(ValueError, match="form must be"):
        m.pair_spans(ids, lengths, form="ends")
    # the released reading keeps only the pairs closed by ';' (K3M-sample's last pair is not)
    span, code = m.pair_spans(ids, lengths), m.pair_spans(ids, lengths, form="code")
    for i in range(3):
        n = int((span[:, 0] == i).sum())
        assert int((code[:, 0] == i).sum()) == min(max(n - 1, 0), 10)
