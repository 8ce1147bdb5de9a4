"""Training: the loop, its settings, checkpoints and the training-curve plot."""

from mmgnn.train.checkpoint import load_checkpoint, save_checkpoint
from mmgnn.train.config import TrainConfig
from mmgnn.train.loop import Trainer, fit, seed_everything

__all__ = ["TrainConfig", "Trainer", "fit", "seed_everything", "save_checkpoint",
           "load_checkpoint"]
