"""The method strategy: how one batch becomes a loss.

The training loop (``jeat.training.loop``) owns everything else — data, autocast, the
optimizer step, logging, checkpoints, the divergence guard. A method only implements
:meth:`Method.loss`, and optionally keeps state (a replay buffer) that is checkpointed.
Metrics are returned as 0-dim tensors and synced by the loop only when it logs.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ..config import TrainConfig
from ..data import ImageSet


class Method:
    name: ClassVar[str] = ""

    def __init__(self, cfg: TrainConfig, model: nn.Module, train_set: ImageSet, device: torch.device):
        self.cfg, self.mcfg, self.device = cfg, cfg.method, device
        self.num_classes = train_set.num_classes
        self.image_shape = train_set.shape

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Return (scalar loss to minimise, metrics). ``model`` may be DDP-wrapped."""
        raise NotImplementedError

    @torch.no_grad()
    def after_update(self, model: nn.Module) -> dict[str, Tensor]:
        """Called after the optimizer step (e.g. to measure Delta_theta of the energies)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def accuracy_metric(logits: Tensor, y: Tensor) -> Tensor:
    return (logits.argmax(1) == y).float().mean()
