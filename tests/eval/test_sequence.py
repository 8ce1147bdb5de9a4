"""Metrics of the RE and NER tasks: the released RE formula written out, BIO chunking by
hand, and entity F1 equal to seqeval's on random tag sequences."""

import random

import pytest

from mmgnn.eval.sequence import bio_entities, entity_prf, relation_prf


def test_relation_prf_by_hand():
    # negative label 0; gold positives at 1, 2, 3, 5; predicted positives at 1, 2, 4, 5
    gold = [0, 1, 2, 3, 0, 5]
    pred = [0, 1, 3, 0, 4, 5]
    out = relation_prf(gold, pred, negative=0)
    tp = 2  # positions 1 and 5
    assert out["precision"] == pytest.approx(tp / 4)
    assert out["recall"] == pytest.approx(tp / 4)
    assert out["f1"] == pytest.approx(0.5)
    assert out["accuracy"] == pytest.approx(3 / 6)
    assert out["support"] == 4
    # all-negative predictions: precision 0 by the released convention, not an error
    assert relation_prf([1, 0], [0, 0], 0)["f1"] == 0.0
    # no negative label: accuracy equals micro F1
    assert relation_prf(gold, pred, None)["f1"] == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="2 gold labels but 1"):
        relation_prf([0, 1], [0], 0)


def test_bio_entities_by_hand():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-ORG", "B-ORG", "I-PER", "X", "I-MISC"]
    assert bio_entities(tags) == [("PER", 0, 2), ("LOC", 3, 5), ("ORG", 5, 6), ("ORG", 6, 7),
                                  ("PER", 7, 8), ("MISC", 9, 10)]
    assert bio_entities(["O", "O"]) == []
    assert bio_entities(["B-PER"]) == [("PER", 0, 1)]


def test_entity_prf_by_hand():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O"]]
    pred = [["B-PER", "O", "O"], ["B-LOC", "O"]]  # one of two right, two predicted
    out = entity_prf(gold, pred)
    assert (out["precision"], out["recall"], out["f1"]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1"):
        entity_prf(gold, [pred[0], ["O"]])


def test_entity_prf_equals_seqeval():
    seqeval = pytest.importorskip("seqeval.metrics")  # extras_require["test"]
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    rng = random.Random(0)
    for trial in range(300):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))]
                for _ in range(rng.randint(1, 6))]
        # predictions near the gold tags (so that matches happen) with random edits
        pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in s] for s in gold]
        ours = entity_prf(gold, pred)
        for key, fn in (("precision", seqeval.precision_score),
                        ("recall", seqeval.recall_score), ("f1", seqeval.f1_score)):
            assert ours[key] == pytest.approx(fn(gold, pred), abs=1e-12), (trial, key)
