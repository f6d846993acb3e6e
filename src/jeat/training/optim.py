"""Optimisers and learning-rate schedules of the papers, as per-step multipliers.

Schedules are functions of the global step (so resume and mid-epoch checkpoints are exact):
``multistep`` decays by ``gamma`` at epoch milestones (Table 4: Adam [160, 180]; SGD
[100, 150]); ``cyclic`` is the one-cycle triangle 0 -> lr -> 0 of Fast AT (Wong et al.);
``cosine`` anneals to 0; an optional linear warm-up multiplies any of them (JEM: 1000 steps).
"""

from __future__ import annotations

import math

import torch

from ..config import OptimConfig

SCHEDULES = ("constant", "multistep", "cyclic", "cosine", "onecycle")


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)  # fmt: skip
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}; choose sgd or adam")


def lr_factor(cfg: OptimConfig, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the base learning rate after ``step`` optimizer steps."""
    if cfg.schedule == "constant":
        f = 1.0
    elif cfg.schedule == "multistep":
        epoch = step / steps_per_epoch
        f = cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    elif cfg.schedule == "cyclic":
        t = step / max(total_steps, 1)
        f = 2 * t if t < 0.5 else 2 * (1 - t)
        f = max(f, 0.0)
    elif cfg.schedule == "cosine":
        f = 0.5 * (1 + math.cos(math.pi * min(step / max(total_steps, 1), 1.0)))
    elif cfg.schedule == "onecycle":
        f = onecycle(step, total_steps, cfg.pct_start)
    else:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose {', '.join(SCHEDULES)}")
    if cfg.warmup_steps and step < cfg.warmup_steps:
        f *= (step + 1) / cfg.warmup_steps
    return f


def onecycle(step: int, total_steps: int, pct_start: float, div: float = 25.0, final_div: float = 1e4) -> float:
    """torch's OneCycleLR (cosine, two phases) as a factor of the peak lr: from 1/div up to 1 over
    the first pct_start of the steps, then down to 1/(div * final_div). WEAT trains with it."""

    def cos(start: float, end: float, t: float) -> float:
        return end + (start - end) / 2 * (1 + math.cos(math.pi * t))

    peak = float(pct_start * total_steps) - 1
    if step <= peak:
        return cos(1 / div, 1.0, step / peak if peak > 0 else 1.0)
    last = total_steps - 1
    return cos(1.0, 1 / (div * final_div), min((step - peak) / max(last - peak, 1e-12), 1.0))


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, epochs: int):
    total = steps_per_epoch * epochs
    if cfg.schedule == "cyclic":  # the triangle peaks mid-run; start one step in so step 0's lr > 0
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s + 1, steps_per_epoch, total + 1))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, steps_per_epoch, total))
