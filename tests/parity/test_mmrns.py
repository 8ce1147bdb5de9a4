"""MMRNS against its released code (quqxui/MMRNS a4a41fc, ``../shared/reference/MMRNS``).

- KCA (``KCA_model.KCA``): the grid views of all four cross-modal branches and the
  structural view of every (query, candidate) pair, ``positive_KCA`` (pairwise form), the three
  cosine similarities and the draw distribution, outputs and gradients in float64;
- the exploration temperature: the released expression, read from ``run_gumbel.py``;
- the draw: mmgnn's one-noise Gumbel top-K against the released K successive
  ``gumbel_softmax(hard=True)`` draws (the loop of ``run_gumbel.py``, run as released): both
  follow the exact sequential-without-replacement probabilities (chi-square, a bound that can
  fail, and a control that the test rejects);
- one released ``train_step`` (RotatE of ``KGC_model.py``, self-adversarial loss, the
  batch-global contrastive term): loss and gradients against mmgnn's RotatE, loss and
  ``MMRNSSampler._contrastive`` (``contrastive="batch"``).

The differences mmgnn keeps by default are checked to be differences: the contrastive term per
query (``contrastive="query"``), branch 1 layer-normalised in the pairwise form
(``released_positive_norm=False``).
"""

from __future__ import annotations

import ast
import itertools
import math
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chi2

from mmgnn.modalities.store import ModalityStore
from mmgnn.nn.fusion.kca import KCA
from mmgnn.nn.kge.rotate import RotatE
from mmgnn.nn.losses import SelfAdversarialLoss
from mmgnn.sampling import MMRNSSampler, exploration_temperature, gumbel_top_k
from tests.parity.conftest import (
    assert_close,
    copy_params,
    load_reference,
    reference_path,
    stub_module,
)

N, R, D, B, P = 12, 3, 6, 5, 7  # entities, relations, hidden_dim (entity width 2D), batch, pool
TOL = 1e-10


def _kca_module():
    return load_reference("MMRNS/KCA_model.py")


def _run_gumbel():
    # run_gumbel imports matplotlib and ordered_set at the top; train_step uses neither
    shims = {"matplotlib": stub_module("matplotlib"),
             "matplotlib.pyplot": stub_module("matplotlib.pyplot"),
             "ordered_set": stub_module("ordered_set", OrderedSet=dict)}
    return load_reference("MMRNS/run_gumbel.py", shims=shims)


def _args(**kw):
    return SimpleNamespace(double_entity_embedding=True, double_relation_embedding=False,
                           hidden_dim=D, batch_size=B, pre_sample_num=P, **kw)


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(N, 4, 384, generator=g)
    text[::3, 2:] = 0.0  # entities with fewer than 4 sentences: zero rows, as released
    image = torch.randn(N, 24, 383, generator=g)
    # float32 values: the sampler keeps its features in float32 (fit_tokens), exactly
    text, image = text.float().to(text.dtype), image.float().to(image.dtype)
    ent = torch.nn.Parameter(torch.randn(N, 2 * D, generator=g) * 0.5)
    rel = torch.nn.Parameter(torch.randn(R, D, generator=g) * 0.5)
    triples = torch.stack([torch.randint(0, N, (B,), generator=g),
                           torch.randint(0, R, (B,), generator=g),
                           torch.randint(0, N, (B,), generator=g)], 1)
    pre = torch.randperm(N, generator=g)[:P]
    return text, image, ent, rel, triples, pre


def _map_kca(ours: KCA, theirs) -> None:
    """The released KCA's weights into mmgnn's: linear_rel1 gates the image view (B2),
    linear_rel2 the text view (B4)."""
    pairs = {ours.token_proj["text"]: theirs.linear_text,
             ours.token_proj["image"]: theirs.linear_img,
             ours.view_proj["text"]: theirs.linear_text_project,
             ours.view_proj["image"]: theirs.linear_img_project,
             ours.gates["image"]: theirs.linear_rel1, ours.gates["text"]: theirs.linear_rel2,
             ours.lin1: theirs.linear1, ours.lin3: theirs.linear3, ours.norm: theirs.layernorm}
    copy_params({o: t for a, b in pairs.items()
                 for o, t in ((a.weight, b.weight), (a.bias, b.bias))})


def _grads(params):
    return [p.grad.clone() for p in params]


@pytest.mark.parametrize("mode", ["tail-batch", "head-batch"])
def test_kca_views_similarities_and_distribution_match_the_release(float64, mode):
    ref_module = _kca_module()
    text, image, ent, rel, triples, pre = _data()
    torch.manual_seed(0)
    theirs = ref_module.KCA(_args(), None, N, text, image)
    kge = SimpleNamespace(entity_embedding=ent, relation_embedding=rel)
    # the released grid views are not returned: read them at the projections / the gate
    seen: dict[str, list] = {"img": [], "txt": [], "gate": []}
    hooks = [theirs.linear_img_project.register_forward_hook(
                 lambda m, i, o: seen["img"].append(o)),
             theirs.linear_text_project.register_forward_hook(
                 lambda m, i, o: seen["txt"].append(o)),
             theirs.linear3.register_forward_hook(lambda m, i, o: seen["gate"].append(o))]
    tau = exploration_temperature(123)
    dist, s_img, s_txt, s_t = theirs(kge, triples, mode, tau, pre, None)
    pos_img, pos_txt, pos_t = theirs.positive_KCA(kge, triples, 2 if mode == "tail-batch" else 0)
    for h in hooks:
        h.remove()
    # grid call first, then positive_KCA: the released structural view t * sigmoid(linear3)
    ref_views = {"image": seen["img"][0], "text": seen["txt"][0],
                 "structure": ent[pre][None] * torch.sigmoid(seen["gate"][0])}
    ref_pair = {"image": pos_img, "text": pos_txt, "structure": pos_t}

    sampler = MMRNSSampler(triples, N, R, 2, 2 * D, D,
                           ModalityStore({"text": text, "image": image}), pre_sample=P,
                           released_positive_norm=True).double()
    ours = sampler.kca
    _map_kca(ours, theirs)
    ent2, rel2 = (torch.nn.Parameter(t.detach().clone()) for t in (ent, rel))
    gold = triples[:, 2 if mode == "tail-batch" else 0]
    # grid form, one row per query (U = B), and pairwise form
    views = ours(rel2[triples[:, 1]], ent2[pre], text=text[pre], image=image[pre])
    pair = ours(rel2[triples[:, 1]], ent2[gold], text=text[gold], image=image[gold],
                pairwise=True)
    model = SimpleNamespace(decoder=SimpleNamespace(rel_emb=SimpleNamespace(weight=rel2)))
    sims, covered = sampler._similarities(model, ent2, triples[:, 1], gold, pre)
    ref_sims = {"structure": s_t, "text": s_txt, "image": s_img}
    report = {}
    for v in ("structure", "text", "image"):
        report[f"grid {v}"] = assert_close(views[v], ref_views[v], TOL, f"grid {v} view")
        report[f"pair {v}"] = assert_close(pair[v], ref_pair[v], TOL, f"pairwise {v} view")
        report[f"sim {v}"] = assert_close(sims[v], ref_sims[v], TOL, f"{v} similarity")
        assert covered[v].all()
    ours_dist = sampler.distribution(sims, covered, 123)
    report["distribution"] = assert_close(ours_dist, dist, TOL, "draw distribution")

    # gradients: one random linear functional of every output, on both sides
    g = torch.Generator().manual_seed(1)
    outs = [*views.values(), *pair.values(), *sims.values(), ours_dist]
    refs = [*(ref_views[v] for v in views), *(ref_pair[v] for v in pair),
            *(ref_sims[v] for v in sims), dist]
    weights = [torch.randn(o.shape, generator=g) for o in outs]
    sum((o * w).sum() for o, w in zip(outs, weights, strict=True)).backward()
    sum((o * w).sum() for o, w in zip(refs, weights, strict=True)).backward()
    mapped = [(ours.token_proj["text"], theirs.linear_text),
              (ours.token_proj["image"], theirs.linear_img),
              (ours.view_proj["text"], theirs.linear_text_project),
              (ours.view_proj["image"], theirs.linear_img_project),
              (ours.gates["image"], theirs.linear_rel1), (ours.gates["text"], theirs.linear_rel2),
              (ours.lin1, theirs.linear1), (ours.lin3, theirs.linear3),
              (ours.norm, theirs.layernorm)]
    for a, b in mapped:
        for name in ("weight", "bias"):
            diff = assert_close(getattr(a, name).grad, getattr(b, name).grad, 1e-8,
                                f"gradient of {b}.{name}")
            report[f"grad {name}s"] = max(report.get(f"grad {name}s", 0.0), diff)
    report["grad entity"] = assert_close(ent2.grad, ent.grad, 1e-8, "gradient of the entities")
    report["grad relation"] = assert_close(rel2.grad, rel.grad, 1e-8,
                                           "gradient of the relations")
    assert ent.grad.abs().sum() > 0 and rel.grad.abs().sum() > 0
    print(f"MMRNS KCA parity ({mode}): max |diff| " +
          ", ".join(f"{k} {v:.1e}" for k, v in report.items()))


def test_pairwise_branch_1_norm_is_the_documented_difference(float64):
    text, image, ent, rel, triples, _ = _data()
    torch.manual_seed(0)
    out = {}
    for released in (True, False):
        kca = KCA(2 * D, D, 384, 383, released_positive_norm=released).double()
        torch.manual_seed(0)
        kca.reset_parameters()
        out[released] = kca(rel[triples[:, 1]], ent[triples[:, 2]], text=text[triples[:, 2]],
                            image=image[triples[:, 2]], pairwise=True)
    torch.testing.assert_close(out[True]["text"], out[False]["text"])
    assert (out[True]["image"] - out[False]["image"]).abs().max() > 1e-3


def _released_expression(target: str) -> ast.AST:
    """The right-hand side of the assignment to ``target`` in ``run_gumbel.main``."""
    tree = ast.parse(reference_path("MMRNS/run_gumbel.py").read_text())
    found = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == target for t in n.targets)]
    assert len(found) == 1, f"run_gumbel.py assigns {target} {len(found)} times"
    return found[0]


def test_temperature_schedule_is_the_released_expression():
    # run_gumbel.py: temperature = args.exploration_temp / (1 + torch.log(torch.tensor(
    # [step + 1], device=device))); --exploration_temp is an int, the log a float32 tensor
    code = compile(ast.Expression(_released_expression("temperature")), "run_gumbel.py", "eval")
    args = SimpleNamespace(exploration_temp=10)
    steps = [*range(0, 50), *range(50, 30_000, 97), 8102, 8103, 99_999]
    worst = 0.0
    for step in steps:
        theirs = eval(code, {"torch": torch, "args": args, "step": step, "device": "cpu"})
        assert theirs.dtype == torch.float32 and theirs.shape == (1,)
        ours = exploration_temperature(step, 10.0)
        worst = max(worst, abs(ours - float(theirs)) / ours)
        assert (ours < 1.0) == (float(theirs) < 1.0)
    assert worst < 3e-7, worst  # float32 rounding of the release only
    assert exploration_temperature(8102) > 1.0 > exploration_temperature(8103)


def _released_draw_loop():
    """The released K successive hard Gumbel draws (the ``for it in range(
    args.negative_sample_size)`` loop of ``run_gumbel.main``), as a function of the masked
    logits :obj:`(n, P)`; returns the drawn positions :obj:`(n, K)` in draw order."""
    tree = ast.parse(reference_path("MMRNS/run_gumbel.py").read_text())
    loops = [n for n in ast.walk(tree) if isinstance(n, ast.For)
             and isinstance(n.target, ast.Name) and n.target.id == "it"]
    assert len(loops) == 1
    code = compile(ast.Module([loops[0]], []), "run_gumbel.py", "exec")

    def draw(logits: torch.Tensor, k: int) -> torch.Tensor:
        scope = {"torch": torch, "F": F, "device": "cpu", "neg_distribution": logits.clone(),
                 "args": SimpleNamespace(negative_sample_size=k), "neg_all": [],
                 "neg_for_adv": []}
        exec(code, scope)
        return torch.cat(scope["neg_for_adv"], 1)

    return draw


def _exact_ordered(p: torch.Tensor, k: int) -> dict[tuple, float]:
    """Probability of every ordered K-tuple drawn sequentially without replacement."""
    out = {}
    for order in itertools.permutations(range(len(p)), k):
        prob, left = 1.0, 1.0
        for i in order:
            prob *= float(p[i]) / left
            left -= float(p[i])
        if prob > 0:
            out[order] = prob
    return out


def _chi_square_p(draws: torch.Tensor, exact: dict[tuple, float]) -> float:
    """p-value of the chi-square goodness-of-fit of the ordered draws :obj:`(n, K)` to
    ``exact``; a tuple outside its support gives 0."""
    counts = Counter(map(tuple, draws.tolist()))
    if set(counts) - set(exact):
        return 0.0
    n = len(draws)
    stat = sum((counts.get(o, 0) - n * q) ** 2 / (n * q) for o, q in exact.items())
    return float(chi2.sf(stat, len(exact) - 1))


def test_gumbel_top_k_draws_the_released_distribution():
    # n = 30,000 rows of the same 6 candidates (one a known answer, masked as each side does),
    # K = 3 ordered draws: 60 outcomes, smallest expected count ~ 45. Bound: a chi-square
    # p-value below 1e-4 fails (seeded; the statistic is deterministic).
    torch.manual_seed(0)
    dist = torch.tensor([0.9, 0.55, 0.35, 0.12, 0.05, 0.03])  # a sum of softmaxes, as released
    known = torch.tensor([False, False, True, False, False, False])
    n, k = 30_000, 3
    released = torch.log(dist) + torch.log(torch.where(known, 1e-38, 1.0))  # run_gumbel.py
    ours_logits = torch.log(dist).masked_fill(known, float("-inf"))  # MMRNSSampler.draw
    p = torch.softmax(ours_logits.double(), 0)
    exact = _exact_ordered(p, k)
    theirs = _released_draw_loop()(released.expand(n, -1), k)
    index, _, valid = gumbel_top_k(ours_logits.expand(n, -1).clone(), k,
                                   torch.Generator().manual_seed(1))
    assert valid.all()
    p_theirs, p_ours = _chi_square_p(theirs, exact), _chi_square_p(index, exact)
    assert p_theirs > 1e-4, p_theirs
    assert p_ours > 1e-4, p_ours
    # the two samplers against each other: chi-square test of homogeneity
    keys = sorted(exact)
    counts = [Counter(map(tuple, d.tolist())) for d in (theirs, index)]
    table = torch.tensor([[c[o] for o in keys] for c in counts], dtype=torch.float64)
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    assert chi2.sf(stat, len(keys) - 1) > 1e-4
    # negative control: K independent draws from p, a repeat rejected and redrawn (a
    # plausible wrong sampler: the set probabilities differ from sequential removal)
    g = torch.Generator().manual_seed(2)
    rows = []
    while len(rows) < n:
        d = torch.multinomial(p.float().expand(n, -1), k, replacement=True, generator=g)
        ok = (d[:, 0] != d[:, 1]) & (d[:, 0] != d[:, 2]) & (d[:, 1] != d[:, 2])
        rows += d[ok].tolist()
    p_wrong = _chi_square_p(torch.tensor(rows[:n]), exact)
    assert p_wrong < 1e-4, p_wrong
    print(f"MMRNS draw: chi-square p released {p_theirs:.3f}, mmgnn {p_ours:.3f}, "
          f"wrong control {p_wrong:.1e}")


@pytest.mark.parametrize("mode", ["tail-batch", "head-batch"])
def test_train_step_loss_and_contrastive_term_match_the_release(float64, mode):
    # one released train_step (gumbel mode, uniform weights: mmgnn has no word2vec
    # subsampling weights) with the optimiser's step a no-op: its loss and the gradients of
    # the entity/relation tables and of the three similarity tensors
    run_gumbel = _run_gumbel()
    kgc = load_reference("MMRNS/KGC_model.py")
    text, image, ent, rel, triples, pre = _data(1)
    k, alpha, gamma = 3, 0.5, 6.0
    torch.manual_seed(0)
    kge = kgc.KGEModel("gumbel", "cpu", "RotatE", N, R, D, gamma,
                       double_entity_embedding=True)
    g = torch.Generator().manual_seed(5)
    neg_for_adv = torch.stack([torch.randperm(P, generator=g)[:k] for _ in range(B)])
    known = torch.zeros(B, N, dtype=torch.bool)  # pos_neg_mask: known train answers
    side = 2 if mode == "tail-batch" else 0
    known[torch.arange(B), triples[:, side]] = True
    known[:, pre[:2]] = True  # every query has answers in the pool
    known[torch.arange(B)[:, None], pre[neg_for_adv[:, :1]]] = False  # drawn: not answers
    sims = {v: (torch.rand(B, P, generator=g) * 2 - 1).requires_grad_()
            for v in ("img", "text", "t")}
    onehot = F.one_hot(neg_for_adv, P).double()
    neg_emb = onehot @ kge.entity_embedding[pre]
    args = SimpleNamespace(sample_method="gumbel", model="RotatE", adversarial_temperature=alpha,
                           batch_size=B, loss_rate=100, uni_weight=True, regularization=0.0)
    optimizer = SimpleNamespace(zero_grad=lambda: None, step=lambda: None)
    log = run_gumbel.train_step(kge, optimizer, triples, neg_emb, torch.ones(B), mode, args,
                                "cpu", sims["img"], sims["text"], sims["t"], pre, known,
                                neg_for_adv)

    decoder = RotatE(R, D, margin=gamma).double()
    copy_params({decoder.rel_emb.weight: kge.relation_embedding})
    x = kge.entity_embedding.detach().clone().requires_grad_()
    h, r, t = triples.unbind(1)
    neg = x[pre][neg_for_adv]
    neg_scores = (decoder.score_hrt(neg, r[:, None], x[t][:, None]) if side == 0
                  else decoder.score_hrt(x[h][:, None], r[:, None], neg))
    pos_scores = decoder.score_hrt(x[h], r, x[t])
    assert_close(pos_scores, kge(triples, "single", "train").squeeze(1), TOL, "RotatE score")
    ours_sims = {v: s.detach().clone().requires_grad_() for v, s in sims.items()}
    sampler = MMRNSSampler(triples, N, R, k, 2 * D, D, pre_sample=P, contrastive="batch",
                           adversarial_temperature=alpha).double()
    covered = {v: torch.ones(B, P, dtype=torch.bool) for v in ours_sims}
    term = sampler._contrastive(ours_sims, covered, known[:, pre], neg_for_adv,
                                torch.ones(B, k, dtype=torch.bool), neg_scores)
    loss = SelfAdversarialLoss(0.0, alpha)(pos_scores, neg_scores) + term
    loss.backward()
    assert abs(loss.item() - log["loss"]) <= TOL, (loss.item(), log["loss"])
    diffs = {"entity": assert_close(x.grad, kge.entity_embedding.grad, TOL, "entity gradient"),
             "relation": assert_close(decoder.rel_emb.weight.grad, kge.relation_embedding.grad,
                                      TOL, "relation gradient")}
    for v in sims:
        diffs[f"sim {v}"] = assert_close(ours_sims[v].grad, sims[v].grad, TOL,
                                         f"gradient of the {v} similarity")
        assert sims[v].grad.abs().sum() > 0
    # mmgnn's default contrastive form (per query) is a different number
    sampler.contrastive = "query"
    other = sampler._contrastive(ours_sims, covered, known[:, pre], neg_for_adv,
                                 torch.ones(B, k, dtype=torch.bool), neg_scores)
    assert not math.isclose(other.item(), term.item(), rel_tol=1e-3)
    print(f"MMRNS train_step parity ({mode}): loss {log['loss']:.6f}; max |diff| " +
          ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
