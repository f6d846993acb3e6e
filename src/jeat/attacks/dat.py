"""DAT's attack (Yin et al. 2025, xuwangyin/DAT ``pgd_attack``): unbounded l_2 PGD up the discriminator's
logit. The method (``methods/dat.py``) uses it to push out-of-distribution images towards high logit
during training; ``jeat generate --sampler dat`` runs the same attack from out-of-distribution seeds, so
it lives here, below both the methods and the samplers."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..energy import upcast
from .pgd import pgd


def dat_logit(logits: Tensor, y: Tensor, kind: str) -> Tensor:
    """The discriminator's logit: logsumexp_y f(x)[y] = -E(x), or the class-conditional f(x)[y] = -E(x, y)."""
    logits = upcast(logits)
    if kind == "logsumexp":
        return torch.logsumexp(logits, 1)
    return logits.gather(1, y.view(-1, 1)).squeeze(1)


def dat_attack(net, x: Tensor, y: Tensor, steps: int, step_size: float, eps: float | None, kind: str) -> Tensor:
    """``steps`` l_2 PGD steps ascending the logit of ``kind`` (no random start; eps None: only the box)."""
    if steps == 0:
        return x.detach().clone()
    radius = math.inf if eps is None else eps
    return pgd(net, x, y, radius, step_size, steps, random_start=False, norm="l2",
               objective=lambda logits, yy: dat_logit(logits, yy, kind))  # fmt: skip
