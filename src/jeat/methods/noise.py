"""Gaussian noise injection, the "blind adversary" of Section 3.2 / Fig. 5.

delta ~ N(0, sigma^2) is added to every training image (then clipped to [0, 1]); the loss is
the cross-entropy on the noisy image. Larger sigma gives a classifier that generates better.
"""

from __future__ import annotations

import torch

from .standard import Standard


class NoiseInjection(Standard):
    name = "noise"
    summary = "cross-entropy on images plus Gaussian noise (the blind adversary, Fig. 5)"

    def inputs(self, model, x, y):
        return (x + self.mcfg.noise_sigma * torch.randn_like(x)).clamp_(0.0, 1.0)
