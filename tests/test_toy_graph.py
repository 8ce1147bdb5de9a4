"""The toy graph shipped in ``tests/assets/toy``: read through the public readers, in sync with
its generator, and learnable (so the learning tests need no downloaded data and never skip)."""

from __future__ import annotations

import warnings

import pytest
import torch

from mmgnn.eval import evaluate
from mmgnn.eval.robustness import robustness_sweep
from mmgnn.models import build_model
from mmgnn.train import TrainConfig, fit
from tests.assets import make_toy
from tests.helpers import TOY, TOY_RANDOM_MRR


def test_files_are_what_the_generator_writes():
    for name, lines in make_toy.build().items():
        assert (TOY / name).read_text(encoding="utf-8") == "\n".join(lines) + "\n", name


def test_loads_through_the_readers_with_partial_modalities(toy_kg):
    kg = toy_kg
    assert (kg.num_entities, kg.num_relations) == (264, 6)
    assert (len(kg.train), len(kg.valid), len(kg.test)) == (1325, 130, 129)
    assert kg.features["numeric"].shape == (264, 4)
    present = kg.masks["numeric"]
    assert 0 < int(present.sum()) < kg.num_entities  # some entities lack every attribute
    names = kg.texts["name"]
    assert 0 < sum(t is None for t in names) < kg.num_entities
    # every valid/test entity is seen in training (a held-out fact, not an unseen entity)
    seen = torch.zeros(kg.num_entities, dtype=torch.bool)
    seen[kg.train[:, [0, 2]].flatten()] = True
    assert bool(seen[kg.valid[:, [0, 2]]].all()) and bool(seen[kg.test[:, [0, 2]]].all())


@pytest.mark.parametrize("regime", ["1vsall", "kvsall", "negative"])
def test_distmult_learns_the_toy_graph_well_above_chance(toy_kg, regime):
    torch.manual_seed(0)
    reciprocal = regime != "negative"
    kg = toy_kg
    model = build_model("distmult", kg, dim=32, reciprocal=reciprocal)
    untrained = evaluate(model, kg, "test", progress=False).mrr
    cfg = TrainConfig(regime=regime, epochs=20, batch_size=128, lr=0.05, eval_every=10,
                      num_negatives=8, loss="softplus" if regime == "negative" else None)
    trainer = fit(model, kg, cfg, progress=False)
    test = evaluate(model, kg, "test", progress=False).mrr
    # a random ranking of 264 entities scores about 0.024; DistMult reaches 0.7 to 0.9 in 1 s
    assert untrained < 3 * TOY_RANDOM_MRR
    assert test > 0.5, f"{regime}: test MRR {test:.3f} after training"
    assert trainer.best_mrr > 0.5


def _learns(kg, model, config, floor: float) -> tuple[float, float]:
    """Valid MRR before and after ``fit``; asserts a clear gain over a random ranking."""
    untrained = evaluate(model, kg, "valid", progress=False).mrr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. MMRNS on a graph without image features
        fit(model, kg, config, progress=False)
    trained = evaluate(model, kg, "valid", progress=False).mrr
    assert untrained < 3 * TOY_RANDOM_MRR, untrained
    assert trained > floor, f"valid MRR {untrained:.3f} -> {trained:.3f} after training"
    return untrained, trained


def test_imf_learns_with_the_numeric_modality(toy_kg):
    # IMF's own recipe (kvsall, BCE, label smoothing) at toy size; 0.65 when written
    torch.manual_seed(0)
    model = build_model("imf", toy_kg, dim=32)
    assert model.view_names == ["structure", "numeric"]
    config = TrainConfig(**{**type(model).train_defaults, "epochs": 10, "batch_size": 64,
                            "lr": 0.01, "eval_every": 0, "patience": 0})
    _learns(toy_kg, model, config, floor=0.4)


def test_native_learns_and_its_robustness_sweep_restores_the_features(toy_kg):
    # NativE's loss settings (self-adversarial), Bernoulli negatives; 0.63 when written
    torch.manual_seed(0)
    model = build_model("native", toy_kg, dim=32, margin=3.0)
    config = TrainConfig(**{**type(model).train_defaults, "sampler": "bernoulli",
                            "num_negatives": 16, "epochs": 8, "batch_size": 256, "lr": 0.02,
                            "eval_every": 0, "patience": 0})
    _learns(toy_kg, model, config, floor=0.4)
    present = int(toy_kg.masks["numeric"].sum())
    report = robustness_sweep(model, toy_kg, ["missing:numeric"], rates=[0.0, 1.0],
                              split="valid", progress=False)
    assert [r["affected"] for r in report.rows] == [0, present]
    _, mask, _ = model.modality("numeric")
    assert int(mask.sum()) == present  # the clean features are back


def test_rotate_learns_with_mmrns_negatives(toy_kg):
    # MMRNS reading the numeric attributes as a one-token "text" view; 0.76 when written
    torch.manual_seed(0)
    model = build_model("rotate", toy_kg, dim=32, margin=6.0)
    config = TrainConfig(loss="self_adversarial", sampler="mmrns", num_negatives=4,
                         sampler_args={"pre_sample": 16, "attention_channels": 8,
                                       "hidden_channels": 16, "text": "numeric",
                                       "image": "none", "text_tokens": 1},
                         epochs=10, batch_size=256, lr=0.02, eval_every=0, patience=0)
    _learns(toy_kg, model, config, floor=0.4)
