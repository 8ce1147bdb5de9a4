"""IMF: views, fills, pooling, the per-branch TuckER scores, decision fusion, the multi-part
loss, both the paper and the released-code variants, and learning on Nations with literals."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmgnn.data import load_dataset
from mmgnn.eval import evaluate
from mmgnn.modalities import ModalityStore, attach_modalities
from mmgnn.models import IMF, available_models, build_model
from mmgnn.models.imf import pool_to_width
from mmgnn.nn.losses import BCEWithLabelSmoothing, CrossModalInfoNCE
from mmgnn.sampling import QueryBatch
from mmgnn.train import TrainConfig, fit

N, R, D = 7, 3, 16
TEXT_MASK = torch.tensor([1, 1, 0, 1, 1, 0, 1], dtype=torch.bool)


def _model(**kwargs) -> tuple[IMF, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    feats = {"text": torch.randn(N, 24), "numeric": torch.rand(N, 3)}
    model = IMF(N, R, ModalityStore(feats, {"text": TEXT_MASK}), dim=D, relation_channels=D,
                **kwargs)
    with torch.no_grad():  # non-trivial batch-norm statistics for the eval-mode references
        for dec in [model.decoder, *model.view_decoders.values()]:
            dec.bn0.running_mean.normal_()
            dec.bn1.running_var.uniform_(0.5, 2.0)
    return model.eval(), feats


def _query(e, r, side, y):
    """The KvsAll batch of queries ``e``, ``r`` with multi-hot targets ``y``."""
    rows, cols = y.nonzero(as_tuple=True)
    return QueryBatch(side, e, r, target_rows=rows, target_cols=cols)


def _loss(model, x, e, r, side, y, loss_fn):
    return model.loss(x, _query(e, r, side, y), loss_fn)


def _tucker_logits(dec, e, r, rel_table, cand):
    """Eval-mode TuckER (spec IMF.md, section 3) with einsum: BN1(BN0(e) W_r) . cand."""
    w = torch.einsum("bj,jik->bik", rel_table[r], dec.core)
    q = dec.bn1(torch.einsum("bi,bik->bk", dec.bn0(e), w))
    return q @ cand.t()


def test_pool_to_width_reproduces_the_released_reductions():
    torch.manual_seed(0)
    img = torch.randn(2, 4096)
    out = pool_to_width(img, 256)
    grid = img.view(2, 64, 64)
    for i, j in [(0, 0), (3, 7), (15, 15)]:  # AvgPool2d(4, 4) on the 64x64 view
        torch.testing.assert_close(out[:, 16 * i + j],
                                   grid[:, 4 * i:4 * i + 4, 4 * j:4 * j + 4].mean((1, 2)))
    txt = torch.randn(2, 768)
    out = pool_to_width(txt, 256)
    rows = txt.view(2, 12, 64)
    for i in range(4):  # AdaptiveAvgPool2d((4, 64)) on 12x64: groups of 3 rows
        torch.testing.assert_close(out[:, 64 * i:64 * i + 64], rows[:, 3 * i:3 * i + 3].mean(1))
    x = torch.arange(10.0).view(1, 10)
    torch.testing.assert_close(pool_to_width(x, 5), torch.tensor([[0.5, 2.5, 4.5, 6.5, 8.5]]))
    assert pool_to_width(x, 10) is x


def test_views_with_the_documented_mean_fill():
    model, feats = _model()
    x = model.encode()
    assert x.shape == (N, 4 * D) and model.branch_names == ["structure", "text", "numeric",
                                                            "fused"]
    structure, text, numeric, fused = x.split(D, dim=-1)
    torch.testing.assert_close(structure, model.entity.weight)
    normed = feats["text"] / feats["text"].norm(dim=-1, keepdim=True)
    mean_present = normed[TEXT_MASK].mean(0)
    for i in range(N):  # absent text: the mean of the present (normalised) rows
        row = normed[i] if TEXT_MASK[i] else mean_present
        torch.testing.assert_close(text[i], model.projections["text"](row))
    ref = model.entity_fusion([structure, text, numeric])
    torch.testing.assert_close(fused, ref)


def test_released_pool_encoder_initialises_trainable_tables():
    model, feats = _model(encoder="pool", decision="mean", contrastive_weight=0.0)
    assert not model.projections and model.decision_logits is None
    normed = F.normalize(feats["text"], dim=-1)
    filled = torch.where(TEXT_MASK[:, None], normed, normed[TEXT_MASK].mean(0))
    # 24 -> 16: 1-d adaptive average pooling, window j = [floor(24j/16), ceil(24(j+1)/16)).
    ref = torch.stack([filled[:, (24 * j) // D:-(-24 * (j + 1) // D)].mean(1)
                       for j in range(D)], dim=1)
    torch.testing.assert_close(model.tables["text"].weight, ref)
    assert model.tables["text"].weight.requires_grad
    with pytest.raises(ValueError, match="learned"):
        IMF(N, R, ModalityStore(feats), encoder="pool", missing="learned")


def test_branch_scores_match_tucker_references():
    model, _ = _model()
    x = model.encode()
    e, r = torch.tensor([0, 2, 6]), torch.tensor([1, 4, 5])
    with torch.no_grad():
        model.logit_bias.copy_(torch.tensor([-1.0, 0.5, 2.0, -3.0]))
    scores = model.branch_scores(x, e, r)
    tables = x.split(D, dim=-1)
    beta = model.logit_bias
    for b, (name, t, s) in enumerate(zip(model.view_names, tables, scores, strict=False)):
        dec = model.view_decoders[name]
        torch.testing.assert_close(s, _tucker_logits(dec, t[e], r, dec.rel_emb.weight, t)
                                   + beta[b])
    rel = model.relation_fusion([model.view_decoders[v].rel_emb.weight for v in model.view_names])
    torch.testing.assert_close(scores[-1], beta[-1] + _tucker_logits(model.decoder, tables[-1][e],
                                                                     r, rel, tables[-1]))


@pytest.mark.parametrize("decision", ["learned", "mean"])
def test_decision_fusion_is_the_logit_of_the_weighted_mean_probability(decision):
    model, _ = _model(decision=decision)
    if decision == "learned":
        with torch.no_grad():
            model.decision_logits.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
    pi = torch.softmax(model.decision_logits, 0) if decision == "learned" \
        else torch.full((4,), 0.25)
    x = model.encode()
    h, r, t = torch.tensor([0, 3]), torch.tensor([2, 0]), torch.tensor([1, 1])
    scores = model.branch_scores(x, h, r)
    p = sum(pi[b].double() * torch.sigmoid(s.double()) for b, s in enumerate(scores))
    torch.testing.assert_close(model.score_tails(x, h, r).double(), torch.log(p / (1 - p)),
                               rtol=1e-5, atol=1e-5)
    # Heads through inverse relations; single triples agree with the 1-to-all rows.
    torch.testing.assert_close(model.score_heads(x, r, t),
                               model.combine(model.branch_scores(x, t, r + R)))
    full = model.score_tails(x, h, r)
    torch.testing.assert_close(model.score_triples(x, h, r, t), full[torch.arange(2), t])
    # Large logits neither overflow nor tie: the log-domain form keeps their order.
    big = [torch.tensor([[40.0, 60.0]]), torch.tensor([[41.0, 61.0]])]
    model2, _ = _model(structure=False, decision="mean")
    fused = model2.combine([big[0], big[1], big[1]])
    assert torch.isfinite(fused).all() and fused[0, 1] > fused[0, 0]


def test_without_decision_fusion_the_fused_branch_ranks():
    model, _ = _model(decision="fused")
    assert model.decision_logits is None
    x = model.encode()
    h, r = torch.tensor([0, 3]), torch.tensor([2, 0])
    scores = model.branch_scores(x, h, r)
    torch.testing.assert_close(model.score_tails(x, h, r), scores[-1])
    assert not torch.allclose(model.score_tails(x, h, r), _model(decision="mean")[0].score_tails(
        x, h, r))


def test_multi_part_loss_and_gradients():
    model, _ = _model(contrastive_weight=0.5)
    loss_fn = BCEWithLabelSmoothing(0.1)
    e, r = torch.tensor([0, 2, 3, 3]), torch.tensor([0, 1, 2, 5])
    y = torch.zeros(4, N)
    y[0, 1] = y[1, 4] = y[2, 0] = y[3, 6] = 1.0
    x = model.encode()  # eval mode: no dropout, the parts are deterministic
    scores = model.branch_scores(x, e, r)
    pi = torch.softmax(model.decision_logits, 0)
    p = sum(pi[b] * torch.sigmoid(s) for b, s in enumerate(scores)).clamp(1e-6, 1 - 1e-6)
    ents = torch.tensor([0, 2, 3])
    views = [v[ents] for v in x.split(D, dim=-1)[:3]]
    con = CrossModalInfoNCE(0.1)(views, [None, TEXT_MASK[ents], None])
    expected = (sum(loss_fn(s, y) for s in scores) + loss_fn(torch.log(p / (1 - p)), y)
                + 0.5 * con)
    got = _loss(model, x, e, r, "tail", y, loss_fn)
    torch.testing.assert_close(got, expected)
    # Head batches use the inverse relations.
    torch.testing.assert_close(_loss(model, x, e, r % R, "head", y, loss_fn),
                               _loss(model, x, e, r % R + R, "tail", y, loss_fn))
    model.train()
    loss = _loss(model, model.encode(), e, r, "tail", y, loss_fn)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_structure_only_is_tucker():
    torch.manual_seed(0)
    model = IMF(N, R, dim=D).eval()
    assert model.branch_names == ["structure"] and model.entity_fusion is None
    assert model.decision_logits is None and not model.view_decoders
    x = model.encode()
    e, r = torch.tensor([1, 4]), torch.tensor([0, 3])
    # One branch: TuckER plus the logit bias, which starts at -log N.
    torch.testing.assert_close(model.logit_bias, torch.tensor([-math.log(N)]))
    torch.testing.assert_close(model.score_tails(x, e, r),
                               _tucker_logits(model.decoder, x[e], r,
                                              model.decoder.rel_emb.weight, x)
                               - math.log(N))
    loss_fn = BCEWithLabelSmoothing(0.1)
    y = torch.zeros(2, N)
    torch.testing.assert_close(_loss(model, x, e, r, "tail", y, loss_fn),
                               loss_fn(model.score_tails(x, e, r), y))
    with pytest.raises(ValueError, match="at least one view"):
        IMF(N, R, structure=False)


def test_logit_bias_starts_at_the_prior_and_keeps_branch_rankings():
    model, _ = _model()
    x = model.encode()
    e, r = torch.tensor([0, 2, 6]), torch.tensor([1, 4, 5])
    biased = model.branch_scores(x, e, r)
    with torch.no_grad():
        model.logit_bias.zero_()
    plain = model.branch_scores(x, e, r)
    for b, p in zip(biased, plain, strict=True):  # a shift by -log N: same ranking per branch
        torch.testing.assert_close(b, p - math.log(N))
    released, _ = _model(logit_bias=False)
    assert released.logit_bias is None and "logit_bias=False" in repr(released)
    assert all("logit_bias" not in k for k in released.state_dict())


@pytest.mark.parametrize("logit_bias", [True, False])
def test_projected_features_alone_learn_with_the_logit_bias(logit_bias):
    """Regression: a view that is a projection of features shared by all entities (text-only
    IMF) stayed at chance under 1-to-all BCE (DB15K text-only: MRR 0.001) because the first
    steps, with every sigmoid at 1/2, inflate the component common to all entities to push
    the N candidates down. With the -log N logit bias it learns; without it, it does not."""
    torch.manual_seed(0)
    n, r_count = 200, 3
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(32, generator=g) + 0.5 * torch.randn(n, 32, generator=g)
    popular = torch.randint(n, (r_count, 4), generator=g)  # 4 answers per relation
    h = torch.arange(n).repeat(r_count)
    r = torch.arange(r_count).repeat_interleave(n)
    t = popular[r, h % 4]  # which of them depends on the head
    y = F.one_hot(t, n).float()
    model = IMF(n, r_count, ModalityStore({"text": feats}), structure=False, dim=16,
                logit_bias=logit_bias)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = BCEWithLabelSmoothing(0.1)
    for _ in range(60):
        idx = torch.randint(len(h), (64,), generator=g)
        loss = _loss(model, model.encode(), h[idx], r[idx], "tail", y[idx], loss_fn)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        scores = model.score_tails(model.encode(), h, r)
    gold = scores[torch.arange(len(t)), t]
    mrr = (1.0 / ((scores > gold[:, None]).sum(1) + 1).float()).mean().item()
    # Chance: about ln(200) / 200 = 0.026; with the bias ~0.29 after these 60 steps.
    if logit_bias:
        assert mrr > 0.15, mrr
    else:
        assert mrr < 0.06, mrr


def test_init_structure_and_set_modality():
    model, feats = _model()
    ent, rel = torch.randn(N, D), torch.randn(R, D)
    model.init_structure(ent, rel)
    torch.testing.assert_close(model.entity.weight, ent)
    torch.testing.assert_close(model.view_decoders["structure"].rel_emb.weight,
                               torch.cat([rel, -rel]))  # the released code's [R; -R]
    before = model.encode().detach()
    model.set_modality("text", feats["text"], torch.zeros(N, dtype=torch.bool))
    after = model.encode()
    assert not torch.allclose(before, after)
    # Every text row absent and the mean of none is zero: text view = projection bias.
    torch.testing.assert_close(after[:, D:2 * D], model.projections["text"].bias.expand(N, D))
    with pytest.raises(KeyError):
        model.set_modality("image", feats["text"])


def test_build_model_and_capabilities(data_root):
    kg = load_dataset("Nations", root=data_root, add_side_info=True)
    attach_modalities(kg, ["numeric"], progress=False)
    assert "imf" in available_models()
    model = build_model("imf", kg, modality_names=["numeric"], dim=8, decision="mean")
    assert isinstance(model, IMF) and model.view_names == ["structure", "numeric"]
    assert repr(model).startswith("IMF(14, num_relations=55, dim=8, "
                                  "views=[structure, numeric], features=[numeric=2]")
    assert model.reciprocal and model.decoder_relations == 110
    assert IMF.needs_reciprocal and IMF.regimes[0] == "kvsall"
    assert TrainConfig(**IMF.train_defaults).regime == "kvsall"
    with pytest.raises(ValueError, match="reciprocal"):
        build_model("imf", kg, dim=8, reciprocal=False)
    assert build_model("imf", kg, modality_names=[], dim=8).view_names == ["structure"]


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_learns_nations_with_literals(data_root, variant):
    kg = load_dataset("Nations", root=data_root, add_side_info=True)
    attach_modalities(kg, ["numeric"], progress=False)
    args = {} if variant == "paper" else {"encoder": "pool", "decision": "mean",
                                          "contrastive_weight": 0.0, "logit_bias": False}
    cfg = TrainConfig(regime="kvsall", label_smoothing=0.1,
                      label_smoothing_form="standard" if variant == "paper" else "released",
                      epochs=25, batch_size=64, lr=0.01, eval_every=25, patience=0)
    torch.manual_seed(0)
    model = build_model("imf", kg, modality_names=["numeric"], dim=32, **args)
    untrained = evaluate(model, kg, "test", progress=False).mrr
    fit(model, kg, cfg, progress=False)
    test = evaluate(model, kg, "test", progress=False).mrr
    # 14 entities, filtered: a random ranking scores about 0.38; DistMult reaches ~0.7.
    assert untrained < 0.5
    assert test > 0.6, f"{variant}: test MRR {test:.3f} after training"
