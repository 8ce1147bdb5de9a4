"""Training: the loop, its settings, checkpoints and the training-curve plot."""

from mmgnn.train.config import TrainConfig
from mmgnn.train.loop import Trainer, fit, seed_everything
from mmgnn.utils.io import load_checkpoint, save_checkpoint

__all__ = ["TrainConfig", "Trainer", "fit", "seed_everything", "save_checkpoint",
           "load_checkpoint"]
