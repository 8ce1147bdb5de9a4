"""KCA against the MMRNS equations written out token by token for one (relation, entity) pair."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmgnn.nn.fusion import KCA

E, R, DT, DI, LT, LI, A = 6, 5, 7, 9, 3, 4, 8


def _reference(kca: KCA, r: torch.Tensor, e: torch.Tensor, text: torch.Tensor,
               image: torch.Tensor, positive: bool = False) -> dict[str, torch.Tensor]:
    """One relation r (d_r,), one entity: e (F,), text (Lt, dt), image (Li, di), all tokens
    valid; the released KCA_model.py formulas with explicit loops over tokens."""
    ln = kca.norm
    t = F.leaky_relu(kca.token_proj["text"](text), 0.1)
    i = F.leaky_relu(kca.token_proj["image"](image), 0.1)
    cross = torch.stack([torch.stack([i[a] @ t[b] for b in range(LT)]) for a in range(LI)])
    g1 = torch.sigmoid(kca.gates["image"](r)).view(LI, LT)
    g2 = torch.sigmoid(kca.gates["text"](r)).view(LI, LT)
    # image view: one row per text token
    b1 = torch.stack([sum(torch.softmax(cross[:, b], 0)[a] * i[a] for a in range(LI))
                      for b in range(LT)])
    b2 = torch.stack([sum(g1[a, b] * cross[a, b] * i[a] for a in range(LI)) for b in range(LT)])
    img = ln(b2) + (b1 if positive and kca.released_positive_norm else ln(b1))
    # text view: one row per image token
    b3 = torch.stack([sum(torch.softmax(cross[a], 0)[b] * t[b] for b in range(LT))
                      for a in range(LI)])
    b4 = torch.stack([sum(g2[a, b] * cross[a, b] * t[b] for b in range(LT)) for a in range(LI)])
    txt = ln(b4) + ln(b3)
    gate = torch.sigmoid(kca.lin3(F.leaky_relu(kca.lin1(torch.cat([e, r])), 0.1)))
    return {"structure": e * gate, "image": kca.view_proj["image"](img.reshape(-1)),
            "text": kca.view_proj["text"](txt.reshape(-1))}


def _inputs(u=3, p=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(u, R, generator=g), torch.randn(p, E, generator=g),
            torch.randn(p, LT, DT, generator=g), torch.randn(p, LI, DI, generator=g))


@pytest.mark.parametrize("released", [False, True])
def test_grid_and_pairwise_match_the_equations(released):
    torch.manual_seed(0)
    kca = KCA(E, R, DT, DI, LT, LI, A, hidden_channels=11, released_positive_norm=released)
    rel, ent, text, image = _inputs()
    grid = kca(rel, ent, text, image)
    assert {k: tuple(v.shape) for k, v in grid.items()} == {
        "structure": (3, 5, E), "text": (3, 5, A), "image": (3, 5, A)}
    for u in range(3):
        for p in range(5):
            ref = _reference(kca, rel[u], ent[p], text[p], image[p])
            for v in kca.views:
                torch.testing.assert_close(grid[v][u, p], ref[v], rtol=1e-4, atol=1e-5)
    # pairwise: query b with its own entity (the gold answers of a batch)
    pair = kca(rel, ent[:3], text[:3], image[:3], pairwise=True)
    for b in range(3):
        ref = _reference(kca, rel[b], ent[b], text[b], image[b], positive=True)
        for v in kca.views:
            torch.testing.assert_close(pair[v][b], ref[v], rtol=1e-4, atol=1e-5)
    # the released positive branch differs from the grid only in the image view
    same = torch.allclose(pair["image"], grid["image"][torch.arange(3), torch.arange(3)],
                          atol=1e-5)
    assert same != released
    torch.testing.assert_close(pair["text"], grid["text"][torch.arange(3), torch.arange(3)])


def test_gradients_reach_every_parameter_and_input():
    torch.manual_seed(0)
    kca = KCA(E, R, DT, DI, LT, LI, A)
    rel, ent, text, image = (t.requires_grad_() for t in _inputs())
    out = kca(rel, ent, text, image)
    sum(v.square().sum() for v in out.values()).backward()
    for name, p in kca.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for t in (rel, ent, text, image):
        assert t.grad.abs().sum() > 0


def test_padding_and_missing_modalities():
    torch.manual_seed(0)
    kca = KCA(E, R, DT, DI, LT, LI, A)
    rel, ent, text, image = _inputs()
    lengths = torch.tensor([3, 2, 1, 0, 3])
    out = kca(rel, ent, text, image, text_lengths=lengths)
    noisy = text.clone()
    for p, n in enumerate(lengths.tolist()):
        noisy[p, n:] = 100.0  # padded tokens must not matter
    again = kca(rel, ent, noisy, image, text_lengths=lengths)
    for v in kca.views:
        assert torch.isfinite(out[v]).all()
        torch.testing.assert_close(out[v], again[v])
    # an entity without the modality (length 0) gets a finite constant view
    assert torch.isfinite(kca(rel, ent, text, image, text_lengths=torch.zeros(5))["text"]).all()


@pytest.mark.parametrize("mods", [("text",), ("image",), ()])
def test_single_modality_and_structure_only(mods):
    torch.manual_seed(0)
    kca = KCA(E, R, DT if "text" in mods else None, DI if "image" in mods else None, LT, LI, A)
    rel, ent, text, image = _inputs()
    kw = {m: x for m, x in (("text", text), ("image", image)) if m in mods}
    out = kca(rel, ent, **kw)
    assert kca.views == ["structure", *mods]
    assert sorted(out) == sorted(kca.views)
    assert kca.affinity_size == ({"text": LT, "image": LI}[mods[0]] ** 2 if mods else 0)
    for m in mods:
        # self-attention form: M M^T affinity, one view of the modality
        tok = F.leaky_relu(kca.token_proj[m](kw[m][0]), 0.1)
        aff = tok @ tok.t()
        gate = torch.sigmoid(kca.gates[m](rel[0])).view(len(tok), len(tok))
        view = kca.norm((gate * aff) @ tok) + kca.norm(torch.softmax(aff, -1) @ tok)
        torch.testing.assert_close(out[m][0, 0], kca.view_proj[m](view.reshape(-1)),
                                   rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="modalities"):
        kca(rel, ent, text=text, image=image) if len(mods) < 2 else None


def test_bad_token_count_and_repr():
    kca = KCA(E, R, DT, None, LT, LI, A)
    rel, ent, text, _ = _inputs()
    with pytest.raises(ValueError, match="text_tokens=3"):
        kca(rel, ent, text[:, :2])
    assert repr(kca) == "KCA(entity=6, relation=5, text=7x3, attention=8)"
    assert KCA(E, R, DT, DI, LT, LI, A).affinity_size == LT * LI


@pytest.mark.parametrize("norm_grad", [True, False])
def test_structure_dots_equal_the_grid_view_reduced(norm_grad):
    # structure_dots (one relation at a time, own backward) = grid's structural view followed
    # by per-relation dots with the gold rows and norms: values and every gradient, float64
    g = torch.Generator().manual_seed(5)
    kca = KCA(E, R, hidden_channels=11).double()
    counts = [2, 1, 0, 3]
    rel0 = torch.randn(len(counts), R, generator=g, dtype=torch.float64)
    ent0 = torch.randn(9, E, generator=g, dtype=torch.float64)
    ent0[4] = 0.0  # a zero view: norm 0, whose gradient torch takes as 0
    gold0 = torch.randn(sum(counts), E, generator=g, dtype=torch.float64)
    w_dot = torch.randn(sum(counts), 9, generator=g, dtype=torch.float64)
    w_norm = torch.randn(len(counts), 9, generator=g, dtype=torch.float64)
    out = []
    for fused in (False, True):
        kca.zero_grad()
        rel, ent, gold = (t.clone().requires_grad_() for t in (rel0, ent0, gold0))
        side = kca.prepare(ent)
        if fused:
            dots, norms = kca.structure_dots(rel, side, gold, counts)
        else:
            view = kca.grid(rel, side)["structure"]  # (U, P, F)
            dots = torch.cat([v @ gu.t() for v, gu in zip(view, gold.split(counts),
                                                          strict=True)], 1).t()  # (n, P)
            norms = view.norm(dim=-1)
        loss = (dots * w_dot).sum() + ((norms * w_norm).sum() if norm_grad else 0)
        loss.backward()
        out.append([dots.detach(), norms.detach(), rel.grad, ent.grad, gold.grad,
                    *(p.grad for p in (kca.lin1.weight, kca.lin1.bias, kca.lin3.weight,
                                       kca.lin3.bias))])
    for a, b in zip(*out, strict=True):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-12)
    assert all(t.abs().sum() > 0 for t in out[1][2:])
    with pytest.raises(ValueError, match="counts"):
        kca.structure_dots(rel0, kca.prepare(ent0), gold0, [1, 1])


@pytest.mark.parametrize("mods", [("text", "image"), ("text",)])
def test_grid_views_equal_the_pairwise_views_in_value_and_gradient(mods):
    # the grid form's algebra (variances from relation x entity factor products, coefficients
    # contracted with affinity-weighted projected keys) = the pairwise form evaluated on
    # every (relation, entity) pair: values and every gradient, float64
    g = torch.Generator().manual_seed(2)
    kca = KCA(E, R, DT if "text" in mods else None, DI if "image" in mods else None,
              LT, LI, A, hidden_channels=11).double()
    u, p = 3, 4
    rel0, ent0, text0, image0 = (t.double() for t in _inputs(u, p, seed=4))
    lengths = torch.tensor([3, 1, 2, 3])
    w = {v: torch.randn(u, p, A if v != "structure" else E, generator=g, dtype=torch.float64)
         for v in kca.views}
    out = []
    for grid in (True, False):
        kca.zero_grad()
        rel, ent, text, image = (t.clone().requires_grad_() for t in (rel0, ent0, text0, image0))
        mod = {"text": text, "text_lengths": lengths} if "text" in mods else {}
        if "image" in mods:
            mod["image"] = image
        if grid:
            views = kca(rel, ent, **mod)
        else:  # every pair as its own pairwise query
            pairs = {k: (v.repeat(u, *[1] * (v.dim() - 1)) if torch.is_tensor(v) else v)
                     for k, v in mod.items()}
            views = {k: v.view(u, p, -1) for k, v in
                     kca(rel.repeat_interleave(p, 0), ent.repeat(u, 1), **pairs,
                         pairwise=True).items()}
        sum((views[v] * w[v]).sum() for v in kca.views).backward()
        out.append([*(views[v].detach() for v in kca.views), rel.grad, ent.grad,
                    *((text.grad,) if "text" in mods else ()),
                    *((image.grad,) if "image" in mods else ()),
                    *(q.grad for q in kca.parameters())])
    for a, b in zip(*out, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
