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


def accuracy_and_counts(
    model: nn.Module, data: ImageSet, batch_size: int = 500, device: torch.device | str = "cpu", amp: bool = False
) -> tuple[int, torch.Tensor]:
    """Clean predictions in one pass: the number correct and how many images each class was predicted for
    (the guard's dead-model check reads the largest share; ``training/guard.py``)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    counts = torch.zeros(data.num_classes, dtype=torch.long, device=device)
    try:
        with torch.no_grad():
            for x, y in _batches(data, batch_size, device):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    pred = model(x).argmax(1)
                correct += (pred == y).sum()
                counts += torch.bincount(pred, minlength=data.num_classes)[: data.num_classes]
    finally:
        model.train(was_training)
    return int(correct.item()), counts
