"""The k-shot training split (MKGformer's ``8shot-42``) and the training-edge neighbourhood."""

import numpy as np
import pytest
import torch

from mmgnn.data.kg import MultiModalKG
from mmgnn.data.subsets import few_shot, few_shot_rows, neighbourhood, subset_graph


def _graph(n_per_relation=(20, 3, 9, 0, 12), entities=30, seed=0) -> MultiModalKG:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for r, count in enumerate(n_per_relation):
        for _ in range(count):
            h, t = torch.randint(entities, (2,), generator=g).tolist()
            rows.append([h, r, t])
    train = torch.tensor(rows)[torch.randperm(len(rows), generator=g)]  # relations interleaved
    names = [f"e{i}" for i in range(entities)]
    return MultiModalKG(names, [f"r{i}" for i in range(len(n_per_relation))], train,
                        train[:4], train[4:9], name="toy",
                        texts={"name": names})


def _released_rule(lines: list, k: int, seed: int) -> list:
    """zjunlp's generate_k_shot.py, written out: seed numpy's global generator, shuffle the
    list of lines, keep each label's first k lines, labels in order of first appearance."""
    lines = list(lines)
    np.random.seed(seed)
    np.random.shuffle(lines)
    by_label: dict = {}
    for line in lines:
        by_label.setdefault(line[1], []).append(line)
    return [line for label in by_label for line in by_label[label][:k]]


@pytest.mark.parametrize("k,seed", [(8, 42), (2, 1), (30, 42)])
def test_few_shot_rows_follow_the_released_rule(k, seed):
    kg = _graph()
    rows = few_shot_rows(kg.train, k, seed)
    expected = _released_rule([tuple(t) for t in kg.train.tolist()], k, seed)
    assert [tuple(t) for t in kg.train[rows].tolist()] == expected
    counts = torch.bincount(kg.train[rows, 1], minlength=kg.num_relations).tolist()
    assert counts == [min(k, c) for c in (20, 3, 9, 0, 12)]
    assert len(set(rows.tolist())) == len(rows)  # no row twice


def test_few_shot_graph_keeps_everything_but_the_training_triples():
    kg = _graph()
    train = kg.train.clone()
    small = few_shot(kg, 8, 42)
    assert small.name == "toy[8shot-42]" and len(small.train) == 8 + 3 + 8 + 0 + 8
    assert torch.equal(kg.train, train)  # the source graph is untouched
    assert torch.equal(small.valid, kg.valid) and torch.equal(small.test, kg.test)
    assert small.entity_names == kg.entity_names and small.texts == kg.texts
    edges = sum(small["entity", r, "entity"].edge_index.size(1) for r in small.relation_names)
    assert edges == len(small.train)  # the message-passing edges follow the new split
    assert not torch.equal(few_shot_rows(kg.train, 8, 42), few_shot_rows(kg.train, 8, 43))
    assert torch.equal(subset_graph(kg, "few_shot", k=8, seed=42).train, small.train)


def test_few_shot_errors():
    kg = _graph()
    with pytest.raises(ValueError, match="k >= 1"):
        few_shot_rows(kg.train, 0)
    with pytest.raises(ValueError, match="unknown subset kind"):
        subset_graph(kg, "random")
    with pytest.raises(ValueError, match="takes"):
        subset_graph(kg, "few_shot", entities=3)


def test_neighbourhood_walks_training_edges_only():
    """A validation or test triple never decides which entities the subset holds: moving
    every held-out triple elsewhere leaves the chosen entities the same."""
    names = [f"e{i}" for i in range(8)]
    train = torch.tensor([[0, 0, 1], [1, 0, 2], [5, 0, 6]])
    valid = torch.tensor([[0, 0, 7]])  # a held-out edge from the start entity
    test = torch.tensor([[2, 0, 3]])
    kg = MultiModalKG(names, ["r"], train, valid, test, name="toy",
                      texts={"name": names})
    sub = neighbourhood(kg, 3, seed=0, start=["e0"])
    assert sub.entity_names == ["e0", "e1", "e2"]  # 7 is reachable only through valid
    assert sub.name == "toy[3 entities]" and sub.texts["name"] == ["e0", "e1", "e2"]
    assert sub.train.tolist() == [[0, 0, 1], [1, 0, 2]] and len(sub.valid) == 0
    moved = MultiModalKG(names, ["r"], train, torch.tensor([[4, 0, 3]]),
                         torch.tensor([[6, 0, 7]]), name="toy")
    assert neighbourhood(moved, 3, seed=0, start=[0]).entity_names == sub.entity_names
    # Exhausted component: continues from random entities until the size is reached.
    assert len(neighbourhood(kg, 6, seed=0, start=[0]).entity_names) == 6
    with pytest.raises(ValueError, match="not entity names"):
        neighbourhood(kg, 3, start=["nope"])
