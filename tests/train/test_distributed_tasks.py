"""Data-parallel K3M (pretraining, item classification) and MKGformer RE on 2 gloo ranks
(``torch.multiprocessing.spawn`` through :func:`mmgnn.train.distributed.launch`, a free port,
one thread per rank), and ``mmgnn pretrain / train --nproc 2`` end to end.

Each spawned run writes what its ranks hold into ``tmp_path``; the test process compares.
The K3M graph (the real K3M-sample, tokenised once per module) travels to the ranks pickled.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from mmgnn.models.k3m import K3M, K3MConfig, classification_accuracy
from mmgnn.models.k3m.heads import ItemClassifier
from mmgnn.models.k3m.pretraining import K3MPretraining
from mmgnn.train import TrainConfig, seed_everything
from mmgnn.train import distributed as dist_mod
from mmgnn.train.config import K3M_FINETUNE, K3M_PRETRAIN
from mmgnn.train.distributed import launch
from mmgnn.train.k3m import ENCODER, accuracy, finetune_classification, pretrain
from mmgnn.utils.io import load_checkpoint
from tests.train.test_distributed import untimed

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

WORLD = 2
#: 2 ranks x (parts of a global batch G) vs 1 process x G for K3M item classification,
#: float64 throughout, dropout 0, AdamW with the linear warmup / decay schedule: the
#: parameters agree to this. Measured: at most 1.7e-13 (word embeddings; the attention key
#: bias, whose gradient is zero up to rounding, 2.6e-15): the two halves' gradients are
#: summed in another order, and AdamW's division by the root of the second moment turns
#: gradients at the rounding level into steps of their own (losses agree to 2e-15).
EQUIVALENCE_ATOL = 1e-12


def spawn(fn, *args) -> None:
    launch(fn, WORLD, *args, threads=1, backend="gloo")


@pytest.fixture(scope="module")
def graph(data_root):
    from mmgnn.models.k3m import load_product_graph

    return load_product_graph("K3M-sample", data_root)


def tiny_k3m(graph, **changes) -> K3M:
    return K3M(K3MConfig.tiny(**{"streams": ("title", "knowledge"), **changes})).attach(graph)


# ----------------------------------------------------------------- K3M pretraining
#: 11 items at global batch 3: batches of 3, 3, 3 and 2, whose parts (1 and 2 items, 1 and
#: 1) never give rank 0 an LP pair (its epoch logs lp 0 so that the ranks' sums match).
PRETRAIN = dict(epochs=2, batch_size=3, lr=1e-3, seed=0)
ITEMS = 11


def pretrain_objective(graph) -> K3MPretraining:
    seed_everything(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no image stream: MOM skipped
        return K3MPretraining(tiny_k3m(graph, fusion="hard"), lp="code")  # Gumbel draws too


def _pretrain(graph, out: str) -> None:
    objective = pretrain_objective(graph)
    before = {k: v.clone() for k, v in objective.state_dict().items()}
    trainer = pretrain(objective, torch.arange(ITEMS), TrainConfig(**{**K3M_PRETRAIN, **PRETRAIN}),
                       out_dir=Path(out) / "run", progress=False)
    torch.save({"state": objective.state_dict(), "before": before, "steps": trainer.steps,
                "history": trainer.history,
                "masks": objective.mask(torch.arange(8), trainer.local_generator),
                "noisy_accuracy": accuracy(noisy_classifier(graph), torch.arange(30),
                                           graph["entity"].y, batch_size=8)},
               Path(out) / f"rank{dist_mod.rank()}.pt")


def noisy_classifier(graph) -> ItemClassifier:
    """A classifier whose evaluation draws hard IIFM's Gumbel noise (``eval_noise``)."""
    seed_everything(1)
    return ItemClassifier(tiny_k3m(graph, fusion="hard", eval_noise=True),
                          len(graph.category_names))


def test_k3m_pretraining_ranks_hold_identical_parameters(graph, tmp_path) -> None:
    """K3M pretraining (MLM, PV, the released two-way LP; hard IIFM's Gumbel draws and
    dropout from each rank's stream) on 2 ranks: after 8 steps every rank holds the same
    parameters, bit for bit, and the same epoch losses; the ranks' masks differ; only rank 0
    wrote the folder, encoder.pt holds the ranks' weights; a 2-rank checkpoint does not
    resume in one process. Accuracy with ``eval_noise`` (not sharded) is one process's."""
    spawn(_pretrain, graph, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    a, b = ranks
    assert a["steps"] == b["steps"] == 2 * 4
    for key, value in a["state"].items():
        assert torch.equal(value, b["state"][key]), key
    assert [k for k, v in a["state"].items() if not torch.equal(v, a["before"][k])]
    assert untimed(a["history"]) == untimed(b["history"])
    assert {"mlm", "pv", "lp"} <= set(a["history"][0])
    ids = {r: m["text"]["title"][0] for r, m in enumerate((a["masks"], b["masks"]))}
    assert not torch.equal(ids[0], ids[1])  # masks from (seed, rank) streams
    # eval_noise: every rank scores every item (the draws run on from batch to batch)
    assert a["noisy_accuracy"] == b["noisy_accuracy"] == classification_accuracy(
        noisy_classifier(graph), torch.arange(30), graph["entity"].y, batch_size=8)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pt", ENCODER, "metrics.json", "training.png"]
    encoder = load_checkpoint(run / ENCODER)["model"]
    for key, value in encoder.items():
        assert torch.equal(value, a["state"][f"model.{key}"]), key
    assert load_checkpoint(run / "checkpoint.pt")["world_size"] == 2
    with pytest.raises(ValueError, match="written by a run of 2 rank"):
        pretrain(pretrain_objective(graph), torch.arange(ITEMS),
                 TrainConfig(**{**K3M_PRETRAIN, **PRETRAIN, "epochs": 3}), out_dir=run,
                 resume=True, progress=False)


# ------------------------------------------------------- K3M item classification
#: 61 training items at global batch 20: batches of 20, 20, 20 and 1 (an empty part on
#: rank 1), 2 epochs; 30 test items (evaluated in batches of 64 and of 8).
CLASSIFY = dict(epochs=2, batch_size=20, lr=3e-3, seed=0)


def classification_run(graph) -> tuple[dict, list[dict], list[float]]:
    """Fine-tuning a tiny K3M (dropout 0) in float64; its state, history and the sharded
    accuracies on the test items at evaluation batches of 8."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        seed_everything(0)
        clf = ItemClassifier(tiny_k3m(graph, dropout=0.0), len(graph.category_names),
                             dropout=0.0)
        y = graph["entity"].y
        items = torch.arange(91)
        trainer = finetune_classification(clf, y, items[:61], items[61:],
                                          TrainConfig(**{**K3M_FINETUNE, **CLASSIFY}),
                                          progress=False)
        acc = [accuracy(clf, items[61:], y, batch_size=8), accuracy(clf, items, y, 8)]
    finally:
        torch.set_default_dtype(dtype)
    return clf.state_dict(), trainer.history, acc


def _classify(graph, out: str) -> None:
    torch.save(classification_run(graph), Path(out) / f"rank{dist_mod.rank()}.pt")


def test_k3m_classification_two_ranks_take_the_steps_of_one_process(graph, tmp_path) -> None:
    """2 ranks x parts of a global batch G reach the parameters of 1 process x batch G
    (cross-entropy is a mean over items; dropout 0), an empty last part included; the
    per-epoch and final accuracies, computed sharded, equal one process's exactly."""
    spawn(_classify, graph, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    single, history, acc = classification_run(graph)
    assert single["lin.weight"].dtype == torch.float64
    gap = 0.0
    for key, value in single.items():
        assert torch.equal(ranks[0][0][key], ranks[1][0][key]), key
        gap = max(gap, float((ranks[0][0][key] - value).abs().max()))
    assert gap <= EQUIVALENCE_ATOL, gap
    print(f"K3M classification, 2 ranks vs 1 process, max |param gap| {gap:.2e}")
    seed_everything(0)
    untrained = tiny_k3m(graph, dropout=0.0).state_dict()
    assert not torch.allclose(single["model.aggregator.lin_item.weight"],
                              untrained["aggregator.lin_item.weight"].double())
    for rank_history, rank_acc in (ranks[0][1:], ranks[1][1:]):
        assert rank_acc == acc
        assert [(h["train_accuracy"], h["test_accuracy"]) for h in rank_history] == \
            [(h["train_accuracy"], h["test_accuracy"]) for h in history]
        for h, one in zip(rank_history, history, strict=True):
            assert h["loss"] == pytest.approx(one["loss"], rel=1e-12, abs=0)


# ------------------------------------------------------------- MKGformer RE
RE_ROWS = [
    ("['Alice', 'lives', 'in', 'Paris']", "Alice", [0, 1], "Paris", [3, 4], "REL"),
    ("['Bob', 'met', 'Carol', 'today']", "Bob", [0, 1], "Carol", [2, 3], "None"),
    ("['Dan', 'moved', 'to', 'Rome', 'again']", "Dan", [0, 1], "Rome", [3, 4], "REL"),
]


def re_folder(root: Path, sizes: dict[str, int]) -> Path:
    """An MNRE-format folder: ``sizes`` rows per split, cycling over :data:`RE_ROWS`."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        rows = [RE_ROWS[i % len(RE_ROWS)] for i in range(n)]
        (root / f"mnre_{split}.txt").write_text("".join(
            f"{{'token': {w}, 'h': {{'name': '{h}', 'pos': {hp}}}, 't': {{'name': '{t}', "
            f"'pos': {tp}}}, 'img_id': 'x{i}.jpg', 'relation': '{r}'}}\n"
            for i, (w, h, hp, t, tp, r) in enumerate(rows)))
    return root


def re_model_args() -> dict:
    from tests.models.text_task_helpers import tiny_encoder

    encoder, tokenizer, _ = tiny_encoder(vision=True, seed=0)
    return {"encoder": encoder, "tokenizer": tokenizer}


RE_TRAIN = dict(optimizer="adamw", lr=3e-3, batch_size=5, epochs=2, scheduler="none",
                seed=0)


def _relation_extraction(data: str, out: str) -> None:
    import mmgnn.recipes.mkgformer_tasks as recipe
    from mmgnn.data.mnre import load_mnre
    from mmgnn.train.loop import Trainer
    from mmgnn.train.text_tasks import evaluate_relations, evaluate_tagging

    states: list[dict] = []

    class Recording(Trainer):  # the trained model after every epoch, on this rank
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.callbacks.append(lambda t, _: states.append(
                {k: v.clone() for k, v in t.model.state_dict().items()}))
            states.append(self)

    recipe.Trainer = Recording  # this rank's process only
    res = recipe.text_task_run(Path(out) / "run", model="mkgformer_re", dataset=data,
                               model_args=re_model_args(), train=TrainConfig(**RE_TRAIN),
                               progress=False)
    trainer, epochs = states[0], states[1:]
    test = load_mnre(data)["test"]
    torch.save({"results": res, "epochs": epochs, "history": trainer.history,
                "final": trainer.model.state_dict(),
                "small_batches": evaluate_relations(trainer.model, test, batch_size=3),
                "tagging": evaluate_tagging(ner_model(), tagged(), batch_size=2)},
               Path(out) / f"rank{dist_mod.rank()}.pt")


def ner_model():
    """An untrained tiny NER model (random weights: its tags vary)."""
    from mmgnn.data.twitter_ner import NER_TAGS
    from mmgnn.models.mkgformer_ner import MKGformerNER

    seed_everything(3)
    return MKGformerNER(len(NER_TAGS), **re_model_args())


def tagged():
    """7 tagged sentences (4 evaluation batches of 2: 2 per rank)."""
    from mmgnn.data.twitter_ner import NER_TAGS, TaggedSentences

    words = [["Alice", "lives", "in", "Paris"], ["Bob", "met", "Carol"]] * 3 + [["Rome"]]
    tags = [torch.tensor([1, 0, 0, 3]), torch.tensor([1, 0, 1])] * 3 + [torch.tensor([3])]
    return TaggedSentences(words, tags, ["x.jpg"] * 7, list(NER_TAGS))


def test_relation_extraction_on_two_ranks(tmp_path) -> None:
    """MKGformer RE (hybrid tiny encoder, dropout from each rank's stream) on 2 ranks through
    the recipe: the ranks hold the same weights after every epoch and test the same
    best.pt; the test F1, computed sharded, is one process's on those weights (also at
    evaluation batches of 3, 4 batches shared out; NER's scoring likewise); rank 0 alone
    wrote the folder, the F1 once, in results.json and metrics.json."""
    from mmgnn.data.mnre import load_mnre
    from mmgnn.models.mkgformer_re import MKGformerRE
    from mmgnn.train.text_tasks import evaluate_relations, evaluate_tagging

    data = re_folder(tmp_path / "mnre", {"train": 13, "val": 6, "test": 10})
    spawn(_relation_extraction, str(data), str(tmp_path))
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD))
    assert len(a["epochs"]) == len(b["epochs"]) == 2
    for sa, sb in zip(a["epochs"], b["epochs"], strict=True):
        for key, value in sa.items():
            assert torch.equal(value, sb[key]), key
    assert not all(torch.equal(v, a["epochs"][1][k]) for k, v in a["epochs"][0].items())
    for key, value in a["final"].items():
        assert torch.equal(value, b["final"][key]), key
    assert untimed(a["history"]) == untimed(b["history"])
    ra, rb = a["results"], b["results"]
    assert ra["test"] == rb["test"] and ra["world_size"] == 2
    assert ra["steps"] == 2 * 3 and ra["examples_seen"] == 26  # global batches 5, 5, 3
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt", "checkpoint.pt", "config.json", "metrics.json", "results.json",
        "training.png"]
    written = json.loads((run / "results.json").read_text())
    assert written["test"] == ra["test"] and written["world_size"] == 2
    assert json.loads((run / "metrics.json").read_text())["final"]["test"] == ra["test"]
    # one process on the same weights: the same figures, at batches of 64 and of 3
    seed_everything(0)
    model = MKGformerRE(2, **re_model_args())
    model.load_state_dict(a["final"])
    test = load_mnre(data)["test"]
    assert evaluate_relations(model, test) == ra["test"]
    assert evaluate_relations(model, test, batch_size=3) == a["small_batches"] == \
        b["small_batches"]
    assert load_checkpoint(run / "best.pt")["epoch"] == ra["best_epoch"]
    # NER's sharded scoring too (an untrained model, 4 batches of 2 sentences)
    tagging = evaluate_tagging(ner_model(), tagged(), batch_size=2)
    assert a["tagging"] == b["tagging"] == tagging and tagging["sentences"] == 7
    print(f"RE test {ra['test']}; NER {tagging}")


# ------------------------------------------------------------------- CLI
CLI = ["--model.streams", "[knowledge]", "--epochs", "1", "--quiet"]


def test_cli_pretrain_nproc(data_root, tmp_path, capfd) -> None:
    """``mmgnn pretrain --nproc 2`` on K3M-sample (one stream, 1 epoch of 2 steps): one
    folder written by rank 0, a checkpoint of 2 ranks, the notes and the result line printed
    once."""
    from mmgnn.cli import main

    pre = tmp_path / "pre"
    assert main(["pretrain", "--nproc", "2", "--root", str(data_root), "--train.batch_size",
                 "250", "--out", str(pre), *CLI]) == 0
    out = capfd.readouterr().out
    assert out.count("pretrained 1 epochs (2 steps)") == 1, out
    assert out.count("note: masked object") == 1, out
    assert sorted(p.name for p in pre.iterdir()) == [
        "checkpoint.pt", "config.json", ENCODER, "metrics.json", "training.png"]
    assert load_checkpoint(pre / "checkpoint.pt")["world_size"] == 2
    metrics = json.loads((pre / "metrics.json").read_text())
    assert metrics["steps"] == 2 and {"pv", "lp"} <= set(metrics["history"][0])


def test_cli_classification_nproc(data_root, tmp_path, capfd) -> None:
    """``mmgnn train --model k3m --task classification --nproc 2`` on K3M-sample (from
    scratch, one stream, 1 epoch): results.json and metrics.json "final" written once by rank
    0 with the sharded test accuracy, a checkpoint of 2 ranks, the result line printed once."""
    from mmgnn.cli import main

    cls = tmp_path / "cls"
    assert main(["train", "--model", "k3m", "--task", "classification", "--nproc", "2",
                 "--root", str(data_root), "--train.batch_size", "150", "--out", str(cls),
                 *CLI]) == 0
    out = capfd.readouterr().out
    assert out.count("test accuracy") == 1, out
    results = json.loads((cls / "results.json").read_text())
    assert results["world_size"] == 2 and results["test_items"] == 94
    assert results["steps"] == -(-results["train_items"] // 150)
    assert load_checkpoint(cls / "checkpoint.pt")["world_size"] == 2
    assert json.loads((cls / "metrics.json").read_text())["final"]["test"]["accuracy"] == \
        results["test_accuracy"]
    assert sorted(p.name for p in cls.iterdir()) == [
        "checkpoint.pt", "config.json", "metrics.json", "model.pt", "results.json",
        "training.png"]
