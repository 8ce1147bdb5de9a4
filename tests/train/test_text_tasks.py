"""RE / NER on the one Trainer: the examples budget, bit-identical repeats, learning on a tiny
task, the recipe's run folder (results.json, metrics.json "final"), and the paired hybrid /
text-only runs with every image masked."""

from __future__ import annotations

import json

import pytest
import torch

from mmgnn.data.mnre import RelationExamples
from mmgnn.data.twitter_ner import NER_TAGS, TaggedSentences
from mmgnn.models.mkgformer_ner import MKGformerNER
from mmgnn.models.mkgformer_re import MKGformerRE
from mmgnn.train.config import TrainConfig
from mmgnn.train.loop import Trainer, seed_everything
from mmgnn.train.text_tasks import (
    RelationExtractionTask,
    TaggingTask,
    evaluate_relations,
    evaluate_tagging,
)
from tests.models.text_task_helpers import tiny_encoder

CONFIG = dict(optimizer="adamw", lr=3e-3, batch_size=4, epochs=1, scheduler="none")


def relations() -> RelationExamples:
    words = [["Alice", "lives", "in", "Paris"], ["Bob", "met", "Carol", "today"]] * 4
    head = torch.tensor([[0, 1], [0, 1]] * 4)
    tail = torch.tensor([[3, 4], [2, 3]] * 4)
    return RelationExamples(words, head, tail, torch.tensor([0, 1] * 4), ["x.jpg"] * 8,
                            ["/per/loc/place_of_residence", "None"])


def sentences() -> TaggedSentences:
    words = [["Alice", "lives", "in", "Paris"], ["Bob", "met", "Carol"]] * 3
    tags = [torch.tensor([1, 0, 0, 3]), torch.tensor([1, 0, 1])] * 3
    return TaggedSentences(words, tags, ["x.jpg"] * 6, list(NER_TAGS))


def re_run(seed: int = 0, vision: bool = True, examples: int = 12, epochs: int = 1):
    seed_everything(seed)
    encoder, tokenizer, _ = tiny_encoder(vision, seed=seed)
    model = MKGformerRE(2, encoder=encoder, tokenizer=tokenizer, dropout=0.1)
    task = RelationExtractionTask(relations(), relations(), examples=examples)
    trainer = Trainer(model, task, TrainConfig(**{**CONFIG, "epochs": epochs, "seed": seed}),
                      progress=False)
    trainer.fit()
    return trainer, task


def test_examples_budget_and_repeats(one_thread):
    trainer, task = re_run(examples=10)
    assert task.seen == 10 and trainer.steps == 3  # 4 + 4 + 2 drawn over two passes of 8
    again, _ = re_run(examples=10)
    for (k, a), b in zip(trainer.model.state_dict().items(),
                         again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert trainer.history[-1]["valid_f1"] == again.history[-1]["valid_f1"]


def test_hybrid_and_text_only_are_paired_when_images_are_masked(one_thread):
    hybrid, _ = re_run(vision=True)
    plain, _ = re_run(vision=False)
    ours = plain.model.state_dict()
    for k, v in hybrid.model.state_dict().items():
        if k in ours:
            assert torch.equal(v, ours[k]), k


def test_relation_extraction_learns(one_thread):
    trainer, _ = re_run(examples=48, epochs=2)
    res = evaluate_relations(trainer.model, relations())
    assert res["f1"] == 1.0 and trainer.history[-1]["loss"] < trainer.history[0]["loss"]


def test_tagging_learns(one_thread):
    seed_everything(0)
    encoder, tokenizer, _ = tiny_encoder(True)
    model = MKGformerNER(len(NER_TAGS), encoder=encoder, tokenizer=tokenizer, head_lr=0.05)
    trainer = Trainer(model, TaggingTask(sentences(), examples=36),
                      TrainConfig(**{**CONFIG, "epochs": 2}), progress=False)
    trainer.fit()
    assert evaluate_tagging(model, sentences())["f1"] == 1.0
    assert trainer.history[-1]["loss"] < trainer.history[0]["loss"]


def test_recipe_run_folder(one_thread, tmp_path):
    from mmgnn.recipes.mkgformer_tasks import text_task_run, training_fraction

    folder = tmp_path / "MNRE"
    folder.mkdir()
    data = relations()
    for name in ("mnre_train.txt", "mnre_val.txt", "mnre_test.txt"):
        (folder / name).write_text("".join(
            repr({"token": w, "h": {"name": "h", "pos": h.tolist()},
                  "t": {"name": "t", "pos": t.tolist()}, "img_id": "x.jpg",
                  "relation": data.labels[y]}) + "\n"
            for w, h, t, y in zip(data.tokens, data.head, data.tail, data.y.tolist(),
                                  strict=True)))
    encoder, tokenizer, _ = tiny_encoder(False)
    res = text_task_run(tmp_path / "run", model="mkgformer_re", dataset=str(folder),
                        model_args={"encoder": encoder, "tokenizer": tokenizer},
                        train=TrainConfig(**CONFIG), fraction=0.5, examples=8, progress=False)
    assert res["train_examples"] == 4 and res["examples_seen"] == 8
    assert set(res["test"]) >= {"precision", "recall", "f1", "accuracy"}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["final"]["test"]["f1"] == res["test"]["f1"]
    assert (tmp_path / "run" / "best.pt").is_file()
    assert training_fraction(100, 0.05, 3).tolist() == training_fraction(100, 0.05, 3).tolist()
    assert len(training_fraction(100, 0.05, 3)) == 5
    with pytest.raises(ValueError, match="fraction must be in"):
        training_fraction(10, 0.0, 0)
