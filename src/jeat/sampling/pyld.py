"""JEM++'s proximal sampler (PYLD; Yang & Ji, ICCV 2021, ``sample_q`` in train_jempp.py).

Reference: sndnyang/JEMPP at fba6ba5 (HEAD), run beside jeat by ``benchmarks/parity/jempp.py``
(docs/PARITY.md). Each of the ``m`` outer steps takes one gradient g = grad_x E(x) (E = -logsumexp
f; E(x, y) when labels are given), then

    x <- clamp(x - clamp(step_size * g, -clip, clip), 0, 1)          (only when step_size > 0)
    x <- clamp(x - clamp(inner_step_size * g, -inner_clip, inner_clip), 0, 1)   n times

and (optionally) Gaussian noise, not clamped; JEM++'s script uses none (``sgld_std = 0``).

The outer step: the reference's ``--sgld_lr`` defaults to 0 since commit c64ab5b (it was 1 before)
and its CIFAR-10 script does not set it, so by default an outer step is only its ``n`` inner steps.
When sgld_lr > 0 it is clipped by the same ``eps`` as the inner steps and clamped to the box.

JEM++ computes the inner steps YOPO-style: the gradient of the Hamiltonian <layer_one(x), p> with
p = dE/d(first layer output) frozen at the outer point. The first layer (input normalisation and
the first convolution) is affine, so that gradient is constant in x and equals g: the inner steps
reuse g exactly, at no extra forward (a test checks it; the parity harness compares the samples).

Units: JEM++ works on u = 2x - 1 in [-1, 1] with ``pyld_lr = 0.2``, clip ``eps = 1``. A step of
``lr * clamp(grad_u, -eps, eps)`` is ``clamp(lr / 4 * grad_x, -lr * eps / 2, lr * eps / 2)`` on
[0, 1] pixels: inner step 0.05, inner clip 0.1 (``JEMPP_*`` below); sgld_lr = 1 would be step 0.25,
clip 0.5.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..energy import energy as energy_fn

JEMPP_STEP = 0.0  # sgld_lr = 0: JEM++'s default at HEAD (fba6ba5)
JEMPP_INNER_STEP = 0.2 / 4  # pyld_lr = 0.2
JEMPP_INNER_CLIP = 0.2 * 1.0 / 2  # pyld_lr * eps, eps = 1
JEMPP_INNER_STEPS = 5  # in_steps (JEM++ script; Robust JEM: n = 5)


def outer_clip(step_size: float, eps: float = 1.0) -> float:
    """The clip of an outer step of ``step_size`` (= sgld_lr / 4) in [0, 1] units: sgld_lr * eps / 2."""
    return 2.0 * step_size * eps


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
    step_clip: float | None = None,
) -> Tensor:
    """``steps`` outer x ``inner_steps`` proximal steps from ``x0`` on E(x) (or E(x, y) with ``y``).
    ``step_clip`` bounds the outer step (default: ``outer_clip(step_size)``, JEM++'s eps = 1).
    One forward and backward per outer step, no host sync."""
    if steps < 0 or inner_steps < 0:
        raise ValueError(f"steps and inner_steps must be >= 0, got {steps}, {inner_steps}")
    if inner_step_size <= 0:  # JEM++: pyld_lr <= 0 turns the inner steps off
        inner_steps = 0
    kind = "marginal" if y is None else "joint"
    clip = outer_clip(step_size) if step_clip is None else step_clip
    x = x0.detach()
    for _ in range(steps):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(energy_fn(model(x), y, kind).sum(), x)
        x = x.detach()
        if step_size > 0:
            x = (x - (step_size * g).clamp_(-clip, clip)).clamp_(0.0, 1.0)
        if inner_steps:
            inner = (inner_step_size * g).clamp_(-inner_clip, inner_clip)
            for _ in range(inner_steps):
                x = (x - inner).clamp_(0.0, 1.0)
        if noise:
            x = x + noise * torch.randn_like(x)
    return x.detach()
