"""No valid or test triple may shape training: negatives, labels, graphs.

Each test builds a toy graph where ``(a, r, c)`` is a **test** triple only and ``(a, r, b)`` a
training triple, and checks that what training sees is the same whether or not the test
triple exists.
"""

import pytest
import torch

from mmgnn.data.kg import MultiModalKG
from mmgnn.sampling import OneToAllBatches, build_sampler
from mmgnn.train.config import TrainConfig
from tests.helpers import random_kg

A, R, B, C = 0, 0, 1, 2


def toy_kg(num_entities: int = 12) -> MultiModalKG:
    """(a, r, b) in train, (a, r, c) in test only, one valid triple elsewhere."""
    names = [f"e{i}" for i in range(num_entities)]
    train = torch.tensor([[A, R, B], [B, 1, C]])
    valid = torch.tensor([[C, 1, A]])
    test = torch.tensor([[A, R, C]])
    return MultiModalKG(names, ["r0", "r1"], train, valid, test, name="toy")


@pytest.mark.parametrize("sampler", ["uniform", "bernoulli", "head_tail"])
def test_training_sampler_can_draw_a_test_answer(sampler):
    """The negative filter holds training triples only: the tail corruption ``c`` of
    ``(a, r, b)`` is a legitimate negative, although ``(a, r, c)`` is a test triple."""
    kg = toy_kg()
    cfg = TrainConfig(sampler=sampler, num_negatives=64)
    assert cfg.negative_filter == "train"  # filtered, with the training triples, by default
    sampler = build_sampler(cfg.sampler, kg, cfg.num_negatives, cfg.negative_filter)
    neg = sampler.sample(kg.train[:1].repeat(50, 1), torch.Generator()
                                        .manual_seed(0))
    tails = neg[neg[..., 0] == A][:, 2]
    assert (tails == C).any(), "a test answer was filtered out of training negatives"
    assert not (neg == kg.train[0]).all(-1).any(), "a training triple was drawn as negative"


def test_all_splits_filter_is_explicit_warns_and_hides_test_answers():
    kg = toy_kg()
    cfg = TrainConfig(sampler="uniform", num_negatives=64, negative_filter="all_splits")
    with pytest.warns(UserWarning, match="held-out answers"):
        sampler = build_sampler(cfg.sampler, kg, cfg.num_negatives, cfg.negative_filter)
    neg = sampler.sample(kg.train[:1].repeat(50, 1), torch.Generator().manual_seed(0))
    assert not (neg == kg.test[0]).all(-1).any()


def test_negative_filter_none_does_not_filter():
    kg = toy_kg()
    sampler = build_sampler("uniform", kg, 64, "none")
    assert sampler.filter_index is None


def test_filter_index_splits():
    kg = random_kg()
    train_only = kg.filter_index(("train",))
    assert len(train_only) == len(torch.unique(kg.train, dim=0))
    assert len(kg.filter_index()) == len(torch.unique(torch.cat([kg.train, kg.valid, kg.test]),
                                                     dim=0))
    assert kg.filter_index(["valid", "train"]) is kg.filter_index(("train", "valid"))
    with pytest.raises(ValueError, match="subset"):
        kg.filter_index(("train", "tset"))


def test_old_run_folders_read_their_filter_faithfully():
    """``filtered_negatives=True`` in a config.json of an older run meant every split."""
    assert TrainConfig.from_dict({"filtered_negatives": True}).negative_filter == "all_splits"
    assert TrainConfig.from_dict({"filtered_negatives": False}).negative_filter == "none"
    with pytest.raises(ValueError, match="negative_filter"):
        TrainConfig(negative_filter="test")


@pytest.mark.parametrize("mode", ["kvsall", "1vsall"])
@pytest.mark.parametrize("reciprocal", [True, False])
def test_one_to_all_labels_come_from_train_only(mode, reciprocal):
    """KvsAll / 1vsAll targets: adding held-out triples to the graph changes no batch."""
    kg = toy_kg()
    with_test = OneToAllBatches(kg.train, kg.num_entities, kg.num_relations, reciprocal, mode)
    for b in with_test.epoch(8, torch.Generator().manual_seed(0)):
        targets = b.target(kg.num_entities) if b.gold is None else None
        for i in range(len(b.entity)):
            e, r = int(b.entity[i]), int(b.relation[i])
            answers = (targets[i].nonzero().view(-1).tolist() if targets is not None
                       else [int(b.gold[i])])
            query_is_a_r = (e, r) == (A, R) and b.side == "tail"
            if query_is_a_r:
                assert C not in answers


def test_message_passing_graph_is_the_training_graph():
    """GATTransE (and any model built on ``kg.train_graph``) never sees valid/test edges."""
    kg = toy_kg()
    edge_index, edge_type = kg.train_graph()
    edges = set(zip(edge_index[0].tolist(), edge_type.tolist(), edge_index[1].tolist(),
                    strict=True))
    assert edges == {tuple(t) for t in kg.train.tolist()}
    edge_index, edge_type = kg.train_graph(add_inverse=True)
    assert len(edge_type) == 2 * len(kg.train)
