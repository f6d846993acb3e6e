"""Langevin dynamics on any of the three energies (JEAT Eq. 9-10, 16, 17; JEM's SGLD).

    x_{t+1} = x_t - step_size * grad_x E(x_t) + noise * N(0, I)

The papers write the step as (alpha/2) * grad and the noise as sqrt(alpha) (Eq. 9); JEM's code
decouples them (sgld_lr 1, sgld_std 0.01; JEAT has no public code and builds on JEM's sampler), which
is what practice uses, so both are parameters here: the paper's form is ``step_size = alpha / 2, noise
= sqrt(alpha)``.

``energy`` picks the target: ``ce`` = E(x,y) - E(x) (Eq. 16, how a robust classifier
generates), ``joint`` = E(x,y) (Eq. 17, JEAT's proposal), ``marginal`` = E(x) (SGLD of
JEM/JEAT training). Optional per-pixel step clipping (JEM++) and clamping to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from ..config import SGLDConfig
from ..energy import energy as energy_fn
from ..energy import joint_energy, marginal_energy


@dataclass
class LangevinTrace:
    """Per-step statistics over the batch, kept on the device until read (no sync in the loop).

    ``energy`` and ``grad_norm`` are always filled: the mean target energy before each step and
    the mean per-example L2 norm of grad_x of the target energy. With ``components=True`` the
    sampler also records, per step, the mean and (population) std of ||grad_x E(x, y)|| and
    ||grad_x E(x)|| (JEAT Fig. 11-12) and the std of the target quantities; fields it did not
    record stay ``None`` and are left out of :meth:`to_dict`.
    """

    energy: Tensor  # (steps,) mean target energy before each step
    grad_norm: Tensor  # (steps,) mean per-example L2 norm of grad_x E
    energy_std: Tensor | None = None
    grad_norm_std: Tensor | None = None
    joint_grad_norm: Tensor | None = None  # ||grad_x E(x, y)||, needs labels
    joint_grad_norm_std: Tensor | None = None
    marginal_grad_norm: Tensor | None = None  # ||grad_x E(x)||
    marginal_grad_norm_std: Tensor | None = None

    def to_dict(self) -> dict[str, list[float]]:
        return {f.name: getattr(self, f.name).tolist() for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def merge(cls, traces: list[LangevinTrace], weights: list[int]) -> LangevinTrace:
        """Pool traces of several batches (sizes ``weights``): exact pooled means and stds."""
        if not traces:
            raise ValueError("nothing to merge")
        w = torch.tensor(weights, dtype=torch.float64)
        w = w / w.sum()
        out = {}
        for f in fields(cls):
            if f.name.endswith("_std"):
                continue
            vals = [getattr(t, f.name) for t in traces]
            if any(v is None for v in vals):
                out[f.name] = None
                continue
            m = torch.stack([v.double().cpu() for v in vals])  # (B, steps)
            mean = (w[:, None] * m).sum(0)
            out[f.name] = mean.float()
            stds = [getattr(t, f.name + "_std") for t in traces]  # every statistic has a _std field
            if all(s is not None for s in stds):
                sq = torch.stack([s.double().cpu() for s in stds]) ** 2 + m**2  # E[v^2] per batch
                out[f.name + "_std"] = ((w[:, None] * sq).sum(0) - mean**2).clamp_min(0).sqrt().float()
        return cls(**{k: out.get(k) for k in (f.name for f in fields(cls))})


def paper_step(alpha: float) -> tuple[float, float]:
    """(step_size, noise) of the paper's Eq. 9 for step alpha."""
    return alpha / 2, math.sqrt(alpha)


def langevin(
    model: nn.Module,
    x0: Tensor,
    y: Tensor | None = None,
    energy: str = "marginal",
    steps: int = SGLDConfig.steps,
    step_size: float = SGLDConfig.step_size,  # one set of defaults: JEM's, in [0, 1] units
    noise: float = SGLDConfig.noise,
    clip_grad: float | None = None,
    clamp: bool = False,
    trace: bool = False,
    *,
    components: bool = False,
    on_step: Callable[[int, Tensor], None] | None = None,
) -> tuple[Tensor, LangevinTrace | None]:
    """Run ``steps`` Langevin steps from ``x0``; returns (samples, trace or None).

    ``components=True`` (with ``trace``) also records ||grad_x E(x,y)|| and ||grad_x E(x)|| per
    step (two backward passes through one forward; ``E(x,y)`` only when ``y`` is given).
    ``on_step(t, x)`` is called after step t with the new state (e.g. a progress bar or a
    per-step metric such as PSNR during denoising); it must not modify ``x``.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if energy not in ("joint", "marginal", "ce"):
        raise ValueError(f"unknown energy kind {energy!r}; choose joint, marginal or ce")
    if energy != "marginal" and y is None:
        raise ValueError(f"energy kind {energy!r} needs labels y")
    split = trace and components
    x = x0.detach().clone()
    rec: dict[str, list[Tensor]] = {}

    def keep(name: str, v: Tensor) -> None:
        v = v.detach().float()
        rec.setdefault(name, []).append(v.mean())
        if split:
            rec.setdefault(name + "_std", []).append(v.std(unbiased=False) if v.numel() > 1 else v.new_zeros(()))

    for t in range(steps):
        x.requires_grad_(True)
        if split:
            # One forward; grad of E(x,y) and of E(x) separately, the target's grad from them.
            logits = model(x)
            e_m = marginal_energy(logits)
            (g_m,) = torch.autograd.grad(e_m.sum(), x, retain_graph=y is not None)
            if y is not None:
                e_j = joint_energy(logits, y)
                (g_j,) = torch.autograd.grad(e_j.sum(), x)
                keep("joint_grad_norm", g_j.flatten(1).norm(dim=1))
            keep("marginal_grad_norm", g_m.flatten(1).norm(dim=1))
            if energy == "marginal":
                e, grad = e_m, g_m
            elif energy == "joint":
                e, grad = e_j, g_j
            else:
                e, grad = e_j - e_m, g_j - g_m
        else:
            e = energy_fn(model(x), y, energy)
            (grad,) = torch.autograd.grad(e.sum(), x)
        step = step_size * grad
        if clip_grad is not None:
            step = step.clamp(-clip_grad, clip_grad)
        x = x.detach() - step + noise * torch.randn_like(x)
        if clamp:
            x = x.clamp_(0.0, 1.0)
        if trace:
            keep("energy", e)
            keep("grad_norm", grad.detach().float().flatten(1).norm(dim=1))
        if on_step is not None:
            on_step(t, x)
    tr = None
    if trace:
        empty = torch.zeros(0, device=x.device)
        stacked = {k: torch.stack(v) for k, v in rec.items()}
        tr = LangevinTrace(
            energy=stacked.get("energy", empty),
            grad_norm=stacked.get("grad_norm", empty),
            **{f.name: stacked.get(f.name) for f in fields(LangevinTrace) if f.name not in ("energy", "grad_norm")},
        )
    return x.detach(), tr
