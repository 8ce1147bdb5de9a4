"""Training: the one runner, its settings, checkpoints and the training-curve plot.

Names load lazily (PEP 562), so that ``from mmgnn.train.config import TrainConfig`` (what the
command line's ``--help`` needs) imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DataSpec": "mmgnn.train.config",
    "ModelSpec": "mmgnn.train.config",
    "RunConfig": "mmgnn.train.config",
    "TrainConfig": "mmgnn.train.config",
    "Trainer": "mmgnn.train.loop",
    "Task": "mmgnn.train.loop",
    "LinkPredictionTask": "mmgnn.train.loop",
    "fit": "mmgnn.train.loop",
    "seed_everything": "mmgnn.train.loop",
    "sampling_generator": "mmgnn.train.loop",
    "RowAdagrad": "mmgnn.train.optim",
    "load_run": "mmgnn.train.runs",
    "load_run_data": "mmgnn.train.runs",
    "save_checkpoint": "mmgnn.utils.io",
    "load_checkpoint": "mmgnn.utils.io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mmgnn.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
