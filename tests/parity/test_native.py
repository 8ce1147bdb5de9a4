"""Parity of NativE with its released code (zjukg/NATIVE, ``../shared/reference/NATIVE``;
spec ``NativE.md``): ReDAF (``get_joint_embeddings``), the RotatE score (``_calc``, both
modes), the whole model's scores and gradients (``AdvRelRotatE`` with two modalities,
``AdvRelRotatEDB15K`` with three, the DB15K text table trainable), the CoMAT generator
(``CombinedGenerator{,3}``), the self-adversarial loss (``SigmoidLoss``), the WGAN-GP
penalty (released head-only ``calc_gradient_penalty`` and the full form) and one whole
training step of the released trainers (``WCGTrainerGP`` / ``WCGTrainerDB15KGP``: critic and
generator), all in float64.

The released files are imported as they are. They call ``.cuda()``: the tests make
``Tensor.cuda`` and ``Module.cuda`` no-ops while they run. OpenKE's C++ sampler
(``release/Base.so``) is only loaded by ``TrainDataLoader``, which no test imports: batches
are built here in the released layout (``[B positives ; K blocks of B negatives]``).

mmgnn's defaults differ from the released code where the release is a bug or a no-op
(``NativE``'s docstring): the whole-step test uses the released forms,
``penalty="released"`` and ``critic_through_generator=True``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmgnn.modalities import ModalityStore
from mmgnn.models import NativE
from mmgnn.nn.fusion import ModalityGenerator, ReDAF, gradient_penalty
from mmgnn.nn.kge import RotatE
from mmgnn.nn.losses import SelfAdversarialLoss
from mmgnn.sampling import NegativeBatch
from tests.parity.conftest import REFERENCE, assert_close, copy_params, load_reference, stub_module

TOL = 1e-10  # float64 throughout
N, R, DIM, B, K = 12, 5, 6, 7, 3


@pytest.fixture
def no_cuda(monkeypatch):
    """``.cuda()`` of tensors and modules is the identity (the released code is GPU-only)."""
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)


def _package_shims() -> dict:
    """The released ``mmkgc`` packages as stubs whose submodules load from the release (so
    its relative imports resolve without running the ``__init__`` files, which import every
    baseline and trainer)."""
    root = REFERENCE / "NATIVE" / "mmkgc"
    names = ["mmkgc", "mmkgc.module", "mmkgc.module.model", "mmkgc.module.loss",
             "mmkgc.module.strategy", "mmkgc.config", "mmkgc.adv"]
    return {n: stub_module(n, root.joinpath(*n.split(".")[1:])) for n in names}


def _load(relpath: str):
    """``NATIVE/mmkgc/<relpath>.py`` as module ``mmkgc.<dotted relpath>``."""
    return load_reference(f"NATIVE/mmkgc/{relpath}.py",
                          "mmkgc." + relpath.replace("/", "."), shims=_package_shims())


def _grads(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, tensors, allow_unused=True, retain_graph=True))


# ------------------------------------------------------------------------ ReDAF
def test_redaf_matches_get_joint_embeddings(float64):
    ref_module = _load("module/model/AdvRelRotatEDB15K")
    torch.manual_seed(0)
    width = 2 * DIM
    ref = ref_module.AdvRelRotatEDB15K(N, R, dim=DIM, margin=4.0, img_emb=torch.randn(N, 4096),
                                       text_emb=torch.randn(N, 768),
                                       numeric_emb=torch.randn(N, 768))
    ours = ReDAF(width, R)
    copy_params({ours.attention.weight: ref.ent_attn.weight,
                 ours.gate.weight: ref.rel_gate.weight})
    views = [torch.randn(B, width, requires_grad=True) for _ in range(4)]
    r = torch.randint(R, (B,))
    theirs = ref.get_joint_embeddings(*views, ref.rel_gate(r))
    got = ours(torch.stack(views, dim=1), None, r)
    assert_close(got, theirs, TOL, "ReDAF output")
    weights = [ref.ent_attn.weight, ref.rel_gate.weight]
    g_ref = _grads((theirs * torch.arange(width)).sum(), views + weights)
    g_got = _grads((got * torch.arange(width)).sum(),
                   views + [ours.attention.weight, ours.gate.weight])
    for a, b, what in zip(g_got, g_ref, ["e_s", "e_img", "e_txt", "e_num", "w", "g"],
                          strict=True):
        assert_close(a, b, TOL, f"ReDAF gradient w.r.t. {what}")


# ------------------------------------------------------------------ RotatE score
@pytest.mark.parametrize("mode", ["normal", "head_batch"])
def test_rotate_score_matches_calc(float64, mode):
    ref_module = _load("module/model/AdvRelRotatE")
    torch.manual_seed(1)
    ref = ref_module.AdvRelRotatE(N, R, dim=DIM, margin=4.0, img_emb=torch.randn(N, 5),
                                  text_emb=torch.randn(N, 3))
    ours = RotatE(R, DIM, margin=4.0)
    copy_params({ours.rel_emb.weight: ref.rel_embeddings.weight})
    h, t = (torch.randn(B, 2 * DIM, requires_grad=True) for _ in range(2))
    r = torch.randint(R, (B,))
    theirs = ref.margin - ref._calc(h, t, ref.rel_embeddings(r), mode)
    got = ours.score_hrt(h, r, t)
    assert_close(got, theirs, TOL, f"RotatE score ({mode})")
    g_ref = _grads((theirs * torch.arange(B)).sum(), [h, t, ref.rel_embeddings.weight])
    g_got = _grads((got * torch.arange(B)).sum(), [h, t, ours.rel_emb.weight])
    for a, b, what in zip(g_got, g_ref, ["h", "t", "r"], strict=True):
        assert_close(a, b, TOL, f"RotatE score gradient w.r.t. {what} ({mode})")


# ------------------------------------------------------------- the whole model
MODALITIES = {2: ["image", "text"], 3: ["image", "text", "numeric"]}


def _released(n_modal: int, margin: float):
    """The released model, generator and trainer module for 2 (MKG-W) or 3 (DB15K)
    modalities, with their released feature widths."""
    torch.manual_seed(2)
    if n_modal == 2:
        model = _load("module/model/AdvRelRotatE").AdvRelRotatE(
            N, R, dim=DIM, margin=margin, img_emb=torch.randn(N, 10),
            text_emb=torch.randn(N, 7))
        gen = _load("adv/modules").CombinedGenerator(noise_dim=64, structure_dim=2 * DIM,
                                                      img_dim=2 * DIM)
        return model, gen, _load("config/WCGTrainerGP").WCGTrainerGP
    model = _load("module/model/AdvRelRotatEDB15K").AdvRelRotatEDB15K(
        N, R, dim=DIM, margin=margin, img_emb=torch.randn(N, 4096),
        text_emb=torch.randn(N, 768), numeric_emb=torch.randn(N, 768))
    gen = _load("adv/modules").CombinedGenerator3(noise_dim=64, structure_dim=2 * DIM,
                                                   img_dim=3 * DIM)
    return model, gen, _load("config/WCGTrainerDB15KGP").WCGTrainerDB15KGP


def _ours(ref, ref_gen, n_modal: int, margin: float, **kwargs) -> NativE:
    """NativE with the released model's weights: an explicit mapping, feature tables as the
    released model holds them (DB15K: after its pooling to 256, a data preparation step
    outside mmgnn's model; its text table trainable). mmgnn keeps fixed features in float32:
    the released tables are rounded to float32 first, on both sides."""
    names = MODALITIES[n_modal]
    with torch.no_grad():
        for table in (ref.img_embeddings, ref.text_embeddings,
                      getattr(ref, "numeric_embeddings", None)):
            if table is not None:
                table.weight.copy_(table.weight.float().double())
    tables = {"image": ref.img_embeddings.weight, "text": ref.text_embeddings.weight}
    projections = {"image": ref.img_proj, "text": ref.text_proj}
    if n_modal == 3:
        tables["numeric"] = ref.numeric_embeddings.weight
        projections["numeric"] = ref.numeric_proj
    store = ModalityStore({m: tables[m].detach().clone() for m in names})
    ours = NativE(N, R, store, RotatE(R, DIM, margin=margin),
                  trainable_features=["text"] if n_modal == 3 else False, **kwargs)
    mapping = {ours.entity.weight: ref.ent_embeddings.weight,
               ours.decoder.rel_emb.weight: ref.rel_embeddings.weight,
               ours.fusion.attention.weight: ref.ent_attn.weight,
               ours.fusion.gate.weight: ref.rel_gate.weight,
               ours.generator.net[0].weight: ref_gen.generator.generator_model[0].weight,
               ours.generator.net[0].bias: ref_gen.generator.generator_model[0].bias,
               ours.generator.net[2].weight: ref_gen.generator.generator_model[2].weight,
               ours.generator.net[2].bias: ref_gen.generator.generator_model[2].bias}
    for m in names:
        for i in (0, 2):
            mapping[ours.projections[m][i].weight] = projections[m][i].weight
            mapping[ours.projections[m][i].bias] = projections[m][i].bias
    if n_modal == 3:
        mapping[ours.feature_tables["text"]] = ref.text_embeddings.weight
    copy_params(mapping)
    return ours


def _pairs(ours: NativE, ref) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, mmgnn parameter, released parameter) of every trained parameter."""
    pairs = [("entity", ours.entity.weight, ref.ent_embeddings.weight),
             ("relation", ours.decoder.rel_emb.weight, ref.rel_embeddings.weight),
             ("attention", ours.fusion.attention.weight, ref.ent_attn.weight),
             ("gate", ours.fusion.gate.weight, ref.rel_gate.weight)]
    projections = {"image": ref.img_proj, "text": ref.text_proj}
    if hasattr(ref, "numeric_proj"):
        projections["numeric"] = ref.numeric_proj
        pairs.append(("text table", ours.feature_tables["text"], ref.text_embeddings.weight))
    for m, proj in projections.items():
        for i in (0, 2):
            pairs.append((f"{m} proj {i} weight", ours.projections[m][i].weight, proj[i].weight))
            pairs.append((f"{m} proj {i} bias", ours.projections[m][i].bias, proj[i].bias))
    return pairs


def _batch(seed: int):
    """Positives (B, 3), one-sided negatives (B, K, 3) and the released layout's dict."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.stack([torch.randint(N, (B,), generator=g), torch.randint(R, (B,), generator=g),
                       torch.randint(N, (B,), generator=g)], dim=1)
    cand = torch.randint(N, (B, K), generator=g)
    head = torch.rand(B, K, generator=g) < 0.5
    neg = torch.stack([torch.where(head, cand, pos[:, :1]), pos[:, 1:2].expand(B, K),
                       torch.where(head, pos[:, 2:], cand)], dim=-1)
    # released layout: row B + k B + b is negative k of positive b
    rows = torch.cat([pos, neg.transpose(0, 1).reshape(K * B, 3)])
    data = {"batch_h": rows[:, 0].numpy(), "batch_r": rows[:, 1].numpy(),
            "batch_t": rows[:, 2].numpy(), "batch_y": np.zeros(len(rows), dtype=np.float32),
            "mode": "normal"}
    return pos, neg, data


def _released_loss(n_modal: int, ref, regul: float):
    strategy = _load("module/strategy/NegativeSamplingGP")
    loss = _load("module/loss/SigmoidLoss").SigmoidLoss(adv_temperature=2.0)
    return strategy.NegativeSamplingGP(model=ref, loss=loss, batch_size=B, regul_rate=regul)


@pytest.mark.parametrize("n_modal", [2, 3])
def test_model_scores_loss_and_gradients(float64, n_modal):
    margin, regul = (4.0, 1e-5) if n_modal == 2 else (12.0, 0.0)  # the released scripts
    ref, ref_gen, _ = _released(n_modal, margin)
    ours = _ours(ref, ref_gen, n_modal, margin, regularization=regul).eval()  # KGC loss only
    pos, neg, data = _batch(3)
    feed = {k: torch.from_numpy(v) if k != "mode" else v for k, v in data.items()}
    scores = ref(feed)
    x = ours.encode()
    p, n = ours.score_with_negatives(x, pos, neg)
    assert_close(p, scores[:B], TOL, "positive scores")
    assert_close(n, scores[B:].view(K, B).t(), TOL, "negative scores")
    assert_close(ours.score_triples(x, *neg.unbind(-1)), n, TOL, "per-triple scores")
    loss_ref, _, _ = _released_loss(n_modal, ref, regul)(feed)
    loss = ours.loss(x, NegativeBatch(pos, neg), SelfAdversarialLoss(0.0, 2.0))
    assert_close(loss, loss_ref, TOL, "KGC loss with the L2 term")
    pairs = _pairs(ours, ref)
    g_got = _grads(loss, [a for _, a, _ in pairs])
    g_ref = _grads(loss_ref, [b for _, _, b in pairs])
    for (what, _, _), a, b in zip(pairs, g_got, g_ref, strict=True):
        assert_close(a, b, TOL, f"KGC loss gradient w.r.t. {what}")


# ------------------------------------------------------------------ generator
@pytest.mark.parametrize("n_modal", [2, 3])
def test_generator_matches_combined_generator(float64, no_cuda, n_modal):
    _, ref_gen, _ = _released(n_modal, 4.0)
    ours = ModalityGenerator(2 * DIM, 1 + n_modal)
    copy_params({ours.net[0].weight: ref_gen.generator.generator_model[0].weight,
                 ours.net[0].bias: ref_gen.generator.generator_model[0].bias,
                 ours.net[2].weight: ref_gen.generator.generator_model[2].weight,
                 ours.net[2].bias: ref_gen.generator.generator_model[2].bias})
    views = [torch.randn(B, 2 * DIM, requires_grad=True) for _ in range(1 + n_modal)]
    torch.manual_seed(4)
    theirs = torch.stack(ref_gen(*views), dim=1)
    torch.manual_seed(4)  # the same noise draws
    got = ours(torch.stack(views, dim=1))
    assert_close(got, theirs, TOL, "generator output")
    weights = torch.randn(got.shape)
    g_ref = _grads((theirs * weights).sum(), views + list(ref_gen.parameters()))
    g_got = _grads((got * weights).sum(), views + list(ours.parameters()))
    for a, b in zip(g_got, g_ref, strict=True):
        assert_close(a, b, TOL, "generator gradient")


# ------------------------------------------------------------------------ loss
def test_self_adversarial_loss_matches_sigmoid_loss(float64):
    ref = _load("module/loss/SigmoidLoss").SigmoidLoss(adv_temperature=2.0)
    torch.manual_seed(5)
    p, n = torch.randn(B, 1, requires_grad=True), 3 * torch.randn(B, K, requires_grad=True)
    theirs = ref(p, n)
    got = SelfAdversarialLoss(0.0, 2.0)(p.view(B), n)
    assert_close(got, theirs, TOL, "self-adversarial loss")
    for a, b in zip(_grads(got, [p, n]), _grads(theirs, [p, n]), strict=True):
        assert_close(a, b, TOL, "self-adversarial loss gradient")


# ------------------------------------------------------------- gradient penalty
def _penalty_setup(seed: int):
    ref, ref_gen, trainer_cls = _released(2, 4.0)
    trainer = trainer_cls(model=_released_loss(2, ref, 0.0), data_loader=None, use_gpu=False,
                          generator=ref_gen, lrg=1e-3, mu=1e-4)
    torch.manual_seed(seed)
    real = [torch.randn(B, 2 * DIM), ref.rel_embeddings.weight[torch.randint(R, (B,))],
            torch.randn(B, 2 * DIM)]
    fake = [torch.randn(B, 2 * DIM), real[1], torch.randn(B, 2 * DIM)]
    return ref, trainer, real, fake


def test_gradient_penalty_head_form_matches_calc_gradient_penalty(float64, no_cuda):
    ref, trainer, real, fake = _penalty_setup(6)
    torch.manual_seed(7)
    theirs = trainer.calc_gradient_penalty(real, fake)
    torch.manual_seed(7)  # the same interpolation weights
    got = trainer.beta * gradient_penalty(ref.cal_score, real, fake, "head")
    assert_close(got, theirs, TOL, "released (head-only) gradient penalty")
    # For RotatE the head's gradient has norm sqrt(d) everywhere: the released penalty is
    # the constant beta (sqrt(d) - 1)^2 (spec NativE.md, gotcha 3).
    assert abs(float(theirs.detach()) - 0.1 * (math.sqrt(DIM) - 1) ** 2) < TOL


def test_gradient_penalty_full_form_matches_row_by_row_autograd(float64, no_cuda):
    ref, _, real, fake = _penalty_setup(8)
    torch.manual_seed(9)
    alpha = torch.rand(B)
    got = gradient_penalty(ref.cal_score, real, fake, "full", alpha=alpha)
    terms = []
    for i in range(B):  # independent reference: one row at a time, all three inputs
        xs = [(alpha[i] * a[i:i + 1] + (1 - alpha[i]) * b[i:i + 1]).detach().requires_grad_()
              for a, b in zip(real, fake, strict=True)]
        grads = torch.autograd.grad(ref.cal_score(xs).sum(), xs)
        terms.append((torch.cat([g.view(-1) for g in grads]).norm() - 1) ** 2)
    assert_close(got, torch.stack(terms).mean(), TOL, "full gradient penalty")
    head = gradient_penalty(ref.cal_score, real, fake, "head", alpha=alpha)
    assert float(got - head) > 1e-3  # the relation and tail gradients count here


# -------------------------------------------------------------- one whole step
@pytest.mark.parametrize("n_modal", [2, 3])
def test_one_training_step_matches_the_released_trainer(float64, no_cuda, n_modal):
    """One critic step and one generator step: the released trainer's ``train_one_step``
    with SGD (so each parameter's change is -lr times its gradient) against NativE's
    ``loss`` and ``extra_losses`` with the released forms, the same random draws (noise,
    interpolation weights) from the same seed."""
    margin, regul, mu, lr = (4.0, 1e-5, 0.3, 1e-2) if n_modal == 2 else (12.0, 0.0, 0.3, 1e-2)
    ref, ref_gen, trainer_cls = _released(n_modal, margin)
    ours = _ours(ref, ref_gen, n_modal, margin, mu=mu, penalty="released",
                 critic_through_generator=True, regularization=regul)
    pairs = _pairs(ours, ref)
    before = [b.detach().clone() for _, _, b in pairs]
    gen_before = [p.detach().clone() for p in ref_gen.parameters()]
    trainer = trainer_cls(model=_released_loss(n_modal, ref, regul), data_loader=None,
                          use_gpu=False, generator=ref_gen, lrg=lr, mu=mu)
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=lr)
    trainer.optimizer_g = torch.optim.SGD(ref_gen.parameters(), lr=lr)
    pos, neg, data = _batch(10)
    torch.manual_seed(11)
    loss_d_ref, loss_g_ref = trainer.train_one_step(data)
    torch.manual_seed(11)  # same generator noise and penalty weights, in the same order
    ours.train()
    loss = ours.loss(ours.encode(), NegativeBatch(pos, neg), SelfAdversarialLoss(0.0, 2.0))
    assert abs(float(loss) - loss_d_ref) < TOL, "critic loss"
    # mu = 0.3 (the scripts: 1e-4) so that the adversarial terms show in the comparison
    params = [a for _, a, _ in pairs]
    for (what, _, _), g, b0, (_, _, b) in zip(pairs, _grads(loss, params), before, pairs,
                                             strict=True):
        released = (b0 - b.detach()) / lr
        assert_close(g if g is not None else torch.zeros_like(b0), released, 1e-8,
                     f"critic step gradient w.r.t. {what}")
    with torch.no_grad():  # the critic step's update, then the generator's step
        for p, g in zip(params, _grads(loss, params), strict=True):
            p -= lr * g
    extra = ours.extra_losses()["generator"]
    # released L_G = mean over the three fakes of (margin - f): ours less the margin
    assert abs(float(extra) + margin - loss_g_ref) < 1e-9, "generator loss"
    gen = list(ours.generator.parameters())
    for g, p0, p in zip(_grads(extra, gen), gen_before, ref_gen.parameters(), strict=True):
        assert_close(g, (p0 - p.detach()) / lr, 1e-8, "generator step gradient")
