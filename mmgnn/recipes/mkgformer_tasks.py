"""MKGformer's relation extraction (MNRE) and NER (Twitter-2015 / 2017) runs with a run folder,
as ``mmgnn train --model mkgformer_re`` / ``mkgformer_ner`` start them (also used by
``examples/mkgformer_re.py``, ``examples/mkgformer_ner.py`` and
``benchmarks/mkgformer_tasks.py``).

A run folder holds ``config.json``, ``checkpoint.pt``, ``metrics.json``, ``best.pt`` (with a
validation split) and ``results.json``: test precision / recall / F1 of the kept model, the
training budget, training examples per second and the peak memory.

In a process group (``mmgnn train --nproc W``, ``torchrun``) every rank runs
:func:`text_task_run` alike: same data, same model from the same seed; the
:class:`~mmgnn.train.Trainer` trains data-parallel (:mod:`mmgnn.train.text_tasks`); rank 0
alone writes the folder (``best.pt`` included) and prints; after training every rank loads
the same ``best.pt`` and the test split is scored sharded (one process's predictions,
gathered), so every rank returns the same results, written once by rank 0.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from mmgnn.data.mnre import load_mnre
from mmgnn.data.twitter_ner import load_twitter_ner
from mmgnn.modalities.example_images import load_example_images
from mmgnn.models.mkgformer_ner import MKGformerNER
from mmgnn.models.mkgformer_re import MKGformerRE
from mmgnn.train import distributed
from mmgnn.train.config import TrainConfig
from mmgnn.train.loop import BEST, METRICS, Trainer, seed_everything
from mmgnn.train.text_tasks import (
    RelationExtractionTask,
    TaggingTask,
    evaluate_relations,
    evaluate_tagging,
)
from mmgnn.utils.io import load_checkpoint, removed_on_failure, save_json

#: The two models and their task: (model class, task class, data loader, evaluation).
TEXT_MODELS = {
    "mkgformer_re": (MKGformerRE, RelationExtractionTask, load_mnre, evaluate_relations),
    "mkgformer_ner": (MKGformerNER, TaggingTask, load_twitter_ner, evaluate_tagging),
}
DEFAULT_DATASET = {"mkgformer_re": "MNRE", "mkgformer_ner": "Twitter2017"}


def training_fraction(n: int, fraction: float, seed: int) -> torch.Tensor:
    """A seeded random subset (sorted indices) of ``round(fraction * n)`` (at least one) of
    ``n`` training examples: the low-resource settings (the paper reports them only in
    figures, without their sampling rule)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = max(1, round(fraction * n))
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].sort().values


def peak_memory_mb() -> float:
    """The process's peak resident memory so far, in MiB (``ru_maxrss``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def text_task_run(out: str | os.PathLike | None, *, model: str = "mkgformer_re",
                  dataset: str | None = None, root: str | os.PathLike | None = None,
                  model_args: dict[str, Any] | None = None, train: TrainConfig | None = None,
                  images: str | os.PathLike | None = None, fraction: float = 1.0,
                  fraction_seed: int = 0, examples: int | None = None,
                  validate: bool = True, progress: bool = True) -> dict:
    """Fine-tunes ``model`` (``mkgformer_re`` or ``mkgformer_ner``) and scores the test split.

    Args:
        out: Run folder (:obj:`None`: no files).
        model: ``mkgformer_re`` (MNRE format) or ``mkgformer_ner`` (Twitter format).
        dataset: Folder name under ``root`` / ``$MMGNN_DATA``, or a folder.
            (default: ``MNRE`` / ``Twitter2017``)
        model_args: The model's keyword arguments (``vision="random"``, ``text=...``,
            ``missing_images``, ...).
        train: Optimisation (default: the model's released recipe, ``train_defaults``).
        images: Folder of the examples' images (``img_id`` / ``IMGID.jpg`` file names);
            examples whose file is absent have a missing image. (default: none)
        fraction: Fraction of the training set kept (low-resource settings).
        fraction_seed: Seed of that subset.
        examples: Training examples per epoch (a budget in examples seen; default: one pass).
        validate: Score the validation split after every epoch and test the best epoch's
            weights (``best.pt``; without ``out`` there is no ``best.pt`` and the final
            weights are tested); otherwise the final weights are tested.
        progress: Print the model and the data, and show progress bars (rank 0 only).

    ``train_minutes`` and ``train_examples_per_s`` are those of rank 0's clock with
    ``examples_seen`` counting every rank's examples; ``peak_memory_mb`` is rank 0's.
    """
    if model not in TEXT_MODELS:
        raise ValueError(f"unknown text-task model {model!r}; known: {', '.join(TEXT_MODELS)}")
    cls, task_cls, loader, score = TEXT_MODELS[model]
    train = train or TrainConfig(**cls.train_defaults)
    dataset = dataset or DEFAULT_DATASET[model]
    splits = loader(dataset, root)
    full = len(splits["train"])
    if fraction < 1:
        splits["train"] = splits["train"].subset(training_fraction(full, fraction,
                                                                   fraction_seed))
    labels = splits["train"].labels if model == "mkgformer_re" else splits["train"].tag_names
    out = Path(out) if out is not None else None
    # a module passed as an argument (encoder=, tokenizer=) is recorded by its repr
    shown = {k: v if isinstance(v, str | int | float | bool | list | dict | None) else repr(v)
             for k, v in (model_args or {}).items()}
    settings = {"model": {"name": model, **shown}, "dataset": dataset,
                "root": str(root) if root else None, "images": str(images) if images else None,
                "fraction": fraction, "fraction_seed": fraction_seed, "examples": examples,
                "validate": validate, "train": train.to_dict()}
    main = distributed.is_main()
    progress = progress and main
    writes = out is not None and main
    with removed_on_failure(out) if writes else nullcontext():
        if out is not None:
            if (out / "checkpoint.pt").exists():
                raise ValueError(f"{out} already holds a run; choose another folder")
        if writes:
            save_json(out / "config.json", settings)
        seed_everything(train.seed, deterministic=train.deterministic)
        net = cls(len(labels), **(model_args or {}))
        pixels = None
        if images is not None:
            if net.image_size is None:
                raise ValueError("images need a vision tower: pass model_args vision= "
                                 "(a ViT/CLIP model or 'random')")
            ids = [i for s in splits.values() for i in s.images]
            pixels = load_example_images(images, ids, net.image_size, net.image_mean,
                                         net.image_std)
        if progress:
            print(net)
            print(f"{dataset}: {len(splits['train'])} of {full} training examples, "
                  f"{len(splits['valid'])} valid, {len(splits['test'])} test; images for "
                  f"{sum(i in (pixels or {}) for s in splits.values() for i in s.images)} "
                  f"examples")
        task = task_cls(splits["train"], splits["valid"] if validate else None, pixels,
                        examples)
        trainer = Trainer(net, task, train, out, progress,
                          {"dataset": dataset, "model": settings["model"]})
        trainer.fit()
        seen = task.seen  # every rank's (each draws the global batches)
        if validate and out is not None and (out / BEST).is_file():  # written before fit ends
            net.load_state_dict(load_checkpoint(out / BEST)["model"])
        test = score(net, splits["test"], pixels)  # sharded: the same on every rank
        results = {"test": test, "best_epoch": trainer.best_epoch if validate else None,
                   "epochs": trainer.epoch, "steps": trainer.steps, "examples_seen": seen,
                   "train_examples": len(splits["train"]), "train_minutes": trainer.minutes,
                   "train_examples_per_s": seen / max(trainer.minutes * 60, 1e-9),
                   "budget_clock": train.budget_clock, "peak_memory_mb": peak_memory_mb(),
                   "threads": torch.get_num_threads(), "world_size": distributed.world_size(),
                   **settings}
        if writes:
            save_json(out / "results.json", results)
            # the final figures where `mmgnn reproduce` reads a run's (metrics.json "final")
            metrics = json.loads((out / METRICS).read_text())
            valid = trainer.history[-1].get("valid", {}) if trainer.history else {}
            save_json(out / METRICS, {**metrics, "final": {"test": test, "valid": valid}})
    distributed.barrier()  # every rank returns once the folder is complete
    return results
