"""MMRNS: the masked Gumbel draw against exact Plackett-Luce probabilities, the sampler's
guarantees (no known answers, no repeats), its loss against a loop reference, training and
resuming with the trainer, and learning a tiny real graph."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
from scipy.stats import chi2

from mmgnn.data import load_dataset
from mmgnn.eval import evaluate
from mmgnn.models import build_model
from mmgnn.sampling import (
    MMRNSSampler,
    exploration_temperature,
    gumbel_top_k,
    gumbel_top_k_rows,
)
from mmgnn.sampling import mmrns as mmrns_module
from mmgnn.sampling.mmrns import mmrns_sampler
from mmgnn.train import TrainConfig, fit
from tests.helpers import random_kg

SMALL = dict(pre_sample=20, attention_channels=6, hidden_channels=8, text_tokens=3)


def test_temperature_schedule():
    assert exploration_temperature(0) == 10.0
    for step in (1, 5, 99, 10_000):
        assert exploration_temperature(step, 4.0) == pytest.approx(4.0 / (1 + math.log(step + 1)))
    with pytest.raises(ValueError):
        exploration_temperature(-1)


def _plackett_luce(p: torch.Tensor, k: int) -> dict[frozenset, float]:
    """Exact probability of every K-subset drawn sequentially without replacement."""
    out: dict[frozenset, float] = {}
    for order in itertools.permutations(range(len(p)), k):
        prob, left = 1.0, 1.0
        for i in order:
            prob *= float(p[i]) / left
            left -= float(p[i])
        out[frozenset(order)] = out.get(frozenset(order), 0.0) + prob
    return out


def test_gumbel_draw_follows_plackett_luce():
    logits = torch.tensor([0.0, 1.0, -0.5, 0.7, float("-inf"), 0.2])
    p = torch.softmax(logits, 0)
    n, k = 20_000, 2
    index, onehot, valid = gumbel_top_k(logits.expand(n, -1).clone(), k,
                                        torch.Generator().manual_seed(0))
    assert valid.all() and (index != 4).all()  # excluded item never drawn
    assert (index[:, 0] != index[:, 1]).all()
    torch.testing.assert_close(onehot.detach().argmax(-1), index)
    # first draw ~ softmax(logits); chi-square over the 5 drawable items
    first = torch.bincount(index[:, 0], minlength=6).double()
    keep = p > 0
    stat = float(((first[keep] - n * p[keep]) ** 2 / (n * p[keep])).sum())
    assert stat < chi2.ppf(0.999, keep.sum().item() - 1), stat
    # unordered pairs ~ exact Plackett-Luce subset probabilities
    exact = _plackett_luce(p, k)
    pairs = [frozenset(r) for r in index.tolist()]
    subsets = [s for s in exact if exact[s] > 0]
    counts = torch.tensor([sum(1 for q in pairs if q == s) for s in subsets], dtype=torch.double)
    expect = torch.tensor([n * exact[s] for s in subsets], dtype=torch.double)
    stat = float(((counts - expect) ** 2 / expect).sum())
    assert stat < chi2.ppf(0.999, len(subsets) - 1), stat
    # a biased draw would fail: uniform over the drawable items is rejected
    uniform = n / keep.sum()
    assert float(((first[keep] - uniform) ** 2 / uniform).sum()) > chi2.ppf(0.999, 4)


def test_gumbel_straight_through_gradient_and_empty_draws():
    logits = torch.tensor([[0.3, -1.0, 2.0, float("-inf")]], requires_grad=True)
    index, y, valid = gumbel_top_k(logits, 3, torch.Generator().manual_seed(1))
    assert valid.all() and sorted(index[0].tolist()) == [0, 1, 2]
    torch.testing.assert_close(y.detach(), torch.nn.functional.one_hot(index, 4).float())
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    (y[0, 0] @ w).backward()
    # the gradient is the soft draw's: s_p (w_p - s.w), a softmax Jacobian (sums to zero,
    # zero for the excluded item)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad[0, 3] == 0 and logits.grad.abs().sum() > 0
    assert abs(float(logits.grad.sum())) < 1e-6
    # more draws than drawable items: the extra ones are marked invalid, no NaN
    logits = torch.tensor([[0.0, float("-inf"), float("-inf")]], requires_grad=True)
    index, y, valid = gumbel_top_k(logits, 2, torch.Generator().manual_seed(0))
    assert valid.tolist() == [[True, False]] and index[0, 0] == 0
    y.sum().backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("scale", [3.0, 300.0])
def test_gumbel_rows_equal_onehot_rows_in_value_and_gradient(scale):
    # rows of the fused form = y @ x of the one-hot form, for the same noise: values and the
    # gradients to the logits and to x; with excluded items and rows with empty draws; logit
    # gaps of hundreds (exp underflows float64 relative to the top item) included
    g = torch.Generator().manual_seed(3)
    base = torch.randn(6, 40, generator=g) * scale
    base[0, 5:] = float("-inf")  # 5 drawable items for 7 draws: 2 empty
    base[1, ::3] = float("-inf")
    base[2] = float("-inf")  # nothing drawable
    x0 = torch.randn(40, 5, generator=g, dtype=torch.float64).float()
    weight = torch.randn(6, 7, 5, generator=g)
    grads = []
    for fused in (False, True):
        logits, x = base.clone().requires_grad_(), x0.clone().requires_grad_()
        if fused:
            index, rows, valid = gumbel_top_k_rows(logits, x, 7, torch.Generator().manual_seed(9))
        else:
            index, y, valid = gumbel_top_k(logits, 7, torch.Generator().manual_seed(9))
            rows = y @ x
        (rows * weight).sum().backward()
        grads.append((index, valid, rows.detach(), logits.grad, x.grad))
    (i1, v1, r1, gl1, gx1), (i2, v2, r2, gl2, gx2) = grads
    assert torch.equal(i1[v1], i2[v2]) and torch.equal(v1, v2)
    assert v1[0].sum() == 5 and not v1[2].any()
    torch.testing.assert_close(r2, r1)
    torch.testing.assert_close(r2[v2], x0[i2[v2]])  # the hard rows exactly
    torch.testing.assert_close(gl2, gl1, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(gx2, gx1, atol=1e-5, rtol=1e-4)
    assert gl1.abs().sum() > 0 and torch.isfinite(gl2).all()


def _setup(seed=0, features=True, **kw):
    kg = random_kg(num_entities=30, num_relations=4, seed=seed)
    g = torch.Generator().manual_seed(seed)
    if features:
        mask = torch.arange(30) % 7 != 0  # some entities lack text
        kg.add_modality("text", torch.randn(30, 5, 4, generator=g), mask,
                        torch.randint(1, 6, (30,), generator=g) * mask)
    cfg = TrainConfig(loss="self_adversarial", num_negatives=6, sampler="mmrns",
                      sampler_args={**SMALL, **kw})
    torch.manual_seed(seed)
    model = _rotate(kg)
    return kg, cfg, model, _sampler(kg, cfg, model)


def _rotate(kg):
    return build_model("rotate", kg, dim=8, margin=4.0)


def _sampler(kg, cfg, model) -> MMRNSSampler:
    return mmrns_sampler(kg, cfg.num_negatives, cfg.negative_filter, model=model,
                         adversarial_temperature=cfg.adversarial_temperature,
                         **cfg.sampler_args)


@pytest.mark.parametrize("features", [True, False])
def test_negatives_are_never_known_answers_and_never_repeat(features):
    kg, _, model, sampler = _setup(features=features)
    assert sampler.modality_names == (["text"] if features else [])
    known = {tuple(t) for t in kg.train.tolist()}
    g = torch.Generator().manual_seed(0)
    x = model.encode()
    for step in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pos_s, neg_s, loss, neg = sampler.draw(model, x, kg.train, g)
        side = 2 if step % 2 == 0 else 0  # tail batch first (released), alternating
        other = 2 - side
        assert (neg[..., other] == kg.train[:, None, other]).all()
        assert (neg[..., 1] == kg.train[:, None, 1]).all()
        filled = neg[..., side] >= 0
        assert filled.float().mean() > 0.9
        for row, ok in zip(neg.tolist(), filled.tolist(), strict=True):
            ents = [tuple(t) for t, f in zip(row, ok, strict=True) if f]
            assert not known & set(ents)
            assert len(set(ents)) == len(ents)
        assert (neg_s[~filled] < -1e8).all() and torch.isfinite(neg_s[filled]).all()
        assert pos_s.shape == (len(kg.train),) and loss is not None and torch.isfinite(loss)
    assert int(sampler.step) == 4


def test_pool_uniform_control_draws_uniformly_from_the_pool():
    # the control: no KCA, no contrastive term; K distinct non-answers of the shared pool,
    # each allowed pool entity equally likely (chi-square over 4,000 draws of one query)
    kg, _, model, sampler = _setup(pool_uniform=True, pre_sample=30)
    assert "pool_uniform=True" in repr(sampler)
    x = model.encode()
    g = torch.Generator().manual_seed(0)
    query = kg.train[:1].repeat(2000, 1)
    counts = torch.zeros(kg.num_entities)
    for _ in range(2):  # two head batches (step 1)
        sampler.step.fill_(1)
        pos_s, neg_s, loss, neg = sampler.draw(model, x, query, g)
        assert loss is None
        ents = neg[..., 0]
        known = {h for h, r, t in kg.train.tolist() if (r, t) == tuple(query[0, 1:].tolist())}
        assert not known & set(ents.flatten().tolist())
        assert (ents.sort(1).values.diff(1) > 0).all()  # distinct
        counts += torch.bincount(ents.flatten(), minlength=kg.num_entities)
    allowed = counts > 0
    assert allowed.sum() == kg.num_entities - len(known)
    expected = counts.sum() / allowed.sum()
    stat = float(((counts[allowed] - expected) ** 2 / expected).sum())
    assert chi2.sf(stat, int(allowed.sum()) - 1) > 1e-4, stat
    neg_s.sum().backward()
    assert all(q.grad is None for q in sampler.parameters())
    assert model.entity.weight.grad.abs().sum() > 0


def test_draw_scores_equal_the_models_scores_and_gradients_flow():
    kg, _, model, sampler = _setup()
    x = model.encode()
    pos_s, neg_s, loss, neg = sampler.draw(model, x, kg.train[:50],
                                           torch.Generator().manual_seed(3))
    ok = neg[..., 0] >= 0
    ref = model.score_triples(x, neg[..., 0].clamp(min=0), neg[..., 1], neg[..., 2])
    torch.testing.assert_close(neg_s[ok], ref[ok])
    torch.testing.assert_close(pos_s, model.score_triples(x, *kg.train[:50].unbind(1)))
    (neg_s[ok].sum() + loss).backward()
    for name, p in sampler.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.entity.weight.grad.abs().sum() > 0


def test_grid_slices_give_the_numbers_of_one_pass(monkeypatch):
    # the similarities computed over many slices of the batch's relations equal those of one
    # slice, values and gradients (float64): slicing only bounds the size of the tensors
    torch.set_default_dtype(torch.float64)
    try:
        kg, _, model, sampler = _setup()
        model.double(), sampler.double()
        pre = torch.randperm(kg.num_entities, generator=torch.Generator().manual_seed(1))[:20]
        h, r, t = kg.train[:40].unbind(1)
        out = []
        for elements in (1, 2**30):  # one relation per slice / all in one
            monkeypatch.setattr(mmrns_module, "GRID_ELEMENTS", elements)
            model.zero_grad(), sampler.zero_grad()
            x = model.encode()
            sims, covered = sampler._similarities(model, x, r, t, pre)
            w = torch.linspace(-1, 1, sims["structure"].numel()).view_as(sims["structure"])
            sum((s * w * (i + 1)).sum() for i, s in enumerate(sims.values())).backward()
            grads = [q.grad.clone() for q in [*model.parameters(), *sampler.parameters()]
                     if q.grad is not None]
            out.append(([s.detach() for s in sims.values()], grads))
        assert len(r.unique()) > 1 and len(out[0][1]) == len(out[1][1]) > 5
        for a, b in zip(out[0][0] + out[0][1], out[1][0] + out[1][1], strict=True):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("form", ["query", "batch"])
def test_contrastive_loss_matches_a_loop_reference(form):
    torch.manual_seed(0)
    _, _, _, sampler = _setup(contrastive=form, contrastive_weight=1.0)
    b, p, k = 4, 7, 2
    sims = {"structure": torch.rand(b, p) * 2 - 1, "text": torch.rand(b, p) * 2 - 1}
    covered = {"structure": torch.ones(b, p, dtype=torch.bool),
               "text": torch.rand(b, p) > 0.2}
    known = torch.rand(b, p) < 0.3
    known[0] = False  # a query without known answers in the pre-sample
    index = torch.stack([torch.randperm(p)[:k] for _ in range(b)])
    valid = torch.ones(b, k, dtype=torch.bool)
    neg_scores = torch.randn(b, k)
    got = sampler._contrastive(sims, covered, known, index, valid, neg_scores)
    adv = torch.softmax(neg_scores, 1)
    terms = []
    for v in sims:
        w = torch.full((b, p), 1.0 / p)
        for i in range(b):
            for j in range(k):
                w[i, index[i, j]] *= adv[i, j]
        e = sims[v].exp() * w
        pos, neg = known & covered[v], ~known & covered[v]
        if form == "batch":
            terms.append(-torch.log(e[pos].sum() / e[neg].sum()))
        else:
            per = [-torch.log(e[i][pos[i]].sum() / e[i][neg[i]].sum())
                   for i in range(b) if pos[i].any() and neg[i].any()]
            terms.append(torch.stack(per).mean())
    torch.testing.assert_close(got, torch.stack(terms).mean())


def test_trainer_optimises_checkpoints_and_resumes_the_sampler(tmp_path, one_thread):
    kg, cfg, _, _ = _setup()
    cfg = TrainConfig(**{**cfg.to_dict(), "epochs": 4, "batch_size": 64, "eval_every": 2,
                         "lr": 0.02, "sampler_args": {**SMALL, "lr": 0.05}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        straight = fit(_rotate(kg), kg, cfg, tmp_path / "a", progress=False)
        assert [g["lr"] for g in straight.optimizer.param_groups] == [0.02, 0.05]
        first = TrainConfig(**{**cfg.to_dict(), "epochs": 2})
        torch.manual_seed(0)
        fit(_rotate(kg), kg, first, tmp_path / "b", progress=False)
        torch.manual_seed(123)
        resumed = fit(_rotate(kg), kg, cfg, tmp_path / "b", resume=True,
                      progress=False)
    assert int(straight.task.sampler.step) == int(resumed.task.sampler.step) == 4 * 4  # 200/64 -> 4
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    for a, b in zip(straight.task.sampler.state_dict().values(),
                    resumed.task.sampler.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the sampler's parameters moved away from their initialisation
    torch.manual_seed(0)
    fresh = _sampler(kg, cfg, _rotate(kg))
    moved = [not torch.equal(a, b) for a, b in zip(fresh.parameters(),
                                                   straight.task.sampler.parameters(), strict=True)]
    assert all(moved)


def test_bad_settings_are_reported():
    kg, cfg, model, _ = _setup()
    with pytest.raises(ValueError, match="pre_sample > K"):
        _sampler(kg, TrainConfig(**{**cfg.to_dict(), "sampler_args": {"pre_sample": 6}}), model)
    with pytest.raises(ValueError, match="not found"):
        _sampler(kg, TrainConfig(**{**cfg.to_dict(), "sampler_args": {"image": "pixels"}}),
                 model)
    with pytest.raises(TypeError, match="score_batch"):
        _sampler(kg, cfg, model).sample(kg.train)
    with pytest.raises(TypeError, match="fused_corruptions=False"):
        imf = build_model("imf", kg, dim=8)
        _sampler(kg, cfg, model).draw(imf, imf.encode(), kg.train[:4])


def test_learns_nations_above_chance(data_root, one_thread):
    kg = load_dataset("Nations", root=data_root, add_side_info=True)
    # the 2 numeric literals as a one-token view
    kg.add_modality("numeric_tokens", kg.features["numeric"], kg.masks["numeric"])
    cfg = TrainConfig(loss="self_adversarial", sampler="mmrns", num_negatives=4,
                      sampler_args={"pre_sample": 14, "attention_channels": 8,
                                    "hidden_channels": 16, "text": "numeric_tokens",
                                    "text_tokens": 1},
                      epochs=10, batch_size=128, lr=0.02, eval_every=5)
    torch.manual_seed(0)
    model = build_model("rotate", kg, dim=32, margin=6.0)
    untrained = evaluate(model, kg, "test", progress=False).mrr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = fit(model, kg, cfg, progress=False)
    test = evaluate(model, kg, "test", progress=False).mrr
    # 14 entities: a random ranking scores about 0.38
    assert untrained < 0.5
    assert test > 0.55, f"test MRR {test:.3f}"
    assert trainer.task.sampler.modality_names == ["text"]


@pytest.mark.parametrize("decoder", ["transe", "pairre"])
def test_command_line_trains_with_mmrns(data_root, tmp_path, one_thread, decoder):
    from mmgnn.cli import main
    from mmgnn.train import load_checkpoint

    out = tmp_path / decoder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(["train", "--dataset", "Nations", "--root", str(data_root), "--model", decoder,
              "--dim", "8", "--loss", "self_adversarial", "--sampler", "mmrns",
              "--num-negatives", "3", "--train.sampler_args.pre_sample", "10",
              "--train.sampler_args.attention_channels", "4",
              "--train.sampler_args.lr", "0.01",
              "--epochs", "2", "--batch-size", "512", "--out", str(out), "--quiet"])
    state = load_checkpoint(out / "checkpoint.pt")
    assert int(state["sampler"]["step"]) == 2 * 4  # 1592 triples / 512 -> 4 steps an epoch
    assert state["config"]["sampler_args"]["lr"] == 0.01
    assert len(state["optimizer"]["param_groups"]) == 2


@pytest.mark.parametrize("name", ["transe", "rotate", "distmult"])
@pytest.mark.parametrize("head_batch", [False, True])
def test_drawn_rows_scored_by_the_decoders_step_form_equal_score_hrt(name, head_batch):
    # a decoder's own score_corruptions (TransE-L1's fused form; RotatE's where it has one)
    # on the table of fixed and drawn rows = score_hrt on the rows, values and gradients of
    # the rows, the fixed side and the relations (float64); others take score_hrt itself
    kg = random_kg(num_entities=30, num_relations=4, seed=0)
    decoder = build_model(name, kg, dim=6).decoder.double()
    g = torch.Generator().manual_seed(0)
    fixed0 = torch.randn(5, decoder.entity_channels, generator=g, dtype=torch.float64)
    rows0 = torch.randn(5, 3, decoder.entity_channels, generator=g, dtype=torch.float64)
    r = torch.randint(0, 4, (5,), generator=g)
    w = torch.randn(5, 3, generator=g, dtype=torch.float64)
    out = []
    for fused in (True, False):
        decoder.zero_grad()
        fixed, rows = fixed0.clone().requires_grad_(), rows0.clone().requires_grad_()
        if fused:
            scores = mmrns_module._score_rows(decoder, fixed, r, rows, head_batch)
        else:
            f, rel = fixed[:, None], r[:, None]
            scores = (decoder.score_hrt(rows, rel, f) if head_batch
                      else decoder.score_hrt(f, rel, rows))
        (scores * w).sum().backward()
        out.append([scores.detach(), fixed.grad, rows.grad,
                    *(p.grad for p in decoder.parameters())])
    for a, b in zip(*out, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
