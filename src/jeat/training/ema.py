"""Exponential moving average of the weights (``ema.decay`` > 0 turns it on for any method).

After every optimiser step each floating-point entry of the model's state dict (parameters and
BN running statistics) moves towards the live value:

    shadow <- d_t * shadow + (1 - d_t) * weights,    d_t = min(decay, (1 + t) / (warmup + t))

where t counts updates. The ramp (TensorFlow's ExponentialMovingAverage ``num_updates`` rule)
keeps the average from being dominated by the random initialisation early on; ``warmup = 1``
turns it off. Integer entries (BN's batch counter) are copied. The shadow is kept in fp32 and
checkpointed with the run, so a resumed or rolled-back run continues the same average.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, warmup: int = 10, copy_first: bool = False):
        if not 0 < decay < 1:
            raise ValueError(f"ema.decay must be in (0, 1), got {decay}")
        if warmup < 1:
            raise ValueError(f"ema.warmup must be >= 1, got {warmup}")
        self.decay, self.warmup, self.updates, self.copy_first = decay, warmup, 0, copy_first
        self.shadow = {k: v.detach().float().clone() if v.is_floating_point() else v.detach().clone()
                       for k, v in model.state_dict().items()}  # fmt: skip

    def rate(self) -> float:
        """d_t of the next update (0 for the first with ``copy_first``: the average starts at the first
        updated weights, as InNOutRobustness' / DAT's AveragedModel, not at the initial ones)."""
        if self.copy_first and self.updates == 0:
            return 0.0
        return min(self.decay, (1 + self.updates) / (self.warmup + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.rate()
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.is_floating_point():
                s.lerp_(v.detach().float(), 1 - d)
            else:
                s.copy_(v)
        self.updates += 1

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in self.shadow.items()})

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """The model with the averaged weights inside the block, its own weights again after."""
        live = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.copy_to(model)
        try:
            yield model
        finally:
            model.load_state_dict(live)

    def state_dict(self) -> dict:
        return {"shadow": self.shadow, "updates": self.updates, "decay": self.decay, "warmup": self.warmup}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state does not match the model: keys {sorted(missing)[:5]} differ")
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
        self.updates = int(state["updates"])
