"""MKGformer's NER (Chen et al., SIGIR 2022) on Twitter-2017, on a small slice: the tweet
through the hybrid transformer (MiniLM-L6 text model, a random ViT tower, PGI + CAF in the
last layers), a linear layer and a CRF over the words, BIO decoding, entity-level micro F1.

    MMGNN_DATA=/path/to/datasets HF_HUB_OFFLINE=1 python examples/mkgformer_ner.py
    python examples/mkgformer_ner.py --dataset Twitter2015 --crf-over wordpiece  # released CRF
    python examples/mkgformer_ner.py --images /path/to/twitter2017_images

The tweets' images are not here: every image is missing and masked (the text stream is then
MiniLM's own); with ``--images`` the tweets whose ``IMGID.jpg`` exists there run through the
vision tower. A few minutes on a 2-core CPU with the defaults (400 training tweets, 300 test
tweets). The released recipe (30 epochs, batch 16, lr 3e-5, CRF lr 5e-2) runs with

    mmgnn train --config configs/mkgformer-twitter2017.yaml --out runs/t17
"""

from __future__ import annotations

import argparse

import torch

from mmgnn.data.twitter_ner import load_twitter_ner
from mmgnn.modalities.example_images import load_example_images
from mmgnn.models import MKGformerNER
from mmgnn.train import TrainConfig, seed_everything
from mmgnn.train.loop import Trainer
from mmgnn.train.text_tasks import TaggingTask, evaluate_tagging


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="Twitter2017", choices=("Twitter2015", "Twitter2017"))
    p.add_argument("--root", help="folder holding the dataset (default: $MMGNN_DATA)")
    p.add_argument("--images", help="folder of the tweets' images")
    p.add_argument("--text-only", action="store_true", help="the same head on MiniLM alone")
    p.add_argument("--crf-over", default="word", choices=("word", "wordpiece"))
    p.add_argument("--train-examples", type=int, default=400)
    p.add_argument("--test-examples", type=int, default=300, help="0: the whole test split")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    splits = load_twitter_ner(args.dataset, args.root)
    train, test = splits["train"], splits["test"]
    g = torch.Generator().manual_seed(args.seed)
    if args.test_examples:
        test = test.subset(torch.randperm(len(test), generator=g)[:args.test_examples])
    print(f"{args.dataset}: {len(train)} training tweets ({args.train_examples} seen), "
          f"{len(test)} test, tags {', '.join(train.tag_names)}")

    seed_everything(args.seed)  # before any weight is drawn
    model = MKGformerNER(len(train.tag_names), vision=None if args.text_only else "random",
                         crf_over=args.crf_over, head_lr=5e-2)
    print(model)
    pixels = None
    if args.images:
        pixels = load_example_images(args.images, train.images + test.images, model.image_size,
                                     model.image_mean, model.image_std)
        print(f"images found for {len(pixels)} tweets")

    config = TrainConfig(optimizer="adamw", lr=args.lr, weight_decay=0.01, batch_size=16,
                         epochs=1, scheduler="linear", warmup_ratio=0.01, seed=args.seed)
    Trainer(model, TaggingTask(train, images=pixels, examples=args.train_examples),
            config).fit()

    res = evaluate_tagging(model, test, pixels)
    print(f"test entity-level micro P {res['precision']:.4f}  R {res['recall']:.4f}  "
          f"F1 {res['f1']:.4f}  ({res['support']} gold entities, {res['predicted']} predicted)")


if __name__ == "__main__":
    main()
