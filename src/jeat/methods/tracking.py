"""Energy-change tracking (JEAT Eq. 15, Fig. 3, 9, 10).

Per training step, for the joint energy E(x,y) and the marginal energy E(x):

    Delta_x     E = E_theta(x_adv)  - E_theta(x)        (what the attack / perturbation does)
    Delta_theta E = E_theta'(x_adv) - E_theta(x_adv)    (what the parameter update does)

where x_adv is whatever the classifier is trained on (x itself for standard/JEM training, so
Delta_x = 0 there) and theta' are the parameters after the optimizer step. Each is logged as the
batch mean and (population) std, e.g. ``dx_energy_xy_mean`` / ``dtheta_energy_x_std``; the keys
contain "energy", so the divergence guard bounds them. ``jeat plot energy-changes RUN`` draws
them per epoch.

All forwards here use the model in train mode with frozen BN running statistics (the same mode
as the training forward) and the run's autocast, so Delta_theta measures only the update.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from ..energy import joint_energy, marginal_energy
from ..models.utils import frozen_bn_stats, unwrap

ENERGY_CHANGE_KEYS = tuple(
    f"{d}_energy_{e}_{s}" for d in ("dx", "dtheta") for e in ("xy", "x") for s in ("mean", "std")
)


def _mean_std(prefix: str, v: Tensor) -> dict[str, Tensor]:
    v = v.detach().float()
    return {f"{prefix}_mean": v.mean(), f"{prefix}_std": v.std(correction=0)}


class EnergyTracker:
    def __init__(self, amp: str = "none"):
        self.amp = amp
        self._pending: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def _autocast(self, device: torch.device):
        if self.amp == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def before(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, logits_adv: Tensor) -> dict[str, Tensor]:
        """Call inside ``loss`` with the training forward's logits on ``x_adv``; returns Delta_x."""
        net = unwrap(model)
        e_xy_adv, e_x_adv = joint_energy(logits_adv.detach(), y).float(), marginal_energy(logits_adv.detach()).float()
        if x_adv is x:
            e_xy, e_x = e_xy_adv, e_x_adv
        else:
            with frozen_bn_stats(net):  # already inside the loop's autocast
                logits = net(x)
            e_xy, e_x = joint_energy(logits, y).float(), marginal_energy(logits).float()
        self._pending = (x_adv.detach(), y, e_xy_adv, e_x_adv)
        return {**_mean_std("dx_energy_xy", e_xy_adv - e_xy), **_mean_std("dx_energy_x", e_x_adv - e_x)}

    @torch.no_grad()
    def after(self, model: nn.Module) -> dict[str, Tensor]:
        """Call after the optimizer step; returns Delta_theta for the batch seen by :meth:`before`."""
        if self._pending is None:
            return {}
        x_adv, y, e_xy_old, e_x_old = self._pending
        self._pending = None
        net = unwrap(model)
        with self._autocast(x_adv.device), frozen_bn_stats(net):
            logits = net(x_adv)
        return {
            **_mean_std("dtheta_energy_xy", joint_energy(logits, y).float() - e_xy_old),
            **_mean_std("dtheta_energy_x", marginal_energy(logits).float() - e_x_old),
        }
