"""Checks every KGE decoder passes (one generic case, PyKEEN ``tests/cases.py`` style), then
parity with the independent implementations of PyG and PyKEEN."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mmgnn.models.kge_model import KGEModel
from mmgnn.nn.kge import (
    DECODERS,
    ComplEx,
    DistMult,
    KGEDecoder,
    PairRE,
    RotatE,
    TransE,
    TuckER,
    build_decoder,
)

NUM_RELATIONS, HIDDEN, NUM_QUERIES, NUM_CANDIDATES = 5, 6, 4, 9


class LargestAllocation(TorchDispatchMode):
    """Records the largest tensor any ATen op allocates (views allocate nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        aliases = any(ret.alias_info is not None for ret in func._schema.returns)
        if not aliases:
            for tensor in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(tensor, torch.Tensor):
                    self.largest = max(self.largest, tensor.numel())
        return out


class DecoderCase:
    """The generic checks; a concrete case names the class, its arguments and its repr."""

    cls: type[KGEDecoder]
    kwargs: dict = {}
    expected_repr: str

    # ------------------------------------------------------------------ helpers
    def make(self, hidden: int = HIDDEN, **overrides) -> KGEDecoder:
        torch.manual_seed(0)
        decoder = self.cls(NUM_RELATIONS, hidden, **{**self.kwargs, **overrides}).double()
        with torch.no_grad():  # non-trivial batch-norm state, so evaluation mode is tested too
            for module in decoder.modules():
                if isinstance(module, torch.nn.BatchNorm1d):
                    module.running_mean.normal_()
                    module.running_var.uniform_(0.5, 2.0)
                    module.weight.normal_()
                    module.bias.normal_()
        return decoder.eval()  # dropout and batch statistics make training scores batch-dependent

    def entities(self, decoder: KGEDecoder, *shape: int, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(*shape, decoder.entity_channels, generator=g, dtype=torch.float64)

    def relations(self, *shape: int, seed: int = 2) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(NUM_RELATIONS, shape, generator=g)

    def one_to_all_inputs(self, decoder: KGEDecoder):
        return (self.entities(decoder, NUM_QUERIES), self.relations(NUM_QUERIES),
                self.entities(decoder, NUM_CANDIDATES, seed=3))

    def check_entity_init(self, decoder: KGEDecoder, weight: torch.Tensor) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ checks
    def test_score_t_equals_score_hrt_per_candidate(self):
        decoder = self.make()
        e, r, cand = self.one_to_all_inputs(decoder)
        expected = torch.stack([decoder.score_hrt(e, r, c.expand_as(e)) for c in cand], dim=1)
        torch.testing.assert_close(decoder.score_t(e, r, cand), expected)

    def test_score_h_equals_score_hrt_per_candidate(self):
        decoder = self.make()
        e, r, cand = self.one_to_all_inputs(decoder)
        expected = torch.stack([decoder.score_hrt(c.expand_as(e), r, e) for c in cand], dim=1)
        torch.testing.assert_close(decoder.score_h(r, e, cand), expected)

    def test_score_hrt_broadcasts_over_leading_dims(self):
        decoder = self.make()
        h, r, cand = self.one_to_all_inputs(decoder)
        torch.testing.assert_close(decoder.score_hrt(h[:, None], r[:, None], cand[None]),
                                   decoder.score_t(h, r, cand))
        t = self.entities(decoder, NUM_QUERIES, 3, seed=5)  # (B, K, F): negative-sampling shape
        expected = torch.stack([decoder.score_hrt(h, r, t[:, k]) for k in range(3)], dim=1)
        torch.testing.assert_close(decoder.score_hrt(h[:, None], r[:, None], t), expected)

    def test_score_corruptions_equals_score_hrt_per_triple(self):
        decoder = self.make()
        x = self.entities(decoder, 9).requires_grad_()
        g = torch.Generator().manual_seed(7)
        h, t = torch.randint(9, (NUM_QUERIES,), generator=g), torch.randint(9, (NUM_QUERIES,),
                                                                              generator=g)
        r = self.relations(NUM_QUERIES)
        corrupt_head = torch.rand(NUM_QUERIES, 4, generator=g) < 0.5
        candidates = torch.randint(9, (NUM_QUERIES, 4), generator=g)
        out = decoder.score_corruptions(x, h, r, t, corrupt_head, candidates)
        expected = torch.empty(NUM_QUERIES, 4, dtype=x.dtype)
        for i in range(NUM_QUERIES):  # explicit triples, one at a time
            for k in range(4):
                c = candidates[i, k]
                hh, tt = (c, t[i]) if corrupt_head[i, k] else (h[i], c)
                expected[i, k] = decoder.score_hrt(x[hh][None], r[i:i + 1], x[tt][None])[0]
        torch.testing.assert_close(out, expected)
        grad_out = torch.randn(out.shape, generator=g, dtype=out.dtype)
        torch.testing.assert_close(torch.autograd.grad(out, x, grad_out)[0],
                                   torch.autograd.grad(expected, x, grad_out)[0])

    def test_chunked_equals_unchunked(self):
        whole, tiny = self.make(), self.make(chunk_elements=1)  # tiny: one candidate per chunk
        e, r, cand = self.one_to_all_inputs(whole)
        outs = {}
        for name, decoder in (("whole", whole), ("tiny", tiny)):
            x = cand.clone().requires_grad_()  # gradients: the checkpointed chunks where used
            s_t, s_h = decoder.score_t(e, r, x), decoder.score_h(r, e, x)
            (s_t.square().sum() + s_h.sum()).backward()
            outs[name] = (s_t, s_h, x.grad)
            with torch.no_grad():
                torch.testing.assert_close(decoder.score_t(e, r, cand), s_t)
                torch.testing.assert_close(decoder.score_h(r, e, cand), s_h)
        for a, b in zip(outs["whole"], outs["tiny"], strict=True):
            torch.testing.assert_close(a, b)

    def test_forward_scores_edges(self):
        decoder = self.make()
        x = self.entities(decoder, 7)
        edge_index = torch.tensor([[0, 3, 6, 2, 2], [1, 1, 0, 5, 2]])
        edge_type = self.relations(5)
        expected = decoder.score_hrt(x[edge_index[0]], edge_type, x[edge_index[1]])
        torch.testing.assert_close(decoder(x, edge_index, edge_type), expected)

    def test_reset_parameters(self):
        decoder = self.make()
        before = {n: p.detach().clone() for n, p in decoder.named_parameters()}
        with torch.no_grad():
            for p in decoder.parameters():
                p.add_(1.0)
        decoder.reset_parameters()
        for name, p in decoder.named_parameters():
            assert not torch.equal(p, before[name] + 1.0), f"{name} was not reset"
            if p.numel() > 1 and p.std() > 0:  # random draws (not BN's constant init) are new
                assert not torch.equal(p, before[name]), f"{name} was not redrawn"

    def test_reset_entity_parameters_follows_the_paper(self):
        decoder = self.make().float()
        weight = torch.empty(500, decoder.entity_channels)
        decoder.reset_entity_parameters(weight)
        decoder.constrain_entities_(weight)
        self.check_entity_init(decoder, weight)

    def test_shapes_and_dtypes(self):
        for dtype in (torch.float32, torch.float64):
            decoder = self.make().to(dtype)
            e, r, cand = (x.to(dtype) if x.is_floating_point() else x
                          for x in self.one_to_all_inputs(decoder))
            assert decoder.entity_channels == e.size(-1)
            for out, shape in ((decoder.score_hrt(e, r, e.flip(0)), (NUM_QUERIES,)),
                               (decoder.score_t(e, r, cand), (NUM_QUERIES, NUM_CANDIDATES)),
                               (decoder.score_h(r, e, cand), (NUM_QUERIES, NUM_CANDIDATES))):
                assert out.shape == shape and out.dtype == dtype

    def test_gradients_reach_every_parameter(self):
        decoder = self.make().train()
        e, r, cand = self.one_to_all_inputs(decoder)
        e.requires_grad_()
        loss = (decoder.score_hrt(e, r, e.flip(0)).sum() + decoder.score_t(e, r, cand).sum()
                + decoder.score_h(r, e, cand).sum())
        loss.backward()
        for name, p in decoder.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for {name}"
        assert torch.isfinite(e.grad).all() and e.grad.abs().sum() > 0

    def test_repr(self):
        assert repr(self.make()) == self.expected_repr

    def test_registry(self):
        name = self.cls.__name__.lower()
        assert DECODERS.get(name)[0] is self.cls
        assert type(build_decoder(name.upper(), NUM_RELATIONS, HIDDEN, **self.kwargs)) is self.cls

    def test_one_to_all_memory_is_bounded(self):
        # A (B, N, F) tensor is 16x the bound on single allocations and 2x the bound on what
        # autograd may keep, so one such intermediate, or the chunks of one, is caught.
        chunk, b, n, hidden = 64, 32, 128, 16
        decoder = self.make(hidden, chunk_elements=chunk)
        if hasattr(decoder, "kernel"):  # the compiled kernel is opaque to the dispatcher
            decoder = self.make(hidden, chunk_elements=chunk, kernel="eager")
        f = decoder.entity_channels
        g = torch.Generator().manual_seed(0)
        e = torch.randn(b, f, generator=g, dtype=torch.float64, requires_grad=True)
        cand = torch.randn(n, f, generator=g, dtype=torch.float64, requires_grad=True)
        r = torch.randint(NUM_RELATIONS, (b,), generator=g)
        bound = max(chunk, b * n, n * f, max(p.numel() for p in decoder.parameters()))
        assert b * n * f >= 16 * bound
        for grad in (False, True):
            with torch.set_grad_enabled(grad), LargestAllocation() as mode:
                scores = decoder.score_t(e, r, cand) + decoder.score_h(r, e, cand)
                if grad:
                    scores.sum().backward()
            assert mode.largest <= bound, (grad, mode.largest, bound)
        saved: dict[int, int] = {}  # storages autograd keeps for the backward pass

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            saved[storage.data_ptr()] = storage.nbytes() // tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            decoder.score_t(e, r, cand) + decoder.score_h(r, e, cand)
        assert sum(saved.values()) <= 8 * bound, (sum(saved.values()), bound)


class TestTransE(DecoderCase):
    cls = TransE
    expected_repr = "TransE(num_relations=5, hidden_channels=6, p_norm=1)"

    def check_entity_init(self, decoder, weight):
        torch.testing.assert_close(weight.norm(dim=-1), torch.ones(len(weight)))

    def test_init_range_and_relation_norm(self):
        decoder = TransE(NUM_RELATIONS, 50, normalize_entities=False)
        torch.testing.assert_close(decoder.rel_emb.weight.norm(dim=-1), torch.ones(NUM_RELATIONS))
        weight = torch.empty(1000, 50)
        decoder.reset_entity_parameters(weight)
        bound = 6 / math.sqrt(50)
        assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound

    def test_rejects_other_norms(self):
        with pytest.raises(ValueError, match="p_norm"):
            TransE(NUM_RELATIONS, HIDDEN, p_norm=3)


class TestTransEL2(TestTransE):
    kwargs = {"p_norm": 2}
    expected_repr = "TransE(num_relations=5, hidden_channels=6, p_norm=2)"


class TestDistMult(DecoderCase):
    cls = DistMult
    expected_repr = "DistMult(num_relations=5, hidden_channels=6)"

    def check_entity_init(self, decoder, weight):
        bound = math.sqrt(6 / sum(weight.shape))  # Glorot uniform
        assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound


class TestComplEx(DecoderCase):
    cls = ComplEx
    expected_repr = "ComplEx(num_relations=5, hidden_channels=6)"

    def check_entity_init(self, decoder, weight):
        assert weight.shape[1] == 2 * HIDDEN
        assert abs(weight.std().item() - 1.0) < 0.05 and abs(weight.mean().item()) < 0.05

    def test_factors_are_moduli(self):
        decoder = self.make()
        e, r, _ = self.one_to_all_inputs(decoder)
        h_mod = decoder.factors(e, r, e)[0]
        torch.testing.assert_close(h_mod, torch.complex(e[:, :HIDDEN], e[:, HIDDEN:]).abs())

    def test_matches_complex_arithmetic(self):
        decoder = self.make()
        h, r, _ = self.one_to_all_inputs(decoder)
        t = self.entities(decoder, NUM_QUERIES, seed=7)
        as_complex = lambda x: torch.complex(x[..., :HIDDEN], x[..., HIDDEN:])  # noqa: E731
        expected = (as_complex(h) * as_complex(decoder.rel_emb(r)) * as_complex(t).conj())
        torch.testing.assert_close(decoder.score_hrt(h, r, t), expected.sum(-1).real)


class TestRotatE(DecoderCase):
    cls = RotatE
    expected_repr = "RotatE(num_relations=5, hidden_channels=6, margin=12.0)"

    def check_entity_init(self, decoder, weight):
        rho = (12.0 + 2.0) / HIDDEN
        assert weight.abs().max() <= rho and weight.abs().max() > 0.9 * rho
        phases = decoder.phase(torch.arange(NUM_RELATIONS))
        assert phases.abs().max() < math.pi

    def test_matches_complex_arithmetic(self):
        decoder = self.make()
        h, r, _ = self.one_to_all_inputs(decoder)
        t = self.entities(decoder, NUM_QUERIES, seed=7)
        as_complex = lambda x: torch.complex(x[..., :HIDDEN], x[..., HIDDEN:])  # noqa: E731
        rotation = torch.polar(torch.ones(NUM_QUERIES, HIDDEN, dtype=torch.float64),
                               decoder.phase(r))
        dist = (as_complex(h) * rotation - as_complex(t)).abs().sum(-1)
        torch.testing.assert_close(decoder.score_hrt(h, r, t), 12.0 - dist)

    def test_zero_distance_has_finite_gradient(self):
        decoder = self.make()
        h, r, _ = self.one_to_all_inputs(decoder)
        h.requires_grad_()
        t = decoder._rotate(h, r).detach()  # recomputed bit for bit: every modulus is 0
        decoder.score_hrt(h, r, t).sum().backward()
        decoder.score_t(h, r, t).sum().backward()
        assert torch.isfinite(h.grad).all()


class TestRotatEL2(DecoderCase):
    cls = RotatE
    kwargs = {"distance": "l2"}
    expected_repr = "RotatE(num_relations=5, hidden_channels=6, margin=12.0, distance='l2')"
    check_entity_init = TestRotatE.check_entity_init


class TestPairRE(DecoderCase):
    cls = PairRE
    expected_repr = "PairRE(num_relations=5, hidden_channels=6, margin=12.0)"

    def check_entity_init(self, decoder, weight):
        rho = (12.0 + 2.0) / HIDDEN
        assert weight.abs().max() <= rho and weight.abs().max() > 0.9 * rho

    def test_scale_invariant_in_entities(self):
        decoder = self.make()
        h, r, cand = self.one_to_all_inputs(decoder)
        torch.testing.assert_close(decoder.score_t(3.0 * h, r, 0.5 * cand),
                                   decoder.score_t(h, r, cand))


class TestTuckER(DecoderCase):
    cls = TuckER
    kwargs = {"relation_channels": 4}
    expected_repr = ("TuckER(num_relations=5, hidden_channels=6, relation_channels=4, "
                     "input_dropout=0.3, hidden_dropout1=0.4, hidden_dropout2=0.5)")

    def check_entity_init(self, decoder, weight):
        std = math.sqrt(2 / sum(weight.shape))  # Glorot normal
        assert abs(weight.std().item() / std - 1) < 0.1
        assert decoder.core.abs().max() <= 1.0 and decoder.core.abs().max() > 0.9

    def test_matches_core_tensor_contraction(self):
        decoder = self.make(input_dropout=0.0, hidden_dropout1=0.0, hidden_dropout2=0.0)
        h, r, _ = self.one_to_all_inputs(decoder)
        t = self.entities(decoder, NUM_QUERIES, seed=7)
        bn0, bn1 = decoder.bn0, decoder.bn1
        norm = lambda bn, x: ((x - bn.running_mean) / (bn.running_var + bn.eps).sqrt()  # noqa: E731
                              * bn.weight + bn.bias)
        x = torch.einsum("jik,bj,bi->bk", decoder.core, decoder.rel_emb(r), norm(bn0, h))
        torch.testing.assert_close(decoder.score_hrt(h, r, t), (norm(bn1, x) * t).sum(-1))

    def test_training_mode_uses_batch_statistics(self):
        decoder = self.make(input_dropout=0.0, hidden_dropout1=0.0, hidden_dropout2=0.0).train()
        h, r, cand = self.one_to_all_inputs(decoder)
        x = decoder.query(h, r)  # BN1's output over the batch: zero mean, BN1's bias per column
        torch.testing.assert_close(x.mean(0), decoder.bn1.bias.detach())
        torch.testing.assert_close(decoder.score_t(h, r, cand), x @ cand.t())


def test_build_decoder_lists_valid_names_and_the_closest():
    with pytest.raises(KeyError, match="Known: complex, distmult, pairre, rotate, transe, tucker"):
        build_decoder("ConvE", 3, 4)
    with pytest.raises(KeyError, match="did you mean 'rotate'"):
        build_decoder("rotat", 3, 4)


def test_a_registered_user_decoder_builds_by_name():
    from mmgnn.nn.kge import DistMult, register_decoder

    class Scaled(DistMult):
        def score_hrt(self, h, r, t):
            return 2 * super().score_hrt(h, r, t)

    register_decoder("scaled_distmult_test", Scaled)
    try:
        decoder = build_decoder("scaled_distmult_test", 3, 4)
        assert type(decoder) is Scaled and decoder.num_relations == 3
        with pytest.raises(ValueError, match="already registered"):
            register_decoder("scaled_distmult_test", DistMult)
    finally:
        DECODERS._entries.pop("scaled_distmult_test")


# ---------------------------------------------------------------------- peer libraries
def _triples(num_entities: int, num_relations: int, n: int = 16):
    g = torch.Generator().manual_seed(0)
    return (torch.randint(num_entities, (n,), generator=g),
            torch.randint(num_relations, (n,), generator=g),
            torch.randint(num_entities, (n,), generator=g))


def _assert_model_matches(model: KGEModel, reference, num_entities: int, h, r, t) -> None:
    """Per-triple scores and every 1-to-all column against the peer's per-triple forward."""
    x = model.encode()
    torch.testing.assert_close(model.score_triples(x, h, r, t), reference(h, r, t))
    all_e = torch.arange(num_entities)
    tails = torch.stack([reference(h, r, all_e[j].expand_as(h)) for j in all_e], dim=1)
    heads = torch.stack([reference(all_e[j].expand_as(t), r, t) for j in all_e], dim=1)
    torch.testing.assert_close(model.score_tails(x, h, r), tails)
    torch.testing.assert_close(model.score_heads(x, r, t), heads)


@pytest.mark.parametrize("p_norm", [1, 2])
def test_transe_matches_pyg(p_norm):
    from torch_geometric.nn.kge import TransE as PyGTransE

    torch.manual_seed(0)
    pyg = PyGTransE(20, 3, 8, p_norm=p_norm).double()
    model = KGEModel(20, 3, TransE(3, 8, p_norm=p_norm)).double()
    with torch.no_grad():  # PyG normalises head and tail rows with the p-norm inside forward
        model.entity.weight.copy_(F.normalize(pyg.node_emb.weight, p=p_norm, dim=-1))
        model.decoder.rel_emb.weight.copy_(pyg.rel_emb.weight)
        _assert_model_matches(model, pyg, 20, *_triples(20, 3))


def test_distmult_matches_pyg():
    from torch_geometric.nn.kge import DistMult as PyGDistMult

    torch.manual_seed(0)
    pyg = PyGDistMult(20, 3, 8).double()
    model = KGEModel(20, 3, DistMult(3, 8)).double()
    with torch.no_grad():
        model.entity.weight.copy_(pyg.node_emb.weight)
        model.decoder.rel_emb.weight.copy_(pyg.rel_emb.weight)
        _assert_model_matches(model, pyg, 20, *_triples(20, 3))


def test_complex_matches_pyg():
    from torch_geometric.nn.kge import ComplEx as PyGComplEx

    torch.manual_seed(0)
    pyg = PyGComplEx(20, 3, 8).double()
    model = KGEModel(20, 3, ComplEx(3, 8)).double()
    with torch.no_grad():  # PyG keeps re and im in two tables; mmgnn lays them out [re | im]
        model.entity.weight.copy_(torch.cat([pyg.node_emb.weight, pyg.node_emb_im.weight], 1))
        model.decoder.rel_emb.weight.copy_(torch.cat([pyg.rel_emb.weight,
                                                      pyg.rel_emb_im.weight], 1))
        _assert_model_matches(model, pyg, 20, *_triples(20, 3))


def test_rotate_l2_matches_pyg():
    from torch_geometric.nn.kge import RotatE as PyGRotatE

    torch.manual_seed(0)
    pyg = PyGRotatE(20, 3, 8, margin=5.0).double()
    decoder = RotatE(3, 8, margin=5.0, distance="l2")
    model = KGEModel(20, 3, decoder).double()
    with torch.no_grad():  # PyG stores phases; mmgnn stores phase * rho / pi (official code)
        model.entity.weight.copy_(torch.cat([pyg.node_emb.weight, pyg.node_emb_im.weight], 1))
        decoder.rel_emb.weight.copy_(pyg.rel_emb.weight * decoder.embedding_range / math.pi)
        _assert_model_matches(model, pyg, 20, *_triples(20, 3))


def test_pairre_matches_pykeen():
    modules = pytest.importorskip("pykeen.nn.modules")
    torch.manual_seed(0)
    decoder = PairRE(3, 8, margin=6.0).double()
    interaction = modules.PairREInteraction(p=1)
    h, r, t = (torch.randn(10, 8, dtype=torch.float64), torch.randint(3, (10,)),
               torch.randn(10, 8, dtype=torch.float64))
    r_h, r_t = decoder.rel_emb(r).split(8, dim=-1)
    expected = 6.0 + interaction(F.normalize(h, dim=-1), (r_h, r_t), F.normalize(t, dim=-1))
    torch.testing.assert_close(decoder.score_hrt(h, r, t), expected)


@pytest.mark.parametrize("training", [False, True])
def test_tucker_matches_pykeen(training):
    modules = pytest.importorskip("pykeen.nn.modules")
    torch.manual_seed(0)
    dropouts = (0.0, 0.0, 0.0) if training else (0.3, 0.4, 0.5)  # dropout is off in eval mode
    decoder = TuckER(3, 6, relation_channels=4, input_dropout=dropouts[0],
                     hidden_dropout1=dropouts[1], hidden_dropout2=dropouts[2]).double()
    interaction = modules.TuckERInteraction(
        embedding_dim=6, relation_dim=4, head_dropout=dropouts[0], relation_dropout=dropouts[1],
        head_relation_dropout=dropouts[2]).double()
    with torch.no_grad():
        for bn in (decoder.bn0, decoder.bn1):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_()
            bn.bias.normal_()
        # the official code (and mmgnn) orders the core (d_r, d_e, d_e), PyKEEN (d_e, d_r, d_e)
        interaction.core_tensor.copy_(decoder.core.permute(1, 0, 2))
        interaction.head_batch_norm.load_state_dict(decoder.bn0.state_dict())
        interaction.head_relation_batch_norm.load_state_dict(decoder.bn1.state_dict())
    decoder.train(training)
    interaction.train(training)
    h, r, t = (torch.randn(10, 6, dtype=torch.float64), torch.randint(3, (10,)),
               torch.randn(10, 6, dtype=torch.float64))
    expected = interaction(h, decoder.rel_emb(r), t)
    torch.testing.assert_close(decoder.score_hrt(h, r, t), expected)
