"""Combined inference (Robust JEM, Asadulaev et al. 2022, Sec. 3-4).

1. seeds x0 (noise or a class-conditional mixture),
2. the *adversarial prior*: targeted l_inf PGD on the seeds toward class y (descending CE, as a
   robust classifier generates, Santurkar et al.), with a large radius,
3. optional contrast reduction of the prior, ``x <- 0.5 + c (x - 0.5)``, so that the following
   SGLD does not push pixels out of the box and needs no clamping,
4. SGLD on the joint energy E(x, y) (Eq. 17).

Units: Robust JEM works on images in [-1, 1] and uses eps = 0.5 at inference; jeat's images are
in [0, 1], so the same radius is ``0.5 / 2 = 0.25`` (:data:`ROBUST_JEM_INFERENCE_EPS`). The
paper does not state the PGD step size and step count at inference, nor the contrast factor:
the defaults here (20 steps of 2.5 * eps / steps, Madry's rule; contrast 0.9) are ours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..attacks.pgd import pgd
from .langevin import LangevinTrace, langevin

ROBUST_JEM_INFERENCE_EPS = 0.5 / 2  # eps 0.5 in [-1, 1] units = 0.25 in [0, 1]


@dataclass
class PriorStats:
    """Mean target-class probability p(y|x) of the seeds, after PGD, and after SGLD."""

    p_seed: float
    p_prior: float
    p_final: float

    def to_dict(self) -> dict[str, float]:
        return {"p_target_seed": self.p_seed, "p_target_prior": self.p_prior, "p_target_final": self.p_final}


def reduce_contrast(x: Tensor, factor: float) -> Tensor:
    """Shrink pixel values toward mid-grey: 0.5 + factor * (x - 0.5); factor 1 is the identity."""
    if not 0 < factor <= 1:
        raise ValueError(f"contrast factor must lie in (0, 1], got {factor}")
    return 0.5 + factor * (x - 0.5)


def adversarial_prior(model: nn.Module, x0: Tensor, y: Tensor, eps: float = ROBUST_JEM_INFERENCE_EPS,
                      steps: int = 20, step_size: float | None = None) -> Tensor:  # fmt: skip
    """Targeted PGD from the seeds toward class ``y`` (descends CE(x, y)); stays within eps of x0, in [0, 1]."""
    if step_size is None:
        step_size = 2.5 * eps / max(steps, 1)
    return pgd(model, x0.clamp(0, 1), y, eps=eps, step_size=step_size, steps=steps, energy="ce",
               random_start=False, targeted=True)  # fmt: skip


@torch.no_grad()
def target_probability(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """p(y | x) per example."""
    return model(x).float().softmax(1).gather(1, y.view(-1, 1)).squeeze(1)


def combined_inference(
    model: nn.Module,
    x0: Tensor,
    y: Tensor,
    eps: float = ROBUST_JEM_INFERENCE_EPS,
    pgd_steps: int = 20,
    pgd_step_size: float | None = None,
    contrast: float | None = 0.9,
    steps: int = 100,
    step_size: float = 0.25,
    noise: float = 0.005,
    clip_grad: float | None = None,
    clamp: bool = False,
    trace: bool = False,
    components: bool = False,
    on_step: Callable[[int, Tensor], None] | None = None,
    sampler: Callable[[Tensor, Tensor], tuple[Tensor, LangevinTrace | None]] | None = None,
) -> tuple[Tensor, LangevinTrace | None, PriorStats]:
    """Seeds -> targeted PGD prior -> contrast reduction -> SGLD on E(x, y).

    ``sampler(prior, y) -> (x, trace)`` replaces the last stage (Robust JEM's paper runs JEM++'s proximal
    sampler there: ``sampling/generate.py``). Returns (samples, SGLD trace or None, the target-class
    probabilities along the way). The probabilities are read once per call (a host sync outside the loops).
    """
    p_seed = target_probability(model, x0.clamp(0, 1), y).mean()
    prior = adversarial_prior(model, x0, y, eps, pgd_steps, pgd_step_size)
    p_prior = target_probability(model, prior, y).mean()
    if contrast is not None and contrast != 1:
        prior = reduce_contrast(prior, contrast)
    if sampler is not None:
        x, tr = sampler(prior, y)
    else:
        x, tr = langevin(model, prior, y, "joint", steps, step_size, noise, clip_grad, clamp, trace,
                         components=components, on_step=on_step)  # fmt: skip
    p_final = target_probability(model, x.clamp(0, 1), y).mean()
    stats = PriorStats(*(float(v) for v in torch.stack([p_seed, p_prior, p_final]).tolist()))
    return x, tr, stats
