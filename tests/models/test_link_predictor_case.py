"""One generic test class for every registered link-prediction model, as ``DecoderCase`` is for
the decoders (and PyKEEN's ``tests/cases.py`` for its interactions).

:class:`LinkPredictorCase` holds the checks of the :class:`~mmgnn.models.LinkPredictor`
contract; :class:`TestRegisteredModels` runs them over every name of
:data:`mmgnn.models.registry.MODELS` whose class is a link predictor, each built by
:func:`~mmgnn.models.build_model` on the toy graph with the small settings of
:data:`SMALL`. A user's model gets the same checks with a two-line subclass::

    class TestMyGNN(LinkPredictorCase):
        name = "my_gnn"

Scores are compared in eval mode (dropout off), against the one per-triple method
:meth:`score_triples`; tolerances are float32's.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from mmgnn.models import KGEModel, LinkPredictor, build_model
from mmgnn.models.registry import MODELS


def _tiny_mkgformer() -> dict[str, Any]:
    """A 16-wide, 3-layer random BERT (MiniLM's tokenizer) as MKGformer's text encoder, no
    vision tower: the wiring is under test here, not the pretrained weights."""
    from transformers import BertConfig, BertModel

    from mmgnn.modalities.pretrained import default_text_encoder, load_tokenizer
    from mmgnn.nn.fusion import HybridEncoder

    tokenizer = load_tokenizer(default_text_encoder())
    text = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=64,
                                hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                intermediate_size=32), add_pooling_layer=False)
    return {"encoder": HybridEncoder(text, None, fusion_layers=0), "tokenizer": tokenizer,
            "pretrain_epochs": 0, "max_length": 16, "progress": False}


#: Small sizes per model (on top of ``{"dim": 16}`` where the model takes ``dim``), so every
#: check of a model runs in a few CPU-seconds on the toy graph; a callable is called after
#: seeding, for arguments that are modules.
SMALL: dict[str, dict[str, Any] | Callable[[], dict[str, Any]]] = {
    "gat_transe": {"heads": 1, "num_layers": 1},
    "native": {"generator_hidden": 16, "noise_channels": 8},
    "mkgformer": _tiny_mkgformer,
}

#: Training settings of the tiny run per model, on top of the model's ``train_defaults``.
TRAIN: dict[str, Any] = dict(epochs=3, batch_size=256, lr=0.02, eval_every=0, patience=0,
                             num_negatives=8)

TOL = dict(rtol=1e-4, atol=1e-4)

#: Models whose head query ``(?, r, t)`` is a question of its own, not the triple scores of
#: :meth:`score_triples` (which asks tails): MKGformer puts the [MASK] on the head side.
#: Their head scores are checked for batch independence only.
OWN_HEAD_QUERY = {"mkgformer"}


def _class_of(name: str) -> type:
    target, _ = MODELS.get(name)
    return target


def link_predictor_names() -> list[str]:
    """The registered names whose class is a :class:`LinkPredictor` (K3M is not one)."""
    return [n for n in MODELS.names()
            if isinstance(_class_of(n), type) and issubclass(_class_of(n), LinkPredictor)]


def small_kwargs(name: str) -> dict[str, Any]:
    """``dim=16`` if the model's class takes ``dim``, and :data:`SMALL`'s entries for it."""
    params = inspect.signature(_class_of(name)).parameters
    kwargs = {"dim": 16} if "dim" in params else {}
    extra = SMALL.get(name, {})
    return {**kwargs, **(extra() if callable(extra) else extra)}


def _scale(t: torch.Tensor) -> float:
    return max(1.0, float(t.abs().max()))


class LinkPredictorCase:
    """The generic checks; a concrete case names the model (``name``) and may add ``kwargs``."""

    name: str
    kwargs: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    @pytest.fixture
    def model_name(self) -> str:
        return self.name

    def make(self, kg, name: str, seed: int = 0, **overrides) -> LinkPredictor:
        torch.manual_seed(seed)
        model = build_model(name, kg, **{**small_kwargs(name), **self.kwargs, **overrides})
        return model.eval()

    @staticmethod
    def triples(kg, count: int = 12, seed: int = 0) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        rows = kg.train[torch.randperm(len(kg.train), generator=g)[:count]]
        return rows.unbind(1)

    @staticmethod
    def score_all(model, x, h, r, t, side: str) -> torch.Tensor:
        """:obj:`(B, N)` scores of every entity in place of ``side``, one triple at a time."""
        n = model.num_entities
        every = torch.arange(n)
        rows = []
        for i in range(len(h)):
            hh = every if side == "head" else h[i].expand(n)
            tt = every if side == "tail" else t[i].expand(n)
            rows.append(model.score_triples(x, hh, r[i].expand(n), tt))
        return torch.stack(rows)

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def test_forward_is_score_triples_of_encode(self, toy_kg, model_name):
        model = self.make(toy_kg, model_name)
        h, r, t = self.triples(toy_kg)
        out = model(h, r, t)
        assert out.shape == (len(h),) and bool(torch.isfinite(out).all())
        torch.testing.assert_close(out, model.score_triples(model.encode(), h, r, t), **TOL)

    @torch.no_grad()
    def test_score_tails_and_heads_equal_score_triples(self, toy_kg, model_name):
        model = self.make(toy_kg, model_name)
        x = model.encode()
        assert x.shape[0] == toy_kg.num_entities
        h, r, t = self.triples(toy_kg, count=4)
        tails = model.score_tails(x, h, r)
        assert tails.shape == (len(h), toy_kg.num_entities)
        expected = self.score_all(model, x, h, r, t, "tail")
        torch.testing.assert_close(tails, expected, rtol=1e-4, atol=1e-4 * _scale(expected))
        heads = model.score_heads(x, r, t)
        assert heads.shape == (len(h), toy_kg.num_entities)
        one_by_one = torch.cat([model.score_heads(x, r[i:i + 1], t[i:i + 1])
                                for i in range(len(h))])
        torch.testing.assert_close(heads, one_by_one, rtol=1e-4, atol=1e-4 * _scale(heads))
        if model.reciprocal or model_name in OWN_HEAD_QUERY:
            return  # reciprocal: asked as (t, r + R, ?), see test_reciprocal_head_queries
        expected = self.score_all(model, x, h, r, t, "head")
        torch.testing.assert_close(heads, expected, rtol=1e-4, atol=1e-4 * _scale(expected))

    @torch.no_grad()
    def test_reciprocal_head_queries_use_the_inverse_relations(self, toy_kg, model_name):
        model = self.make(toy_kg, model_name)
        num_relations = toy_kg.num_relations
        assert model.decoder_relations == num_relations * (2 if model.reciprocal else 1)
        if not model.reciprocal:
            return
        x = model.encode()
        h, r, t = self.triples(toy_kg, count=4)
        expected = self.score_all(model, x, t, r + num_relations, h, "tail")
        torch.testing.assert_close(model.score_heads(x, r, t), expected,
                                   rtol=1e-4, atol=1e-4 * _scale(expected))
        torch.testing.assert_close(model.score_heads(x, r, t),
                                   model.score_tails(x, t, r + num_relations), **TOL)

    @pytest.mark.parametrize("kind", ["one_sided", "arbitrary"])
    @torch.no_grad()
    def test_score_with_negatives_equals_score_triples(self, toy_kg, model_name, kind):
        model = self.make(toy_kg, model_name)
        x = model.encode()
        h, r, t = self.triples(toy_kg, count=6)
        positives = torch.stack([h, r, t], 1)
        g = torch.Generator().manual_seed(3)
        k, n = 5, toy_kg.num_entities
        negatives = positives[:, None, :].repeat(1, k, 1)
        if kind == "one_sided":  # what the samplers draw: one side replaced, relation kept
            head = torch.rand(len(h), k, generator=g) < 0.5
            col = torch.where(head, 0, 2)
            negatives.scatter_(2, col[..., None], torch.randint(n, (len(h), k, 1), generator=g))
        else:  # any triples: both sides and the relation redrawn
            negatives = torch.stack([torch.randint(n, (len(h), k), generator=g),
                                     torch.randint(toy_kg.num_relations, (len(h), k),
                                                   generator=g),
                                     torch.randint(n, (len(h), k), generator=g)], -1)
        pos, neg = model.score_with_negatives(x, positives, negatives)
        assert pos.shape == (len(h),) and neg.shape == (len(h), k)
        torch.testing.assert_close(pos, model.score_triples(x, h, r, t), **TOL)
        torch.testing.assert_close(neg, model.score_triples(x, *negatives.unbind(-1)), **TOL)

    # ------------------------------------------------------------------ training
    def batch(self, kg, model, regime: str, size: int = 16):
        """A training batch of ``regime`` built by hand from the toy graph's triples."""
        from mmgnn.sampling import NegativeBatch, QueryBatch

        h, r, t = self.triples(kg, count=size, seed=1)
        if regime == "negative":
            g = torch.Generator().manual_seed(4)
            positives = torch.stack([h, r, t], 1)
            negatives = positives[:, None, :].repeat(1, 4, 1)
            negatives[..., 2] = torch.randint(kg.num_entities, (size, 4), generator=g)
            return NegativeBatch(positives, negatives)
        if regime == "1vsall":
            return QueryBatch("tail", h, r, gold=t)
        rows, cols = [], []
        for i in range(size):  # every known tail of (h, r, ?) in train
            tails = kg.train[(kg.train[:, 0] == h[i]) & (kg.train[:, 1] == r[i]), 2]
            rows.append(torch.full_like(tails, i))
            cols.append(tails)
        return QueryBatch("tail", h, r, target_rows=torch.cat(rows), target_cols=torch.cat(cols))

    @staticmethod
    def loss_fn(regime: str) -> torch.nn.Module:
        from mmgnn.nn.losses import BCEWithLabelSmoothing, CrossEntropy1vsAll, SoftplusLoss

        return {"negative": SoftplusLoss, "kvsall": BCEWithLabelSmoothing,
                "1vsall": CrossEntropy1vsAll}[regime]()

    def test_loss_is_finite_and_reaches_every_parameter(self, toy_kg, model_name):
        model = self.make(toy_kg, model_name).train()
        regime = model.regimes[0]
        loss = model.loss(model.encode(), self.batch(toy_kg, model, regime),
                          self.loss_fn(regime))
        assert loss.dim() == 0 and bool(torch.isfinite(loss)), float(loss)
        loss.backward()
        params = dict(model.named_parameters())
        trained = {id(p) for p in model.param_groups()["model"]["params"]}
        missing = [k for k, p in params.items() if id(p) in trained and p.grad is None]
        assert not missing, f"no gradient reaches {missing}"
        bad = [k for k, p in params.items() if p.grad is not None
               and not bool(torch.isfinite(p.grad).all())]
        assert not bad, f"non-finite gradients in {bad}"
        zero = [k for k, p in params.items() if id(p) in trained and p.grad is not None
                and not bool(p.grad.any())]
        assert len(zero) < len(trained), "every gradient is zero"

    def test_a_tiny_training_run_lowers_the_loss(self, toy_kg, model_name):
        """Three epochs of the one Trainer on the model's own ``train_defaults``. Whether a
        system learns (MRR well above random) is shown for DistMult, IMF, NativE and MMRNS in
        ``tests/test_toy_graph.py``."""
        from mmgnn.train import TrainConfig, fit

        model = self.make(toy_kg, model_name)
        config = TrainConfig(**{**model.train_defaults, **TRAIN})
        trainer = fit(model, toy_kg, config, progress=False)
        losses = [h["loss"] for h in trainer.history if "loss" in h]
        assert len(losses) == TRAIN["epochs"] and all(map(math.isfinite, losses)), losses
        assert losses[-1] < losses[0], f"loss did not go down: {losses}"

    # ------------------------------------------------------------------ module behaviour
    def test_repr_names_the_class_and_the_entity_count(self, toy_kg, model_name):
        model = self.make(toy_kg, model_name)
        text = repr(model)
        assert text.startswith(f"{type(model).__name__}({toy_kg.num_entities}"), text
        assert "\n" not in text or len(text.splitlines()[0]) < 200

    def test_state_dict_round_trips_into_a_fresh_model(self, toy_kg, model_name):
        model = self.make(toy_kg, model_name)
        with torch.no_grad():  # weights no fresh model has: the load must carry all of them
            g = torch.Generator().manual_seed(5)
            for p in model.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        state = model.state_dict()
        modality_names = list(getattr(getattr(model, "modalities", None), "names", []) or [])
        stored = [k for k in state for m in modality_names if k.endswith(f"x_{m}")]
        assert not stored, f"modality features saved in the state_dict: {stored}"
        fresh = self.make(toy_kg, model_name)
        h, r, t = self.triples(toy_kg)
        with torch.no_grad():
            before = fresh(h, r, t)
            fresh.load_state_dict(state)
            torch.testing.assert_close(fresh(h, r, t), model(h, r, t), **TOL)
            assert not torch.allclose(before, model(h, r, t))  # the load changed something

    # ------------------------------------------------------------------ capabilities
    def test_capabilities_are_consistent(self, toy_kg, model_name):
        from mmgnn.train.config import REGIMES, TrainConfig

        model = self.make(toy_kg, model_name)
        cls = type(model)
        assert cls.regimes and set(cls.regimes) <= set(REGIMES), cls.regimes
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        assert set(cls.train_defaults) <= fields, set(cls.train_defaults) - fields
        config = TrainConfig(**cls.train_defaults)  # valid settings on their own
        assert config.regime == cls.regimes[0]
        if cls.needs_reciprocal:
            assert model.reciprocal
            with pytest.raises(ValueError, match="recipro"):
                self.make(toy_kg, model_name, reciprocal=False)
        if cls.fused_corruptions:  # the decoder's kernel scores its corruptions
            assert cls.score_triples is LinkPredictor.score_triples
        assert isinstance(cls.default_modalities, tuple)

    def test_a_model_needing_modalities_says_so_without_them(self, toy_folder, model_name):
        from mmgnn.data import load_dataset

        bare = load_dataset(toy_folder)  # the triples only: no numeric modality, no texts
        if not _class_of(model_name).needs_modalities:
            self.make(bare, model_name)  # builds without features
            return
        with pytest.raises(ValueError, match="modalit|feature|text") as info:
            self.make(bare, model_name)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("model_name", link_predictor_names())
class TestRegisteredModels(LinkPredictorCase):
    """Every registered link predictor, built on the toy graph."""


def test_every_registered_link_predictor_is_covered():
    names = link_predictor_names()
    assert {"transe", "distmult", "imf", "native", "gat_transe", "multimodal"} <= set(names), \
        names
    assert "k3m" not in names


# ------------------------------------------------------------------ the case can fail
class _Mutant(KGEModel):
    """DistMult with one contract broken, chosen by ``flaw``."""

    def __init__(self, num_entities: int, num_relations: int, flaw: str) -> None:
        super().__init__(num_entities, num_relations, "distmult", dim=8)
        self.flaw = flaw
        self.unused = torch.nn.Parameter(torch.zeros(3))  # reached by no loss
        self.hidden_scale = torch.ones(())  # neither parameter nor buffer: not saved

    def forward(self, h, r, t):
        out = super().forward(h, r, t)
        return out + 1.0 if self.flaw == "forward" else out

    def score_triples(self, x, h, r, t):
        return super().score_triples(x, h, r, t) * self.hidden_scale

    def score_heads(self, x, r, t):
        return super().score_heads(x, (r + 1) % self.num_relations if self.flaw == "heads"
                                   else r, t)


class _MutantCase(LinkPredictorCase):
    def __init__(self, flaw: str) -> None:
        self.flaw, self.built = flaw, 0

    def make(self, kg, name, seed=0, **overrides):
        torch.manual_seed(seed)
        model = _Mutant(kg.num_entities, kg.num_relations, self.flaw).eval()
        if self.flaw == "state" and self.built == 0:
            model.hidden_scale = torch.full((), 2.0)  # state that state_dict() does not carry
        self.built += 1
        return model


@pytest.mark.parametrize("flaw, check", [
    ("forward", "test_forward_is_score_triples_of_encode"),
    ("heads", "test_score_tails_and_heads_equal_score_triples"),
    ("loss", "test_loss_is_finite_and_reaches_every_parameter"),
    ("state", "test_state_dict_round_trips_into_a_fresh_model"),
])
def test_the_case_flags_a_broken_model(toy_kg, flaw, check):
    with pytest.raises(AssertionError):
        getattr(_MutantCase(flaw), check)(toy_kg, "mutant")
