"""The two energies a classifier defines (JEAT paper, Eq. 12-13).

A classifier's logits f(x) give
    E(x, y) = -f(x)[y]                      (joint energy, Eq. 12)
    E(x)    = -logsumexp_y f(x)[y]          (marginal energy, Eq. 12)
    CE(x,y) = E(x, y) - E(x)                (cross-entropy, Eq. 13)
Every attack, sampler, loss and metric in jeat is written with these three functions, so the
sign conventions live in one place. All return one value per example (shape ``(N,)``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def joint_energy(logits: Tensor, y: Tensor) -> Tensor:
    """E(x, y) = -f(x)[y]  (Eq. 12). Low energy = high p(x, y)."""
    return -logits.gather(1, y.view(-1, 1)).squeeze(1)


def marginal_energy(logits: Tensor) -> Tensor:
    """E(x) = -log sum_y exp f(x)[y]  (Eq. 12). Low energy = high p(x)."""
    return -torch.logsumexp(logits, dim=1)


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """-log p(y|x) = E(x, y) - E(x)  (Eq. 13), per example."""
    return joint_energy(logits, y) - marginal_energy(logits)


def energy(logits: Tensor, y: Tensor | None = None, kind: str = "joint") -> Tensor:
    """Dispatch by name: ``joint`` E(x,y), ``marginal`` E(x), ``ce`` E(x,y)-E(x)."""
    if kind == "marginal":
        return marginal_energy(logits)
    if y is None:
        raise ValueError(f"energy kind {kind!r} needs labels y")
    if kind == "joint":
        return joint_energy(logits, y)
    if kind == "ce":
        return cross_entropy(logits, y)
    raise ValueError(f"unknown energy kind {kind!r}; choose joint, marginal or ce")


ENERGY_KINDS = ("joint", "marginal", "ce")


def upcast(logits: Tensor) -> Tensor:
    """Logits for losses and energies: bf16/fp16 (autocast) in fp32; fp32 and fp64 unchanged, so a
    float64 run (the parity harness's exactness check) stays float64."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits
