"""TRADES' inner maximisation (Zhang et al. 2019): the l_inf point whose prediction is farthest,
in KL divergence, from the clean prediction. Labels are not used.

    x' <- Proj_{B(x, eps) & [0,1]}( x' + step * sign grad_x' KL(p(.|x) || p(.|x')) ),
    x'_0 = x + start_std * N(0, I)

as TRADES' and WEAT's code do (start_std 0.001, 10 steps of 2/255 at eps 8/255 for CIFAR-10).
``norm="l2"`` takes unit-gradient steps and projects onto the l_2 ball (attacks/pgd.py's PGD-L2),
not TRADES' own l_2 branch (SGD on a renormed delta).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..energy import upcast
from .pgd import _check_norm, ascent_direction, project


def kl_to_clean(logits_adv: Tensor, p_clean: Tensor, log_eps: float = 0.0) -> Tensor:
    """Per-example KL(p_clean || softmax(logits_adv)). ``log_eps`` > 0 takes log(softmax + log_eps)
    instead of log_softmax, as WEAT's code does (1e-12): it caps log q near -27.6, which matters once
    a class's probability falls below 1e-12 (TRADES' code uses log_softmax)."""
    z = upcast(logits_adv)
    log_q = torch.log(F.softmax(z, 1) + log_eps) if log_eps else F.log_softmax(z, 1)
    return F.kl_div(log_q, p_clean, reduction="none").sum(1)


def trades_kl(model: nn.Module, x: Tensor, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 10,
              start_std: float = 0.001, log_eps: float = 0.0, norm: str = "linf") -> Tensor:  # fmt: skip
    if eps < 0 or steps < 0:
        raise ValueError(f"eps and steps must be non-negative, got eps={eps}, steps={steps}")
    _check_norm(norm)
    x = x.detach()
    with torch.no_grad():
        p_clean = F.softmax(upcast(model(x)), 1)
    x_adv = x + start_std * torch.randn_like(x)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(kl_to_clean(model(x_adv), p_clean, log_eps).sum(), x_adv)
        x_adv = project(x_adv.detach() + step_size * ascent_direction(grad, norm), x, eps, norm)
    return project(x_adv.detach(), x, eps, norm)
