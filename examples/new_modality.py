"""Add a new modality to mmgnn and train a model with it, unchanged.

    MMGNN_DATA=/path/to/datasets python examples/new_modality.py                 # Nations, ~10 s
    python examples/new_modality.py --dataset DB15K --epochs 2                   # a few minutes

The new modality is ``char_ngrams``: a hashed bag of the character trigrams of each entity's
name (``kg.texts["name"]``, or the raw entity id), an encoder with no weights. A modality is
three methods on a :class:`mmgnn.modalities.Modality` subclass:

- ``read(kg)``: the raw data per entity (here the names; for audio, the list of files in
  ``folder/<entity>/``; ``None`` where the entity has none);
- ``encode(raw)``: a :class:`~mmgnn.modalities.ModalityFeatures` with ``x`` :obj:`(N, d)` (or
  :obj:`(N, L, d)` with ``lengths``) and the presence ``mask`` :obj:`(N,)`;
- ``settings()``: what, besides the raw data, determines the features: the cache key.

``@register_modality("char_ngrams")`` makes it available by name to ``build_modality``,
``attach_modalities``, ``DataSpec(modalities=[...])`` and therefore ``mmgnn train
--data.modalities [char_ngrams]`` in a program that imports this module. The features are
cached on disk like the built-in ones. Once attached, the modality is a node attribute of the
graph (``kg["entity"].x_char_ngrams``) and any model that reads modalities takes it by name
(``build_model(..., modality_names=["char_ngrams"])``), unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import warnings

import torch

from mmgnn.data import load_dataset
from mmgnn.eval import evaluate
from mmgnn.modalities import Modality, ModalityFeatures, attach_modalities, register_modality
from mmgnn.models import build_model
from mmgnn.train import TrainConfig, fit, seed_everything


@register_modality("char_ngrams")
class CharNgramModality(Modality):
    """Hashed character n-gram counts of the entity name, L2-normalised: :obj:`(N, dim)`."""

    def __init__(self, n: int = 3, dim: int = 256, name: str | None = None) -> None:
        super().__init__(name)
        self.n, self.dim = n, dim

    def read(self, kg):
        names = kg.texts.get("name") or kg.entity_names
        return [name.lower() if name else None for name in names]

    def settings(self):
        return {"n": self.n, "dim": self.dim}

    def encode(self, raw, progress=True):
        x = torch.zeros(len(raw), self.dim)
        for i, name in enumerate(raw):
            padded = f"#{name or ''}#"
            for j in range(len(padded) - self.n + 1):
                digest = hashlib.blake2b(padded[j:j + self.n].encode(), digest_size=4).digest()
                x[i, int.from_bytes(digest, "little") % self.dim] += 1.0
        mask = torch.tensor([bool(name) for name in raw])
        return ModalityFeatures(torch.nn.functional.normalize(x, dim=1) * mask[:, None], mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Nations")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the releases' quirks are documented in datasets/
        kg = load_dataset(args.dataset)
    attach_modalities(kg, ["char_ngrams"], {"char_ngrams": {"dim": 128}})
    print(kg)
    config = TrainConfig(regime="1vsall", lr=0.01, batch_size=256, epochs=args.epochs,
                         eval_every=0)
    seed_everything(config.seed)  # before the weights are drawn
    # The same model class as for text or images: its modality store reads kg's char_ngrams.
    model = build_model("multimodal", kg, modality_names=["char_ngrams"], decoder="distmult",
                        dim=64, reciprocal=True)
    print(model)
    fit(model, kg, config, progress=False)
    print(evaluate(model, kg, "test", progress=False).format())


if __name__ == "__main__":
    main()
