"""The training loop, checkpoints, schedules and the divergence guard."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .guard import DivergenceError
from .loop import Trainer, resolve_device, train
from .rundir import RunDir

__all__ = ["CheckpointError", "DivergenceError", "RunDir", "Trainer", "load_checkpoint", "resolve_device",
           "save_checkpoint", "train"]  # fmt: skip
