"""K3M (Zhu et al., ACM MM 2021) end to end on the real K3M-sample: the product knowledge
graph, knowledge-perceived pretraining, category classification, and the robustness of the
classifier to missing and noisy titles and missing knowledge.

    MMGNN_DATA=/path/to/datasets python examples/k3m.py          # tiny model, ~1-2 CPU min
    python examples/k3m.py --fusion soft --lp margin --aggregator code
    python examples/k3m.py --text-encoder bert-base-chinese --size base   # a real checkpoint

The text encoder is a random-initialised BERT over the dataset's bert-base-chinese vocabulary
unless ``--text-encoder`` names a ``transformers`` checkpoint (hub id or folder). The sample
ships image URLs, not images, so the image stream and masked object modelling are absent
(pass ``--image-features FILE`` with per-item features to add them). The model is built from
a size preset and :class:`~mmgnn.models.k3m.K3MConfig`'s own fields (``build_k3m(graph,
"tiny", fusion="soft")``); pretraining and fine-tuning are tasks of the one
:class:`~mmgnn.train.Trainer` with a plain :class:`~mmgnn.train.TrainConfig`. The same runs
from the command line (``configs/k3m-sample-pretrain.yaml`` and ``configs/k3m-sample.yaml``
hold the released recipe):

    mmgnn pretrain --dataset K3M-sample --model.fusion hard --out runs/k3m-pre
    mmgnn train --model k3m --task classification --dataset K3M-sample \\
        --init runs/k3m-pre/encoder.pt --out runs/k3m-cls
"""

from __future__ import annotations

import argparse
import warnings

import torch

from mmgnn.eval.robustness import robustness_sweep
from mmgnn.models.k3m import (
    ItemClassifier,
    K3MPretraining,
    build_k3m,
    category_split,
    classification_accuracy,
    load_product_graph,
)
from mmgnn.train import TrainConfig, seed_everything
from mmgnn.train.config import K3M_FINETUNE, K3M_PRETRAIN
from mmgnn.train.k3m import finetune_classification, pretrain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--text-encoder", help="transformers checkpoint (hub id or folder)")
    parser.add_argument("--fusion", default="hard", choices=("hard", "soft", "mean",
                                                             "interaction"))
    parser.add_argument("--aggregator", default="paper", choices=("paper", "code"))
    parser.add_argument("--lp", default="code", choices=("code", "margin"))
    parser.add_argument("--image-features", help="per-item image features (.pt/.npy/.npz)")
    parser.add_argument("--pretrain-minutes", type=float, default=1.0,
                        help="CPU-clock budget of pretraining (default: 1)")
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (tiny models: 1 is fastest; default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    graph = load_product_graph("K3M-sample", image_features=args.image_features)
    print(graph)
    changes = {"fusion": args.fusion, "aggregator": args.aggregator}
    if args.text_encoder:
        changes["text_encoder"] = args.text_encoder
    seed_everything(0)  # the seed of the TrainConfigs below, before the weights are drawn
    model = build_k3m(graph, args.size, **changes)  # a size preset and K3MConfig's own fields
    print(model)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        objective = K3MPretraining(model, lp=args.lp)
    for w in caught:
        print(f"note: {w.message}")
    items = torch.arange(graph.num_entities)  # every item of the product graph
    # K3M's optimiser (AdamW, linear decay); the budget ends the run, and without warmup the
    # rate stays near 1e-3 until then.
    pretrain(objective, items, TrainConfig(**{**K3M_PRETRAIN, "epochs": 100, "batch_size": 8,
                                              "lr": 1e-3, "warmup_ratio": 0.0,
                                              "max_minutes": args.pretrain_minutes,
                                              "budget_clock": "cpu"}))

    y = graph["entity"].y  # category ids
    train, test = category_split(y, min_count=2, test_fraction=0.3)
    majority = float((y[test] == y[train].bincount().argmax()).float().mean())
    classifier = ItemClassifier(model, len(graph.category_names))
    finetune_classification(classifier, y, train, test,
                            TrainConfig(**{**K3M_FINETUNE, "epochs": args.finetune_epochs,
                                           "batch_size": 16, "lr": 3e-3, "warmup_ratio": 0.0}))
    print(f"category accuracy {classification_accuracy(classifier, test, y):.4f} on "
          f"{len(test)} test items (majority class {majority:.4f})")

    classifier.eval()
    clean = {m: model.modality(m) for m in model.modality_names}
    report = robustness_sweep(
        model, None, ["TMR", "missing:knowledge", "TNR"], [0.0, 0.5, 1.0], features=clean,
        metric_fn=lambda: {"accuracy": classification_accuracy(classifier, test, y)},
        progress=False)
    print(report.format())


if __name__ == "__main__":
    main()
