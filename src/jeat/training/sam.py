"""Sharpness-aware minimisation as an option of any method (``optim.sam_rho`` > 0).

SAM (Foret et al. 2021) and its adaptive form ASAM (Kwon et al. 2021), as SADA-JEM trains
JEM++ with them: after the usual backward pass the weights climb to

    w + e(w),  e(w) = rho * T^2 g / ||T g||,   T = |w| (adaptive) or 1 (plain SAM),

the loss is evaluated again there on the *same* crafted inputs (the method reuses its attack
examples and SGLD negatives, ``Method.crafted``) with BN running statistics frozen, and the
optimiser then updates the original weights with that second gradient. SADA-JEM's script turns
the adaptive form on when rho >= 0.5; here it is ``optim.sam_adaptive``.
"""

from __future__ import annotations

import torch
from torch import nn


class SAM:
    def __init__(self, params, rho: float, adaptive: bool = False):
        if rho <= 0:
            raise ValueError(f"optim.sam_rho must be > 0 to use SAM, got {rho}")
        self.params = [p for p in params if p.requires_grad]
        self.rho, self.adaptive = rho, adaptive
        self._saved: list[tuple[nn.Parameter, torch.Tensor]] = []

    @torch.no_grad()
    def perturb(self) -> None:
        """w <- w + e(w) from the current gradients (kept to restore w exactly)."""
        live = [p for p in self.params if p.grad is not None]
        scaled = [(p.abs() if self.adaptive else 1.0) * p.grad for p in live]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in scaled]))
        scale = self.rho / (norm + 1e-12)
        self._saved = [(p, p.detach().clone()) for p in live]
        for p, g in zip(live, scaled, strict=True):
            p.add_((p.abs() if self.adaptive else 1.0) * g * scale)

    @torch.no_grad()
    def restore(self) -> None:
        """Back to w (bit-exact), keeping the gradients taken at w + e(w)."""
        for p, w in self._saved:
            p.copy_(w)
        self._saved = []
