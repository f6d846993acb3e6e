"""l_inf PGD on any energy (Madry et al., Eq. 1-3 / Eq. 14 / Eq. 18).

``energy="ce"`` ascends CE = E(x,y) - E(x) (the normal attack, Eq. 14); ``energy="joint"``
ascends E(x,y) only (the energy attack, Eq. 18). One step with a random start and
``step_size = eps`` is the FGSM-RS inner step of Fast AT / PreJEAT / JEAT (Alg. 1-2).
``targeted=True`` descends CE toward ``y`` (the adversarial prior of Robust JEM).
Images stay in [0, 1] and within ``eps`` of ``x`` after every step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..energy import energy as energy_fn


def project(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """Clip to the l_inf ball of radius eps around x and to the pixel box [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float = 8 / 255,
    step_size: float = 2 / 255,
    steps: int = 10,
    energy: str = "ce",
    random_start: bool = True,
    targeted: bool = False,
    objective: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """Return x_adv with ||x_adv - x||_inf <= eps, in [0, 1]. Model parameters get no gradient.

    ``objective(logits, y) -> per-example loss`` replaces the energy (e.g. the C&W margin)."""
    if eps < 0 or steps < 0:
        raise ValueError(f"eps and steps must be non-negative, got eps={eps}, steps={steps}")
    x = x.detach()
    if random_start:
        x_adv = project(x + torch.empty_like(x).uniform_(-eps, eps), x, eps)  # delta ~ U(-eps, eps)
    else:
        x_adv = x.clone()
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        e = (objective(logits, y) if objective is not None else energy_fn(logits, y, energy)).sum()
        (grad,) = torch.autograd.grad(e, x_adv)
        x_adv = project(x_adv.detach() + sign * step_size * grad.sign(), x, eps)
    return x_adv.detach()


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float = 8 / 255, step_size: float | None = None,
         energy: str = "ce", random_start: bool = True) -> Tensor:  # fmt: skip
    """FGSM with random start (Wong et al.); with ``energy='joint'`` it is Alg. 1-2's attack."""
    return pgd(model, x, y, eps, eps if step_size is None else step_size, 1, energy, random_start)
