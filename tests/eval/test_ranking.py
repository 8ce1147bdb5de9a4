import math

import pytest
import torch

from mmgnn.eval import evaluate, rank_of_gold, ranking
from tests.helpers import distmult_model, random_kg


def brute_force_ranks(model, kg, triples, side, ties, filtered):
    """Reference: one query at a time, explicit loops over candidates and a set of true triples."""
    known = {tuple(t) for t in torch.cat([kg.train, kg.valid, kg.test]).tolist()}
    x = model.encode().detach()
    ranks = []
    for h, r, t in triples.tolist():
        gold = t if side == "tail" else h
        def score(e, h=h, r=r, t=t):
            if side == "head" and model.reciprocal:  # (?, r, t) is asked as (t, r^-1, ?)
                hh, rr, tt = t, r + kg.num_relations, e
            else:
                hh, rr, tt = (h, r, e) if side == "tail" else (e, r, t)
            return float(model.score_triples(x, torch.tensor([hh]), torch.tensor([rr]),
                                         torch.tensor([tt]))[0])
        s_gold = score(gold)
        greater = equal = 0
        for e in range(kg.num_entities):
            if e == gold:
                continue
            cand = (h, r, e) if side == "tail" else (e, r, t)
            if filtered and cand in known:
                continue
            s = score(e)
            greater += s > s_gold
            equal += s == s_gold
        ranks.append({"optimistic": 1 + greater, "pessimistic": 1 + greater + equal,
                      "realistic": 1 + greater + equal / 2}[ties])
    return torch.tensor(ranks, dtype=torch.double)


@pytest.mark.parametrize("filtered", [True, False])
@pytest.mark.parametrize("reciprocal", [False, True])
def test_evaluate_matches_brute_force(filtered, reciprocal):
    kg = random_kg()
    assert (kg.test[1:, 1] < kg.test[:-1, 1]).any(), "ranks must come back in query order"
    model = distmult_model(kg, reciprocal=reciprocal)
    result = evaluate(model, kg, "test", filtered=filtered, batch_size=7, progress=False,
                      keep_ranks=True)
    for side in ("head", "tail"):
        ref = brute_force_ranks(model, kg, kg.test, side, "realistic", filtered)
        torch.testing.assert_close(result.ranks[side].double(), ref)
        assert result.sides[side].mrr == pytest.approx(float((1 / ref).mean()))
        assert result.sides[side].hits[10] == pytest.approx(float((ref <= 10).double().mean()))
    both = torch.cat([result.ranks["head"], result.ranks["tail"]]).double()
    assert result.mrr == pytest.approx(float((1 / both).mean()))
    assert result.both.mr == pytest.approx(float(both.mean()))


def test_filtering_helps_and_is_exact_on_real_ties():
    kg = random_kg(seed=3)
    model = distmult_model(kg, dim=4)
    # Tie many candidates with the gold: integer-valued embeddings give exact equal scores.
    with torch.no_grad():
        model.entity.weight.copy_(torch.randint(-1, 2, model.entity.weight.shape).float())
        model.decoder.rel_emb.weight.fill_(1.0)
    res = {ties: evaluate(model, kg, "test", ties=ties, progress=False, keep_ranks=True)
           for ties in ("optimistic", "pessimistic", "realistic")}
    for side in ("head", "tail"):
        opt, pes, real = (res[k].ranks[side] for k in ("optimistic", "pessimistic", "realistic"))
        assert (opt <= real).all() and (real <= pes).all()
        assert (opt < pes).any(), "the test needs ties to be meaningful"
        torch.testing.assert_close(real, (opt + pes) / 2)
        for ties in ("optimistic", "pessimistic"):
            ref = brute_force_ranks(model, kg, kg.test, side, ties, True)
            torch.testing.assert_close(res[ties].ranks[side].double(), ref)
    unfiltered = evaluate(model, kg, "test", filtered=False, progress=False)
    assert unfiltered.mrr <= res["realistic"].mrr


def test_rank_of_gold_basic_cases():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]])
    gold = torch.tensor([2, 0])
    assert rank_of_gold(scores.clone(), gold, "optimistic").tolist() == [2.0, 1.0]
    assert rank_of_gold(scores.clone(), gold, "pessimistic").tolist() == [3.0, 4.0]
    assert rank_of_gold(scores.clone(), gold, "realistic").tolist() == [2.5, 2.5]
    # Filtering the better candidate moves the gold up.
    r = rank_of_gold(scores.clone(), gold, "optimistic", torch.tensor([0]), torch.tensor([1]))
    assert r.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("kernel", ["eager", "compiled"])
@pytest.mark.parametrize("ties", ["optimistic", "pessimistic", "realistic"])
def test_rank_of_gold_matches_loops_with_ties_and_filter(kernel, ties):
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(-3, 4, (9, 40), generator=g).float()  # many exact ties
    scores[2, 5] = float("-inf")
    gold = torch.randint(40, (9,), generator=g)
    gold[4] = 5  # row 4's gold is also in the filter below; row 2 has a -inf candidate
    key = torch.cat([torch.randperm(9 * 40, generator=g)[:60], torch.tensor([4 * 40 + 5])])
    key = key.unique()  # distinct pairs, as the filter index gives them
    fr, fc = key // 40, key % 40
    filtered = set(zip(fr.tolist(), fc.tolist(), strict=True))
    expected = []
    for i in range(9):
        s_gold = scores[i, gold[i]].item()
        others = [scores[i, j].item() for j in range(40)
                  if j != gold[i] and (i, j) not in filtered]
        greater = sum(s > s_gold for s in others)
        equal = sum(s == s_gold for s in others)
        expected.append({"optimistic": 1 + greater, "pessimistic": 1 + greater + equal,
                         "realistic": 1 + greater + equal / 2}[ties])
    before = scores.clone()
    ranks = rank_of_gold(scores, gold, ties, fr, fc, kernel=kernel)
    assert ranks.tolist() == expected
    assert torch.equal(scores, before), "the score matrix must be left as it was"
    if kernel == "compiled":
        assert not ranking._COUNT_FUSED.failed, "the fused kernel fell back to eager"


@pytest.mark.parametrize("kernel", ["eager", "compiled"])
def test_nan_scores_are_an_error(kernel):
    with pytest.raises(FloatingPointError, match="NaN"):
        rank_of_gold(torch.tensor([[math.nan, 1.0]]), torch.tensor([1]), kernel=kernel)
    with pytest.raises(FloatingPointError, match="NaN"):  # +inf and -inf sum to NaN: not NaN
        rank_of_gold(torch.tensor([[math.inf, -math.inf, math.nan]]), torch.tensor([0]),
                     kernel=kernel)
    ranks = rank_of_gold(torch.tensor([[math.inf, -math.inf, 0.0]]), torch.tensor([2]),
                         kernel=kernel)
    assert ranks.tolist() == [2.0]


def test_bad_arguments():
    kg = random_kg()
    model = distmult_model(kg)
    with pytest.raises(ValueError, match="ties"):
        evaluate(model, kg, ties="average", progress=False)
    with pytest.raises(ValueError, match="sides"):
        evaluate(model, kg, sides=("left",), progress=False)
    with pytest.raises(ValueError, match="split"):
        evaluate(model, kg, split="dev", progress=False)


def test_encoder_runs_once_and_mode_restored():
    kg = random_kg()
    model = distmult_model(kg)
    calls = []
    original = model.encode
    model.encode = lambda: calls.append(torch.is_grad_enabled()) or original()
    scored = []
    score_tails = model.score_tails
    model.score_tails = lambda *a: scored.append(torch.is_grad_enabled()) or score_tails(*a)
    model.train()
    evaluate(model, kg, "valid", batch_size=3, progress=False)
    assert len(calls) == 1
    assert model.training
    # no autograd graph: with one, the chunked one-to-all kernels keep their chunks and the
    # compiled ones are skipped (slower, and gigabytes on DB15K)
    assert calls == [False] and scored and not any(scored)
    assert torch.is_grad_enabled()
