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
as the training forward), so Delta_theta measures only the update. They run in fp32 whatever the
run's autocast: with Adam 1e-4 one step changes an energy by about as much as bf16 rounds it.
"""

from __future__ import annotations

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


def _fp32_energies(net: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(E(x, y), E(x)) from an fp32 forward, autocast off, BN running statistics frozen."""
    with torch.autocast(x.device.type, enabled=False), frozen_bn_stats(net):
        logits = net(x.float()).float()
    return joint_energy(logits, y), marginal_energy(logits)


class EnergyTracker:
    def __init__(self, amp: str = "none"):
        self.amp = amp  # the run's autocast; the tracker's own forwards are fp32 regardless
        self._pending: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    @torch.no_grad()
    def before(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, logits_adv: Tensor) -> dict[str, Tensor]:
        """Call inside ``loss`` (before the update) on the classifier's inputs; returns Delta_x.
        ``logits_adv`` (the training forward's) is not reused: its precision is the run's autocast."""
        net = unwrap(model)
        e_xy_adv, e_x_adv = _fp32_energies(net, x_adv.detach(), y)
        e_xy, e_x = (e_xy_adv, e_x_adv) if x_adv is x else _fp32_energies(net, x, y)
        self._pending = (x_adv.detach(), y, e_xy_adv, e_x_adv)
        return {**_mean_std("dx_energy_xy", e_xy_adv - e_xy), **_mean_std("dx_energy_x", e_x_adv - e_x)}

    @torch.no_grad()
    def after(self, model: nn.Module) -> dict[str, Tensor]:
        """Call after the optimizer step; returns Delta_theta for the batch seen by :meth:`before`."""
        if self._pending is None:
            return {}
        x_adv, y, e_xy_old, e_x_old = self._pending
        self._pending = None
        e_xy, e_x = _fp32_energies(unwrap(model), x_adv, y)
        return {**_mean_std("dtheta_energy_xy", e_xy - e_xy_old), **_mean_std("dtheta_energy_x", e_x - e_x_old)}
