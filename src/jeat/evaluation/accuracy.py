"""Clean and PGD accuracy over an :class:`ImageSet` (model in eval mode)."""

from __future__ import annotations

import torch
from torch import nn

from ..attacks import pgd
from ..data import ImageSet


def _batches(data: ImageSet, batch_size: int, device: torch.device):
    for i in range(0, len(data), batch_size):
        yield data.images[i : i + batch_size].to(device).float().div_(255), data.labels[i : i + batch_size].to(device)


def accuracy(
    model: nn.Module,
    data: ImageSet,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    attack: dict | None = None,
    amp: bool = False,
) -> float:
    """Top-1 accuracy; with ``attack`` (kwargs of :func:`jeat.attacks.pgd`) on PGD examples."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    try:
        for x, y in _batches(data, batch_size, device):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                if attack:
                    x = pgd(model, x, y, **attack)
                with torch.no_grad():
                    correct += (model(x).argmax(1) == y).sum()
    finally:
        model.train(was_training)
    return correct.item() / max(len(data), 1)
