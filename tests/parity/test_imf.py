"""Parity of mmgnn's IMF with the released code (``HestiaSky/IMF-Pytorch`` at the spec commit;
spec ``IMF.md``): ``layers/layer.py`` (``TuckERLayer``, ``MutanLayer``), ``models/model.py``
(``IMF``: pooled trainable feature tables, four TuckER branches, ``loss_func``) and
``utils/data_loader.py`` (``ConvECorpus.get_batch``: the smoothed targets; the decision
fusion of ``get_validation_pred``). Outputs and gradients, float64, the weights copied with an
explicit mapping.

Dropout. Both sides apply dropout in training; to compare training-mode passes with dropout
*in place* (which tensor is dropped, and the 1/(1-p) rescaling), ``torch.nn.functional.dropout``
is replaced for the test by :func:`keyed_dropout`, and mmgnn's own mask draws
(:func:`mmgnn.nn.dropout.keep_mask`) by :func:`keyed_keep_mask`; their masks are a function of
each element's value: equal values get equal masks on both sides whatever the layout or call
order. (The released model draws separate masks for the fused head rows and the fused
candidate table; mmgnn fuses the table once and reads the head rows from it. With value-keyed
masks the two agree; with random masks they differ only in which independent draw a row
gets.)

Released-code settings of :class:`~mmgnn.models.IMF`: ``encoder="pool"``, ``decision="mean"``,
``contrastive_weight=0``, ``logit_bias=False``, ``core_init="xavier_uniform"``, the loss
:class:`~mmgnn.nn.losses.BCEWithLabelSmoothing` ``(0.1, form="released")``.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mmgnn.modalities import ModalityStore
from mmgnn.models import IMF
from mmgnn.nn import dropout as dropout_masks
from mmgnn.nn.fusion import TuckerFusion
from mmgnn.nn.kge import TuckER
from mmgnn.nn.losses import BCEWithLabelSmoothing
from mmgnn.sampling import QueryBatch
from tests.parity.conftest import assert_close, copy_params, load_reference

TOL = 1e-10  # float64, same operations up to summation order


def _fix_contrastive_loss(source: str) -> str:
    """``models/model.py`` does not compile as released: ``IMF.contrastive_loss`` (never
    called, spec ``IMF.md`` section 4) splits a tuple assignment over three lines. Joining the
    three lines is the repair; nothing the tests run is changed."""
    return re.sub(r"(= s_embed / torch\.norm\(s_embed\)),\s*\n\s*"
                  r"(v_embed / torch\.norm\(v_embed\)),\s*\n\s*"
                  r"(t_embed / torch\.norm\(t_embed\))", r"\1, \2, \3", source)


@pytest.fixture(scope="module")
def released():
    """The released ``layers.layer``, ``models.model`` and ``utils.data_loader`` modules."""
    return SimpleNamespace(
        layer=load_reference("IMF/layers/layer.py"),
        model=load_reference("IMF/models/model.py", fix_source=_fix_contrastive_loss),
        data_loader=load_reference("IMF/utils/data_loader.py"))


def keyed_dropout(input, p=0.5, training=True, inplace=False):
    """Inverted dropout whose keep-mask is a hash of each element's value (see the module
    docstring); the mask is a constant for autograd, as dropout's is."""
    if not training or p == 0.0:
        return input
    with torch.no_grad():
        keep = torch.frac(torch.sin(input * 12.9898) * 43758.5453).abs() >= p
    return input * keep / (1.0 - p)


def keyed_keep_mask(x, p, generator=None):
    """:func:`mmgnn.nn.dropout.keep_mask` keyed on the values, as :func:`keyed_dropout`."""
    return (torch.frac(torch.sin(x * 12.9898) * 43758.5453).abs() >= p).to(x.dtype)


@pytest.fixture
def keyed(monkeypatch):
    """Value-keyed masks for the released code (``nn.Dropout`` calls ``F.dropout``) and for
    mmgnn (``nn.Dropout`` too, and :mod:`mmgnn.nn.dropout` for TuckER's :math:`W_r` and the
    fusion's inputs)."""
    monkeypatch.setattr(F, "dropout", keyed_dropout)
    monkeypatch.setattr(dropout_masks, "keep_mask", keyed_keep_mask)


def _random_batch_norms(*bns: torch.nn.BatchNorm1d) -> None:
    """Non-trivial affine parameters and running statistics, so a wrong mapping shows."""
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
            bn.running_mean.normal_(0.0, 0.1)
            bn.running_var.uniform_(0.5, 2.0)


def _tucker_mapping(ours: TuckER, theirs) -> dict[torch.Tensor, torch.Tensor]:
    """``TuckERLayer`` -> :class:`TuckER` (no relation table: the released layer takes the
    relation vectors as input)."""
    return {ours.core: theirs.W,
            ours.bn0.weight: theirs.bn0.weight, ours.bn0.bias: theirs.bn0.bias,
            ours.bn0.running_mean: theirs.bn0.running_mean,
            ours.bn0.running_var: theirs.bn0.running_var,
            ours.bn1.weight: theirs.bn1.weight, ours.bn1.bias: theirs.bn1.bias,
            ours.bn1.running_mean: theirs.bn1.running_mean,
            ours.bn1.running_var: theirs.bn1.running_var}


def _mutan_mapping(ours: TuckerFusion, theirs) -> dict[torch.Tensor, list[torch.Tensor]]:
    """``MutanLayer``'s ``modal{m+1}_layers[i] = Sequential(Dropout, Linear, ReLU)`` ->
    :class:`TuckerFusion`'s ``weight[m]`` / ``bias[m]``, rank component ``i`` along dim 0."""
    mapping = {}
    for m, layers in enumerate([theirs.modal1_layers, theirs.modal2_layers,
                                theirs.modal3_layers]):
        mapping[ours.weight[m]] = [layers[i][1].weight for i in range(theirs.multi)]
        mapping[ours.bias[m]] = [layers[i][1].bias for i in range(theirs.multi)]
    return mapping


def _theirs(value: torch.Tensor | list[torch.Tensor], grad: bool = False) -> torch.Tensor:
    """A mapping's reference side (a list: stacked), or its gradient."""
    if isinstance(value, list):
        return torch.stack([v.grad if grad else v for v in value])
    return value.grad if grad else value


def _copy(mapping: dict) -> None:
    copy_params({ours: _theirs(theirs) for ours, theirs in mapping.items()})


def _grads_close(mapping: dict, tol: float, what: str) -> float:
    """Every mapped parameter's gradient against the reference's; the largest difference."""
    worst = 0.0
    for k, (ours, theirs) in enumerate(mapping.items()):
        if isinstance(ours, torch.nn.Parameter):
            worst = max(worst, assert_close(ours.grad, _theirs(theirs, grad=True), tol,
                                            f"{what} grad #{k} {tuple(ours.shape)}"))
    return worst


@pytest.mark.parametrize("training", [False, True])
def test_tucker_decoder(released, float64, keyed, training):
    torch.manual_seed(0)
    d, d_r, n_rel = 8, 4, 5
    theirs = released.layer.TuckERLayer(d, d_r)
    ours = TuckER(n_rel, d, d_r, core_init="xavier_uniform", own_relations=False)
    _random_batch_norms(theirs.bn0, theirs.bn1)
    _copy(_tucker_mapping(ours, theirs))
    theirs.train(training)
    ours.train(training)
    relations = torch.randn(n_rel, d_r, requires_grad=True)
    e = torch.randn(6, d, requires_grad=True)
    r = torch.tensor([0, 3, 3, 1, 4, 0])
    cand = torch.randn(9, d)
    ref = theirs(e, relations[r]) @ cand.t()  # IMF.forward: torch.mm(pred, table.T)
    ref_grads = torch.autograd.grad(ref.sin().sum(), [e, relations, theirs.W,
                                                      theirs.bn0.weight, theirs.bn1.bias])
    out = ours.score_t(e, r, cand, relations=relations)
    grads = torch.autograd.grad(out.sin().sum(), [e, relations, ours.core, ours.bn0.weight,
                                                   ours.bn1.bias])
    fwd = assert_close(out, ref, TOL, "TuckER scores")
    bwd = max(assert_close(ours_g, theirs_g, TOL, f"TuckER d/d {name}")
              for ours_g, theirs_g, name in zip(grads, ref_grads, [
                  "entity", "relations", "core", "bn0.weight", "bn1.bias"], strict=True))
    print(f"TuckER (training={training}): max |diff| output {fwd:.1e}, gradients {bwd:.1e}")
    if training:  # batch statistics were used and the running ones updated alike
        assert_close(ours.bn1.running_mean, theirs.bn1.running_mean, TOL, "bn1 running mean")


@pytest.mark.parametrize("training", [False, True])
def test_mutan_fusion(released, float64, keyed, training):
    torch.manual_seed(0)
    d = 8
    theirs = released.layer.MutanLayer(d, 2).train(training)
    ours = TuckerFusion(d, d, num_modalities=3, rank=2, dropout=0.2).train(training)
    mapping = _mutan_mapping(ours, theirs)
    _copy(mapping)
    xs = [torch.randn(7, d, requires_grad=True) for _ in range(3)]
    ref = theirs(*xs)
    ref.pow(2).sum().backward()
    ref_x = [x.grad.clone() for x in xs]
    for x in xs:
        x.grad = None
    out = ours(xs)
    out.pow(2).sum().backward()
    fwd = assert_close(out, ref, TOL, "Mutan output")
    bwd = max([assert_close(xs[m].grad, ref_x[m], TOL, f"Mutan d/d x_{m}") for m in range(3)]
              + [_grads_close(mapping, TOL, "Mutan")])
    print(f"Mutan fusion (training={training}): max |diff| output {fwd:.1e}, gradients "
          f"{bwd:.1e}")
    assert (ref > 0).any() and (ref == 0).any()  # both sides of the outer ReLU exercised


# --------------------------------------------------------------------------- the whole IMF
N, R, B = 11, 3, 6  # entities, relations; the released pooling fixes dim = 256


def _released_imf(released, img, txt):
    """The released ``IMF`` as ``main.py`` builds it: features L2-normalised per row
    (``main.py``: ``F.normalize(torch.Tensor(...), p=2, dim=1)``), dim = r_dim = 256."""
    args = SimpleNamespace(device="cpu", entity2id={f"e{i}": i for i in range(N)},
                           relation2id={f"r{j}": j for j in range(R)}, dim=256, r_dim=256,
                           pre_trained=0, img=F.normalize(img, p=2, dim=1),
                           desp=F.normalize(txt, p=2, dim=1))
    return released.model.IMF(args).double()


def _imf_mapping(ours: IMF, theirs) -> dict:
    """Released ``IMF`` -> :class:`~mmgnn.models.IMF` with views (structure, image, text):
    branches S, I, D, MM = ``view_decoders[structure | image | text]``, ``decoder``."""
    mapping = {ours.entity.weight: theirs.entity_embeddings.weight,
               ours.tables["image"].weight: theirs.img_entity_embeddings.weight,
               ours.tables["text"].weight: theirs.txt_entity_embeddings.weight,
               ours.view_decoders["structure"].rel_emb.weight: theirs.relation_embeddings.weight,
               ours.view_decoders["image"].rel_emb.weight: theirs.img_relation_embeddings.weight,
               ours.view_decoders["text"].rel_emb.weight: theirs.txt_relation_embeddings.weight}
    for dec, layer in [(ours.view_decoders["structure"], theirs.TuckER_S),
                       (ours.view_decoders["image"], theirs.TuckER_I),
                       (ours.view_decoders["text"], theirs.TuckER_D),
                       (ours.decoder, theirs.TuckER_MM)]:
        mapping.update(_tucker_mapping(dec, layer))
    mapping.update(_mutan_mapping(ours.entity_fusion, theirs.Mutan_MM_E))
    mapping.update(_mutan_mapping(ours.relation_fusion, theirs.Mutan_MM_R))
    return mapping


@pytest.fixture(scope="module")
def imf_pair(released):
    """(ours, theirs, mapping, corpus) at dim 256, float64, the weights copied."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        img, txt = torch.randn(N, 4096, dtype=torch.float32), torch.randn(N, 768,
                                                                          dtype=torch.float32)
        theirs = _released_imf(released, img, txt)
        ours = IMF(N, R, ModalityStore({"image": img, "text": txt}), dim=256,
                   encoder="pool", decision="mean", contrastive_weight=0.0, logit_bias=False)
        assert ours.view_names == ["structure", "image", "text"]
        # The pool encoder's initial tables are the released pooled features (float32 ops).
        assert_close(ours.tables["image"].weight, theirs.img_entity_embeddings.weight, 1e-7,
                     "pooled image table")
        assert_close(ours.tables["text"].weight, theirs.txt_entity_embeddings.weight, 1e-7,
                     "pooled text table")
        for layer in [theirs.TuckER_S, theirs.TuckER_I, theirs.TuckER_D, theirs.TuckER_MM]:
            _random_batch_norms(layer.bn0, layer.bn1)
        mapping = _imf_mapping(ours, theirs)
        _copy(mapping)
        own = {id(t) for t in mapping}
        assert all(id(p) in own for p in ours.parameters())  # every parameter mapped
        train = [(h, r, t) for h, r, t in [(0, 0, 1), (0, 0, 2), (3, 1, 0), (4, 2, 5),
                                           (6, 1, 7), (8, 0, 9), (10, 2, 3), (2, 1, 4)]]
        corpus = released.data_loader.ConvECorpus(
            SimpleNamespace(device="cpu", batch_size=B), (train, ([], [], [])), ([],), ([],),
            {f"e{i}": i for i in range(N)}, {f"r{j}": j for j in range(R)})
        yield ours, theirs, mapping, corpus
    finally:
        torch.set_default_dtype(previous)


def test_imf_eval_branches_and_decision_fusion(imf_pair):
    ours, theirs, _, _ = imf_pair
    ours.eval()
    theirs.eval()
    queries = torch.tensor([[0, 0, -1], [3, 4, -1], [10, 5, -1], [7, 2, -1]])  # r >= R: inverse
    with torch.no_grad():
        ref = theirs(queries)  # [p_s, p_i, p_d, p_mm], sigmoid probabilities (B, N)
        x = ours.encode()
        branch = ours.branch_scores(x, queries[:, 0], queries[:, 1])
        worst = max(assert_close(torch.sigmoid(branch[b]), ref[b], TOL, f"eval branch {name}")
                    for b, name in enumerate(["S", "I", "D", "MM"]))
        # Decision fusion: utils/data_loader.py get_validation_pred,
        # pred = (pred[0] + pred[1] + pred[2] + pred[3]) / 4.0
        mean = (ref[0] + ref[1] + ref[2] + ref[3]) / 4.0
        tails = ours.score_tails(x, queries[:2, 0], queries[:2, 1])
        # Head queries (?, r, t) are the released (t, r + R) rows.
        heads = ours.score_heads(x, queries[2:, 1] - R, queries[2:, 0])
        fused = max(assert_close(torch.sigmoid(tails), mean[:2], TOL, "decision fusion, tails"),
                    assert_close(torch.sigmoid(heads), mean[2:], TOL, "decision fusion, heads"))
    print(f"IMF eval: max |diff| branch probabilities {worst:.1e}, decision fusion {fused:.1e}")


def test_imf_training_loss_and_gradients(imf_pair, keyed):
    """One released training step's loss (``loss_func(forward(x), targets)``, the call of the
    fork named in spec ``IMF.md``) on a ``ConvECorpus.get_batch`` batch, against
    :meth:`IMF.loss` with the released label smoothing; every parameter's gradient."""
    ours, theirs, mapping, corpus = imf_pair
    ours.train()
    theirs.train()
    ours.zero_grad()
    theirs.zero_grad()
    idx, targets = corpus.get_batch(0)  # (B, 3) queries, 0.9 y + 1/N as float32
    assert len(idx) == B and (idx[:, 1] >= R).any()
    loss_ref = theirs.loss_func(theirs(idx), targets.double())
    loss_ref.backward()
    rows, cols = [], []
    for q, item in enumerate(corpus.train_indices[:B]):
        rows += [q] * len(item["label"])
        cols += list(item["label"])
    batch = QueryBatch("tail", idx[:, 0], idx[:, 1], target_rows=torch.tensor(rows),
                       target_cols=torch.tensor(cols))
    loss = ours.loss(ours.encode(), batch, BCEWithLabelSmoothing(0.1, form="released"))
    loss.backward()
    # The released targets are float32 (0.9 y + 1/N rounded to ~6e-8): that, not the model,
    # bounds the agreement of the loss and of the gradients.
    fwd = assert_close(loss, loss_ref, 1e-7, "IMF loss")
    bwd = _grads_close(mapping, 1e-8, "IMF")
    print(f"IMF training step: max |diff| loss {fwd:.1e}, gradients {bwd:.1e}")
    assert_close(ours.decoder.bn0.running_mean, theirs.TuckER_MM.bn0.running_mean, TOL,
                 "MM bn0 running mean")
