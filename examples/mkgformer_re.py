"""MKGformer's relation extraction (Chen et al., SIGIR 2022) on MNRE, on a small slice: the
sentence with entity markers ``<s> head </s>`` / ``<o> tail </o>`` through the hybrid
transformer (MiniLM-L6 text model, a random ViT tower, PGI + CAF in the last layers), the
concatenated marker states into a linear classifier, micro P/R/F1 without ``None``.

    MMGNN_DATA=/path/to/datasets HF_HUB_OFFLINE=1 python examples/mkgformer_re.py
    python examples/mkgformer_re.py --train-examples 2000 --test-examples 0   # all 1,614
    python examples/mkgformer_re.py --images /path/to/mnre/img_org/train      # with images

MNRE's images are not here: every example's image is missing and masked (the text stream is
then MiniLM's own). With ``--images`` the examples whose ``img_id`` file exists there run
through the vision tower. A few minutes on a 2-core CPU with the defaults (400 training
sentences, 300 test sentences). The released recipe (12 epochs, batch 32, lr 1e-5) runs with

    mmgnn train --config configs/mkgformer-mnre.yaml --out runs/mnre
"""

from __future__ import annotations

import argparse

import torch

from mmgnn.data.mnre import load_mnre
from mmgnn.modalities.example_images import load_example_images
from mmgnn.models import MKGformerRE
from mmgnn.train import TrainConfig, seed_everything
from mmgnn.train.loop import Trainer
from mmgnn.train.text_tasks import RelationExtractionTask, evaluate_relations


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", help="folder holding MNRE/ (default: $MMGNN_DATA)")
    p.add_argument("--images", help="folder of the examples' images")
    p.add_argument("--text-only", action="store_true", help="the same head on MiniLM alone")
    p.add_argument("--train-examples", type=int, default=400)
    p.add_argument("--test-examples", type=int, default=300, help="0: the whole test split")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    splits = load_mnre("MNRE", args.root)
    train, test = splits["train"], splits["test"]
    g = torch.Generator().manual_seed(args.seed)
    if args.test_examples:
        test = test.subset(torch.randperm(len(test), generator=g)[:args.test_examples])
    print(f"MNRE: {len(train)} training sentences ({args.train_examples} seen), "
          f"{len(test)} test, {len(train.labels)} relations")

    seed_everything(args.seed)  # before any weight is drawn
    model = MKGformerRE(len(train.labels), vision=None if args.text_only else "random")
    print(model)
    pixels = None
    if args.images:
        pixels = load_example_images(args.images, train.images + test.images, model.image_size,
                                     model.image_mean, model.image_std)
        print(f"images found for {len(pixels)} examples")

    config = TrainConfig(optimizer="adamw", lr=args.lr, weight_decay=0.01, batch_size=16,
                         epochs=1, scheduler="linear", warmup_ratio=0.06, seed=args.seed)
    task = RelationExtractionTask(train, images=pixels, examples=args.train_examples)
    Trainer(model, task, config).fit()

    res = evaluate_relations(model, test, pixels)
    print(f"test micro P {res['precision']:.4f}  R {res['recall']:.4f}  F1 {res['f1']:.4f}  "
          f"(accuracy {res['accuracy']:.4f}, {res['support']} gold relations besides None)")


if __name__ == "__main__":
    main()
