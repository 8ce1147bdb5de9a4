"""MMRNS (Xu et al., ACM MM 2022): learned, relation-aware hard negatives for any decoder,
next to uniform sampling with the same decoder, loss and number of epochs.

    MMGNN_DATA=/path/to/datasets python examples/mmrns.py                 # Nations, ~20 s
    python examples/mmrns.py --decoder transe
    python examples/mmrns.py --dataset DB15K --minutes 3 --dim 100 --pre-sample 128 \\
        --text-tokens 8            # text view from MiniLM token states of the entity names

On Nations the sampler's semantic view reads the two numeric literals as a one-token
modality (Nations has no text); on DB15K the names' token states (built once, cached). The
same run from the command line (``configs/mmrns-db15k.yaml`` holds the released DB15K recipe):

    mmgnn train --dataset DB15K --model rotate --model.margin 6 \\
        --train.loss self_adversarial --train.margin 0 --train.sampler mmrns \\
        --train.num_negatives 16 --data.modalities [text] \\
        --data.modality_args.text.output sequence --data.modality_args.text.max_length 8 \\
        --train.sampler_args.text_tokens 8 --train.sampler_args.pre_sample 256 \\
        --out runs/db15k-mmrns
"""

from __future__ import annotations

import argparse
import warnings

from mmgnn.data import load_dataset
from mmgnn.eval import evaluate
from mmgnn.modalities import attach_modalities
from mmgnn.models import build_model
from mmgnn.train import TrainConfig, fit, seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="Nations")
    parser.add_argument("--decoder", default="rotate", choices=("rotate", "transe", "pairre"))
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--pre-sample", type=int, default=1500)
    parser.add_argument("--text-tokens", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--minutes", type=float, help="training budget per run")
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg = load_dataset(args.dataset, add_side_info=True)
        if args.dataset == "Nations":
            sampler_args = {"text": "numeric", "text_tokens": 1}
        else:
            attach_modalities(kg, ["text"], {"text": {"output": "sequence",
                                                      "max_length": args.text_tokens}})
            sampler_args = {"text_tokens": args.text_tokens}
    sampler_args.update(pre_sample=args.pre_sample, attention_channels=16)
    # The decoder's own arguments: RotatE's and PairRE's gamma is in the score; TransE-L1's
    # margin is the loss's.
    decoder_args = {"margin": 6.0} if args.decoder != "transe" else {"p_norm": 1}
    print(kg)
    for sampler in ("uniform", "mmrns"):
        config = TrainConfig(loss="self_adversarial",
                             margin=6.0 if args.decoder == "transe" else 0.0,
                             num_negatives=args.negatives, sampler=sampler,
                             sampler_args=sampler_args if sampler == "mmrns" else {},
                             batch_size=128 if args.dataset == "Nations" else 512,
                             lr=0.02 if args.dataset == "Nations" else 1e-3,
                             epochs=args.epochs, eval_every=10, patience=0,
                             max_minutes=args.minutes, budget_clock="cpu")
        seed_everything(config.seed)  # the same initial weights for both samplers
        model = build_model(args.decoder, kg, dim=args.dim, **decoder_args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = fit(model, kg, config, progress=False)
        if sampler == "mmrns":
            learned = trainer.task.sampler
            print(learned, f"temperature now {learned.temperature():.2f}")
        test = evaluate(model, kg, "test", progress=False)
        print(f"{sampler:>8}: " + test.format().splitlines()[-1].strip())


if __name__ == "__main__":
    main()
