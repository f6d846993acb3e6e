"""Langevin dynamics on any of the three energies (JEAT Eq. 9-10, 16, 17; JEM's SGLD).

    x_{t+1} = x_t - step_size * grad_x E(x_t) + noise * N(0, I)

The papers write the step as (alpha/2) * grad and the noise as sqrt(alpha) (Eq. 9); JEM's and
JEAT's code decouple them (step 1, noise 0.01), which is what practice uses, so both are
parameters here: the paper's form is ``step_size = alpha / 2, noise = sqrt(alpha)``.

``energy`` picks the target: ``ce`` = E(x,y) - E(x) (Eq. 16, how a robust classifier
generates), ``joint`` = E(x,y) (Eq. 17, JEAT's proposal), ``marginal`` = E(x) (SGLD of
JEM/JEAT training). Optional per-pixel step clipping (JEM++) and clamping to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..energy import energy as energy_fn


@dataclass
class LangevinTrace:
    """Per-step means over the batch, kept on the device until read (no sync in the loop)."""

    energy: Tensor  # (steps,) mean target energy before each step
    grad_norm: Tensor  # (steps,) mean per-example L2 norm of grad_x E

    def to_dict(self) -> dict[str, list[float]]:
        return {"energy": self.energy.tolist(), "grad_norm": self.grad_norm.tolist()}


def paper_step(alpha: float) -> tuple[float, float]:
    """(step_size, noise) of the paper's Eq. 9 for step alpha."""
    return alpha / 2, math.sqrt(alpha)


def langevin(
    model: nn.Module,
    x0: Tensor,
    y: Tensor | None = None,
    energy: str = "marginal",
    steps: int = 20,
    step_size: float = 1.0,
    noise: float = 0.01,
    clip_grad: float | None = None,
    clamp: bool = False,
    trace: bool = False,
) -> tuple[Tensor, LangevinTrace | None]:
    """Run ``steps`` Langevin steps from ``x0``; returns (samples, trace or None)."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    x = x0.detach().clone()
    energies, norms = [], []
    for _ in range(steps):
        x.requires_grad_(True)
        e = energy_fn(model(x), y, energy)
        (grad,) = torch.autograd.grad(e.sum(), x)
        step = step_size * grad
        if clip_grad is not None:
            step = step.clamp(-clip_grad, clip_grad)
        x = x.detach() - step + noise * torch.randn_like(x)
        if clamp:
            x = x.clamp_(0.0, 1.0)
        if trace:
            energies.append(e.detach().float().mean())
            norms.append(grad.detach().float().flatten(1).norm(dim=1).mean())
    tr = None
    if trace:
        empty = torch.zeros(0, device=x.device)
        tr = LangevinTrace(torch.stack(energies) if energies else empty, torch.stack(norms) if norms else empty)
    return x.detach(), tr
