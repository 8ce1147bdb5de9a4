"""Sparse entity tables and row-wise AdaGrad: the update against its written-out formula, sparse
equal to dense, and a sparse KGEModel trained by the Trainer equal to the dense one."""

from __future__ import annotations

import pytest
import torch

from mmgnn.data import synthetic_kg
from mmgnn.models import KGEModel
from mmgnn.train import TrainConfig, fit
from mmgnn.train.optim import RowAdagrad


def test_row_adagrad_formula():
    torch.manual_seed(0)
    w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    opt = RowAdagrad([w, b], lr=0.1, eps=1e-10, initial_accumulator_value=0.5)
    ref_w, ref_b = w.detach().clone(), b.detach().clone()
    acc_w, acc_b = torch.full((5,), 0.5, dtype=torch.float64), torch.full((4,), 0.5,
                                                                           dtype=torch.float64)
    for _ in range(3):
        gw, gb = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
        gw[2] = 0.0  # a row without gradient does not move
        w.grad, b.grad = gw.clone(), gb.clone()
        opt.step()
        for i in range(5):
            acc_w[i] += sum(float(g) ** 2 for g in gw[i]) / 3
            ref_w[i] -= 0.1 * gw[i] / (acc_w[i].sqrt() + 1e-10)
        acc_b += gb * gb
        ref_b -= 0.1 * gb / (acc_b.sqrt() + 1e-10)
    torch.testing.assert_close(w.detach(), ref_w, rtol=0, atol=1e-12)
    torch.testing.assert_close(b.detach(), ref_b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls, kwargs", [(RowAdagrad, {"lr": 0.1}),
                                         (torch.optim.Adagrad, {"lr": 0.1})])
def test_sparse_gradient_equals_dense(cls, kwargs):
    torch.manual_seed(1)
    init = torch.randn(50, 8)
    dense = torch.nn.Embedding.from_pretrained(init.clone(), freeze=False)
    sparse = torch.nn.Embedding.from_pretrained(init.clone(), freeze=False, sparse=True)
    opts = [cls(dense.parameters(), **kwargs), cls(sparse.parameters(), **kwargs)]
    for step in range(4):
        ids = torch.randint(50, (30,), generator=torch.Generator().manual_seed(step))  # repeats
        target = torch.randn(30, 8, generator=torch.Generator().manual_seed(100 + step))
        for emb, opt in zip((dense, sparse), opts, strict=True):
            opt.zero_grad()
            ((emb(ids) - target) ** 2).sum().backward()
            opt.step()
    assert sparse.weight.grad.is_sparse
    torch.testing.assert_close(sparse.weight, dense.weight, rtol=0, atol=1e-6)
    assert not torch.equal(dense.weight, init)


def test_row_adagrad_state_is_one_float_per_row():
    emb = torch.nn.Embedding(1000, 16, sparse=True)
    opt = RowAdagrad(emb.parameters())
    emb(torch.tensor([1, 2, 3])).sum().backward()
    opt.step()
    assert opt.state[emb.weight]["sum"].shape == (1000,)


@pytest.mark.parametrize("decoder, optimizer", [("transe", "row_adagrad"), ("transe", "adagrad"),
                                                ("complex", "sgd")])
def test_sparse_model_trains_like_dense(decoder, optimizer):
    kg = synthetic_kg(300, 3000, num_relations=5, seed=0)
    cfg = TrainConfig(optimizer=optimizer, lr=0.05, epochs=2, batch_size=256, num_negatives=4,
                      eval_every=0, seed=0)
    models = []
    for sparse in (False, True):
        torch.manual_seed(0)
        model = KGEModel(kg.num_entities, kg.num_relations, decoder, dim=8, sparse=sparse)
        fit(model, kg, cfg, progress=False)
        models.append(model)
    dense, sparse = models
    assert sparse.entity.weight.grad.is_sparse
    for (name, a), b in zip(dense.state_dict().items(), sparse.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=2e-5, msg=name)
    torch.manual_seed(0)
    fresh = KGEModel(kg.num_entities, kg.num_relations, decoder, dim=8)
    assert not torch.allclose(fresh.entity.weight, dense.entity.weight, atol=1e-3)


def test_sparse_model_refuses_one_to_all():
    kg = synthetic_kg(100, 500, num_relations=3, seed=0)
    model = KGEModel(kg.num_entities, kg.num_relations, "distmult", dim=4, sparse=True)
    cfg = TrainConfig(regime="1vsall", epochs=1, batch_size=64, eval_every=0)
    with pytest.raises(ValueError, match="negative sampling"):
        fit(model, kg, cfg, progress=False)


def test_row_adagrad_errors():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="weight decay"):
        RowAdagrad(p, weight_decay=0.1)
    with pytest.raises(TypeError, match="fused"):
        RowAdagrad(p, fused=True)
