import os
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, ViTConfig, ViTModel

from mmgnn.data.kg import MultiModalKG
from mmgnn.eval import evaluate
from mmgnn.modalities.pretrained import default_text_encoder, load_tokenizer
from mmgnn.modalities.text import entity_texts
from mmgnn.models import MKGformer, available_models, build_model
from mmgnn.models.mkgformer import load_entity_images, relation_text
from mmgnn.nn.fusion import HybridEncoder
from mmgnn.train import TrainConfig, fit

DATA = Path(os.environ.get("MMGNN_DATA") or Path(__file__).resolve().parents[3] / "shared"
            / "datasets")
IMAGES = DATA / "sample_images" / "wn18"
TINY = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32)


@pytest.fixture(scope="module")
def kg(data_root) -> MultiModalKG:
    """The WN18-IMG entities within two hops of the 10 entities with sample images (237
    entities; 519 / 16 / 21 triples), with their WordNet texts."""
    from mmgnn.data import load_dataset

    full = load_dataset("WN18-IMG", root=data_root, add_side_info=True)
    index = {n: i for i, n in enumerate(full.entity_names)}
    seeds = torch.tensor([index[p.name[1:]] for p in IMAGES.iterdir()])
    every = torch.cat([full.train, full.valid, full.test])
    ents = seeds
    for _ in range(2):
        near = torch.isin(every[:, 0], ents) | torch.isin(every[:, 2], ents)
        ents = torch.unique(torch.cat([every[near, 0], every[near, 2]]))
    new = torch.full((full.num_entities,), -1, dtype=torch.long)
    new[ents] = torch.arange(len(ents))

    def keep(t):
        t = t[(new[t[:, 0]] >= 0) & (new[t[:, 2]] >= 0)]
        return torch.stack([new[t[:, 0]], t[:, 1], new[t[:, 2]]], 1)

    return MultiModalKG([full.entity_names[i] for i in ents.tolist()], full.relation_names,
                        keep(full.train), keep(full.valid), keep(full.test), name="WN18-IMG-sub",
                        texts={k: [v[i] for i in ents.tolist()] for k, v in full.texts.items()})


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(default_text_encoder())


def tiny_model(kg, tokenizer, images=True, fusion_layers=2, seed=0, **kwargs) -> MKGformer:
    torch.manual_seed(seed)
    text = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=64,
                                **TINY), add_pooling_layer=False)
    tower = ViTModel(ViTConfig(image_size=16, patch_size=4, **TINY), add_pooling_layer=False)
    encoder = HybridEncoder(text, tower, fusion_layers=fusion_layers)
    pics = load_entity_images(IMAGES, kg.entity_names, encoder.image_sizes, progress=False) \
        if images else None
    kwargs.setdefault("max_length", 20)
    return MKGformer(kg, images=pics, encoder=encoder, tokenizer=tokenizer,
                     fields=("name", "description"), **kwargs)


def test_relation_text():
    assert relation_text("/film/film/genre") == "film film genre"
    assert relation_text("_member_meronym") == "member meronym"


def test_query_layout_and_vocabulary(kg, tokenizer):
    model = tiny_model(kg, tokenizer)
    v = tokenizer.vocab_size
    assert model.word_embeddings.num_embeddings == v + kg.num_entities + kg.num_relations
    assert model.encode().shape == (kg.num_entities, 16)
    ids, pos = model._query_ids(5, 2, "tail")
    assert ids[:3] == [tokenizer.cls_token_id, v + 5, tokenizer.sep_token_id]
    assert ids[pos] == tokenizer.mask_token_id and ids[pos - 2] == v + kg.num_entities + 2
    assert tokenizer.decode(ids[pos + 1:-1]).startswith(kg.texts["name"][5].split()[0].lower())
    ids, pos = model._query_ids(5, 2, "head")
    assert pos == 1 and ids[1] == tokenizer.mask_token_id and v + 5 in ids
    assert len(model._query_ids(7, 0, "tail")[0]) <= model.max_length
    assert int((model.image_rows >= 0).sum()) == 10  # the sample images, 3 per entity
    assert int(model.image_present.sum()) == 30


def test_queries_never_see_the_answer(kg, tokenizer):
    """Changing the answer entity's text and images leaves a query's scores unchanged;
    changing the known entity's does change them."""
    model = tiny_model(kg, tokenizer).eval()
    with torch.no_grad():
        for w in model.encoder.text_layers[-2:]:  # make the fusion terms large
            torch.nn.init.normal_(w.caf.fusion_dense.weight, std=1.0)
    has_image = model.image_rows >= 0
    h, r, t = next(tr for tr in kg.train.tolist() if has_image[tr[2]])
    h, r, t = torch.tensor([h]), torch.tensor([r]), torch.tensor([t])
    x = model.encode()
    with torch.no_grad():
        tail, head = model.score_tails(x, h, r), model.score_heads(x, r, t)
    texts = list(entity_texts(kg, ("name", "description")))
    for victim, same, changed in ((t, "tail", "head"), (h, "head", "tail")):
        new_texts = list(texts)
        new_texts[victim] = "completely different words about volcanoes"
        model.set_entity_texts(new_texts)
        pics = load_entity_images(IMAGES, kg.entity_names, model.encoder.image_sizes,
                                  progress=False)
        if pics.rows[victim] >= 0:
            pics.pixels[0][pics.rows[victim]] = torch.randn_like(pics.pixels[0][0]) * 3
        model.set_entity_images(pics)
        with torch.no_grad():
            now = {"tail": model.score_tails(x, h, r), "head": model.score_heads(x, r, t)}
        before = {"tail": tail, "head": head}
        torch.testing.assert_close(now[same], before[same])
        assert not torch.allclose(now[changed], before[changed], atol=1e-4)
        model.set_entity_texts(texts)
        model.set_entity_images(load_entity_images(IMAGES, kg.entity_names,
                                                   model.encoder.image_sizes, progress=False))
    # Images matter where the known entity has them: the head query (?, r, t) reads t's.
    model.set_entity_images(None)
    with torch.no_grad():
        torch.testing.assert_close(model.score_tails(x, h, r), tail)
        assert not torch.allclose(model.score_heads(x, r, t), head, atol=1e-4)


def test_stage_one_trains_only_word_embeddings(kg, tokenizer):
    model = tiny_model(kg, tokenizer, pretrain_epochs=2, pretrain_lr=1e-2,
                       pretrain_batch_size=128, pretrain_schedule=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = model.pretrain_entities(progress=False)
    assert bool(model.entity_tokens_trained) and losses[1] < losses[0]
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"encoder.embeddings.word_embeddings.weight"}
    assert all(p.requires_grad for p in model.parameters())


def test_stage_one_stops_on_budget_and_on_convergence(kg, tokenizer):
    """Stage 1 honours its budget (wall or CPU clock: it stops after the batch that spends
    it) and stops once its epoch loss improves on its best by less than the tolerance for
    ``pretrain_patience`` epochs; without a tolerance it runs every epoch, as released."""
    for clock in ("wall", "cpu"):
        model = tiny_model(kg, tokenizer, images=False, pretrain_epochs=5,
                           pretrain_batch_size=64, pretrain_max_minutes=1e-7,
                           pretrain_budget_clock=clock)
        assert len(model.pretrain_entities(progress=False)) == 1, clock
        assert bool(model.entity_tokens_trained)
    never_enough = tiny_model(kg, tokenizer, images=False, pretrain_epochs=5,
                              pretrain_batch_size=256, pretrain_lr=1e-3,
                              pretrain_tolerance=0.9, pretrain_patience=1)
    # epoch 1 sets the best; epoch 2 improves on it by less than 90%: converged
    assert len(never_enough.pretrain_entities(progress=False)) == 2
    assert [h["epoch"] for h in never_enough.pretrain_history] == [1, 2]
    released = tiny_model(kg, tokenizer, images=False, pretrain_epochs=3,
                          pretrain_batch_size=256, pretrain_tolerance=None)
    assert len(released.pretrain_entities(progress=False)) == 3
    with pytest.raises(ValueError, match="pretrain_budget_clock"):
        tiny_model(kg, tokenizer, images=False, pretrain_budget_clock="gpu")


def test_stage_one_label_smoothing_forms(kg, tokenizer):
    """``released``: LabelSmoothSoftmaxCEV1's targets (gold 1 - eps, every other eps / N);
    ``standard``: gold 1 - eps + eps / N; both written out here over the same logits."""
    model = tiny_model(kg, tokenizer, images=False,
                       pretrain_label_smoothing_form="released").eval()
    logits = []
    score_t = model.decoder.score_t
    model.decoder.score_t = lambda *args: logits.append(score_t(*args)) or logits[-1]
    entities = torch.tensor([3, 17, 40])
    with torch.no_grad():
        released = model.pretrain_loss(entities)
        model.pretrain_label_smoothing_form = "standard"
        standard = model.pretrain_loss(entities)
    logp = torch.log_softmax(logits[0], dim=-1)
    n, eps = kg.num_entities, 0.1
    gold = logp[torch.arange(3), entities]
    others = logp.sum(dim=1) - gold
    torch.testing.assert_close(released, -((1 - eps) * gold + eps / n * others).mean())
    torch.testing.assert_close(standard, -((1 - eps + eps / n) * gold
                                           + eps / n * others).mean())


def test_learns_a_real_subset_above_chance(kg, tokenizer):
    model = tiny_model(kg, tokenizer, images=False, pretrain_epochs=1, pretrain_lr=1e-2,
                       pretrain_batch_size=128, pretrain_schedule=False)
    config = TrainConfig(regime="kvsall", loss="bce", lr=1e-2, batch_size=128, epochs=8,
                         eval_every=0, seed=0)
    trainer = fit(model, kg, config, progress=False)
    assert bool(model.entity_tokens_trained)
    assert trainer.history[-1]["loss"] < trainer.history[0]["loss"]
    held_out = torch.cat([kg.valid, kg.test])  # 37 triples never trained on
    result = evaluate(model, kg, triples=held_out, progress=False)
    chance = sum(1.0 / k for k in range(1, kg.num_entities + 1)) / kg.num_entities
    assert result.mrr > 3 * chance, (result.mrr, chance)


def test_reciprocal_queries_and_score_hrt(kg, tokenizer):
    model = tiny_model(kg, tokenizer, reciprocal=True).eval()
    assert model.word_embeddings.num_embeddings == \
        tokenizer.vocab_size + kg.num_entities + 2 * kg.num_relations
    h, r, t = kg.valid[:4].t()
    x = model.encode()
    with torch.no_grad():
        torch.testing.assert_close(model.score_heads(x, r, t),
                                   model.score_tails(x, t, r + kg.num_relations))
        full = model.score_tails(x, h, r)
        torch.testing.assert_close(model.score_triples(x, h, r, t), full[torch.arange(4), t])


def test_build_model_with_saved_text_model_and_random_vision(kg, tokenizer, tmp_path):
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **TINY)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert "mkgformer" in available_models()
    model = build_model("mkgformer", kg, text=str(tmp_path), vision="random",
                        images=str(IMAGES), image_size=32, patch_size=8, fusion_layers=1,
                        max_images=3, pretrain_epochs=0, progress=False)
    assert model.encoder.fusion_layers == 1 and model.encoder.image_sizes == (32, 16, 16)
    assert int((model.image_rows >= 0).sum()) == 10
    assert repr(model).startswith("MKGformer(237, num_relations=18, encoder=HybridEncoder(")
    assert MKGformer.regimes[0] == "kvsall" and "negative" not in MKGformer.regimes
    assert TrainConfig(**MKGformer.train_defaults).scheduler == "linear"
    with pytest.raises(ValueError, match="vision tower"):
        build_model("mkgformer", kg, text=str(tmp_path), images=str(IMAGES))
