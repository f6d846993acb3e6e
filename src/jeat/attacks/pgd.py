"""PGD on any energy (Madry et al., Eq. 1-3 / Eq. 14 / Eq. 18), in the l_inf or the l_2 ball.

``energy="ce"`` ascends CE = E(x,y) - E(x) (the normal attack, Eq. 14); ``energy="joint"``
ascends E(x,y) only (the energy attack, Eq. 18). One step with a random start and
``step_size = eps`` is the FGSM-RS inner step of Fast AT / PreJEAT / JEAT (Alg. 1-2).
``targeted=True`` descends CE toward ``y`` (the adversarial prior of Robust JEM).
Images stay in [0, 1] and within ``eps`` of ``x`` after every step.

``norm="l2"``: each step moves ``step_size`` along the per-example unit gradient and projects back
onto the l_2 ball (rescaling delta) and the box, as robustness-library / DAT / torchattacks' PGDL2 do;
the random start is uniform in the ball (a uniform direction, radius eps * U(0, 1), torchattacks').
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..energy import energy as energy_fn

NORMS = ("linf", "l2")


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


def _per_example(v: Tensor, x: Tensor) -> Tensor:
    return v.view(-1, *([1] * (x.dim() - 1)))


def l2_norm(delta: Tensor) -> Tensor:
    """Per-example l_2 norm (over every dimension but the first)."""
    return delta.flatten(1).norm(dim=1)


def project(x_adv: Tensor, x: Tensor, eps: float, norm: str = "linf") -> Tensor:
    """Project onto the ball of radius eps around x (l_inf: clip; l_2: rescale delta) and the box [0, 1]."""
    if norm == "l2":  # torch's renorm (what robustness-library and DAT call): delta * eps / (||delta|| + 1e-7)
        return (x + (x_adv - x).renorm(p=2, dim=0, maxnorm=eps)).clamp_(0.0, 1.0)
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def ascent_direction(grad: Tensor, norm: str) -> Tensor:
    """The steepest-ascent unit step for the norm: sign(g) (l_inf), g / ||g||_2 (l_2)."""
    if norm == "l2":
        return grad / _per_example(l2_norm(grad) + 1e-10, grad)
    return grad.sign()


def random_start_in_ball(x: Tensor, eps: float, norm: str) -> Tensor:
    if norm == "l2":
        d = torch.randn_like(x)
        r = torch.rand(x.shape[0], device=x.device, dtype=x.dtype)
        return x + d * _per_example(eps * r / l2_norm(d).clamp_min(1e-12), x)
    return x + torch.empty_like(x).uniform_(-eps, eps)  # delta ~ U(-eps, eps)


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
    norm: str = "linf",
) -> Tensor:
    """Return x_adv with ||x_adv - x||_p <= eps (p = inf or 2), in [0, 1]. Model parameters get no gradient.

    ``objective(logits, y) -> per-example loss`` replaces the energy (e.g. the C&W margin)."""
    if eps < 0 or steps < 0:
        raise ValueError(f"eps and steps must be non-negative, got eps={eps}, steps={steps}")
    _check_norm(norm)
    x = x.detach()
    if random_start:
        x_adv = project(random_start_in_ball(x, eps, norm), x, eps, norm)
    else:
        x_adv = x.clone()
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        e = (objective(logits, y) if objective is not None else energy_fn(logits, y, energy)).sum()
        (grad,) = torch.autograd.grad(e, x_adv)
        x_adv = project(x_adv.detach() + sign * step_size * ascent_direction(grad, norm), x, eps, norm)
    return x_adv.detach()


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float = 8 / 255, step_size: float | None = None,
         energy: str = "ce", random_start: bool = True, norm: str = "linf") -> Tensor:  # fmt: skip
    """FGSM with random start (Wong et al.); with ``energy='joint'`` it is Alg. 1-2's attack."""
    return pgd(model, x, y, eps, eps if step_size is None else step_size, 1, energy, random_start, norm=norm)
