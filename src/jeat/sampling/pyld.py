"""JEM++'s proximal sampler (PYLD; Yang & Ji, ICCV 2021, ``sample_q`` in train_jempp.py).

JEM++ runs ``m`` outer steps. Each takes one gradient g = grad_x E(x) (E = -logsumexp f, the
unconditional energy; E(x, y) when labels are given), an unclipped step of ``step_size`` along
it, then ``n`` inner proximal steps

    x <- clamp(x - clamp(inner_step_size * g, -inner_clip, inner_clip), 0, 1)

and (optionally) Gaussian noise; JEM++'s script uses none (``sgld_std = 0``).

JEM++ computes the inner steps YOPO-style: the gradient of the Hamiltonian <layer_one(x), p>
with p = dE/d(first layer output) frozen at the outer point. The first layer (the input
normalisation and the first convolution) is affine, so that gradient is constant in x and
equals g: the inner steps reuse g exactly, at no extra forward.

Units: JEM++ works on x in [-1, 1] with ``sgld_lr = 1`` (argparse default, kept by its CIFAR-10
script), ``pyld_lr = 0.2`` and clip ``eps = 1``. On [0, 1] pixels (u = 2x - 1) a step of
``lr * grad_u`` is ``lr / 4 * grad_x``, and ``pyld_lr * clamp(grad_u, -eps, eps)`` is
``clamp(pyld_lr / 4 * grad_x, -pyld_lr * eps / 2, pyld_lr * eps / 2)``: step 0.25, inner step
0.05, inner clip 0.1 (``JEMPP_*`` below).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..energy import energy as energy_fn

JEMPP_STEP = 1.0 / 4  # sgld_lr = 1 in [-1, 1] units
JEMPP_INNER_STEP = 0.2 / 4  # pyld_lr = 0.2
JEMPP_INNER_CLIP = 0.2 * 1.0 / 2  # pyld_lr * eps, eps = 1
JEMPP_INNER_STEPS = 5  # in_steps (JEM++ script; Robust JEM: n = 5)


def pyld(
    model: nn.Module,
    x0: Tensor,
    y: Tensor | None = None,
    steps: int = 10,
    inner_steps: int = JEMPP_INNER_STEPS,
    step_size: float = JEMPP_STEP,
    inner_step_size: float = JEMPP_INNER_STEP,
    inner_clip: float = JEMPP_INNER_CLIP,
    noise: float = 0.0,
) -> Tensor:
    """``steps`` outer x ``inner_steps`` proximal steps from ``x0`` on E(x) (or E(x, y) with ``y``);
    samples stay in [0, 1]. One forward and backward per outer step, no host sync."""
    if steps < 0 or inner_steps < 0:
        raise ValueError(f"steps and inner_steps must be >= 0, got {steps}, {inner_steps}")
    kind = "marginal" if y is None else "joint"
    x = x0.detach().clamp(0.0, 1.0)
    for _ in range(steps):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(energy_fn(model(x), y, kind).sum(), x)
        x = x.detach()
        if step_size:
            x = x - step_size * g
        inner = (inner_step_size * g).clamp_(-inner_clip, inner_clip)
        for _ in range(inner_steps):
            x = (x - inner).clamp_(0.0, 1.0)
        if inner_steps == 0:
            x = x.clamp_(0.0, 1.0)
        if noise:
            x = x + noise * torch.randn_like(x)
    return x.detach()
