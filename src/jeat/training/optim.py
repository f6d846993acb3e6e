"""Optimisers and learning-rate schedules of the papers, as per-step multipliers.

Schedules are functions of the global step (so resume and mid-epoch checkpoints are exact):
``multistep`` decays by ``gamma`` at epoch milestones (Table 4: Adam [160, 180]; SGD
[100, 150]); ``cyclic`` is the one-cycle triangle 0 -> lr -> 0 of Fast AT (Wong et al.), started one step in;
``cycliclr`` the same triangle as torch's ``CyclicLR`` steps it in Fast AT's code (step 0 at lr 0,
``cycle_momentum``: momentum 0.9 -> 0.8 -> 0.9);
``cosine`` anneals to 0; ``onecycle`` is torch's OneCycleLR, with its momentum cycle
(``cycle_momentum``, WEAT); an optional linear warm-up from 0 multiplies any of them (JEM: 1000
steps).
"""

from __future__ import annotations

import math

import torch

from ..config import OptimConfig

SCHEDULES = ("constant", "multistep", "cyclic", "cycliclr", "cosine", "onecycle")


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
    elif cfg.schedule in ("cyclic", "cycliclr"):
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
        # JEM / JEM++ / SADA-JEM: lr * cur_iter / warmup_iters for cur_iter <= warmup_iters, so
        # their first step runs at lr 0 (it only fills SGD's momentum buffer).
        f *= step / cfg.warmup_steps
    return f


def _two_phase(step: int, total_steps: int, pct_start: float, start: float, mid: float, end: float) -> float:
    """torch's OneCycleLR interpolation (cosine, two phases): start -> mid over the first pct_start
    of the steps, then mid -> end."""

    def cos(a: float, b: float, t: float) -> float:
        return b + (a - b) / 2 * (1 + math.cos(math.pi * t))

    peak = float(pct_start * total_steps) - 1
    if step <= peak:
        return cos(start, mid, step / peak if peak > 0 else 1.0)
    last = total_steps - 1
    return cos(mid, end, min((step - peak) / max(last - peak, 1e-12), 1.0))


def onecycle(step: int, total_steps: int, pct_start: float, div: float = 25.0, final_div: float = 1e4) -> float:
    """torch's OneCycleLR as a factor of the peak lr: from 1/div up to 1 over the first pct_start of
    the steps, then down to 1/(div * final_div). WEAT trains with it."""
    return _two_phase(step, total_steps, pct_start, 1 / div, 1.0, 1 / (div * final_div))


def onecycle_momentum(step: int, total_steps: int, pct_start: float, base: float = 0.85, peak: float = 0.95) -> float:
    """OneCycleLR's momentum (``cycle_momentum=True``, torch's default): peak -> base while the lr
    rises, base -> peak while it falls."""
    return _two_phase(step, total_steps, pct_start, peak, base, peak)


def cycliclr_momentum(step: int, total_steps: int, base: float = 0.8, peak: float = 0.9) -> float:
    """torch's CyclicLR momentum (``cycle_momentum=True``, its default): peak - (peak - base) x the lr's
    triangle factor (locuslab/fast_adversarial's Fast AT keeps that default)."""
    t = step / max(total_steps, 1)
    return peak - (peak - base) * max(2 * t if t < 0.5 else 2 * (1 - t), 0.0)


class MomentumCycleLR(torch.optim.lr_scheduler.LambdaLR):
    """LambdaLR that also sets SGD's momentum from the step, as OneCycleLR does (WEAT's scheduler).
    A function of the step count alone, so resume and rollback restore it with the lr."""

    def __init__(self, opt, lr_lambda, momentum_fn):
        self.momentum_fn = momentum_fn
        super().__init__(opt, lr_lambda)

    def step(self, epoch=None):
        super().step(epoch)
        for group in self.optimizer.param_groups:
            group["momentum"] = self.momentum_fn(self.last_epoch)


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, epochs: int):
    total = steps_per_epoch * epochs
    if cfg.schedule == "cyclic":  # the triangle peaks mid-run; start one step in so step 0's lr > 0
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s + 1, steps_per_epoch, total + 1))
    lam = lambda s: lr_factor(cfg, s, steps_per_epoch, total)  # noqa: E731
    if cfg.cycle_momentum:
        if cfg.schedule not in ("onecycle", "cycliclr") or cfg.name != "sgd":
            raise ValueError("optim.cycle_momentum needs optim.schedule=onecycle or cycliclr and optim.name=sgd")
        if cfg.schedule == "cycliclr":
            return MomentumCycleLR(opt, lam, lambda s: cycliclr_momentum(s, total))
        return MomentumCycleLR(opt, lam, lambda s: onecycle_momentum(s, total, cfg.pct_start))
    return torch.optim.lr_scheduler.LambdaLR(opt, lam)
