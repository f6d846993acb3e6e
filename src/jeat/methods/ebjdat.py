"""EB-JDAT (energy-based joint-distribution adversarial training; arXiv 2505.19459, code
jkcjkc/EB-JDAT, the JEM++ variant its README recommends): JEM++'s objective plus the joint
distribution of clean and adversarial data,

    L = CE(x) + [E(x) - E(x~)]                    (JEM++: SGLD/PYLD negatives x~)
          + a * [E(x) - E(x')] + b * CE(x')       (x' from attacks/ebjdat.py)

with a = ``method.ebjdat_px_weight`` (their p_x_xadv_weight, 0.1) and b =
``method.ebjdat_ce_weight`` (p_y_given_xadv_weight, 1). The attack runs with BN running
statistics (the reference calls ``f.eval()``); its steps and sizes come from ``method.attack``
(steps, step_size, and eps as the random start's half-width); ``method.ebjdat_attack`` picks the
sampler's objective (``energy``, the reference's; ``ce``, its commented-out variant). With
``method.bn_stats=all`` (paper-eb-jdat) BN running statistics move as in the reference's loop.
Parity with jkcjkc/EB-JDAT (327ea16): docs/PARITY.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..attacks.ebjdat import OBJECTIVES, ebjdat_attack
from ..energy import cross_entropy, marginal_energy, upcast
from ..models.utils import frozen_bn_stats, repeated_bn_update, running_bn_stats, unwrap
from .base import accuracy_metric
from .jem import JEMPP


class EBJDAT(JEMPP):
    name = "eb-jdat"
    summary = "EB-JDAT: JEM++ + E(x) - E(x') and CE(x') on EB-JDAT's energy/perception adversarial samples"
    px_on_clean = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.mcfg.ebjdat_attack not in OBJECTIVES:
            raise ValueError(
                f"unknown method.ebjdat_attack {self.mcfg.ebjdat_attack!r}; choose {', '.join(OBJECTIVES)}"
            )
        if self.mcfg.attack.norm != "linf":
            raise ValueError("eb-jdat's energy + perception attack is l_inf only (method.attack.norm=linf)")

    def adv_attack(self, model, x: Tensor, y: Tensor) -> Tensor:
        a, net = self.mcfg.attack, unwrap(model)
        with running_bn_stats(net):
            return ebjdat_attack(net, x, y, a.eps, a.step_size, a.steps, self.mcfg.ebjdat_perception_weight,
                                 self.mcfg.ebjdat_attack)  # fmt: skip

    def extra_terms(self, model, x, y, e_data, x_px):
        x_adv = self.crafted("x_adv", lambda: self.adv_attack(model, x, y))
        if self.mcfg.bn_stats == "all":
            logits_adv = self._forward_as_reference(model, x_px, x_adv)
        else:
            with frozen_bn_stats(model):
                logits_adv = upcast(model(x_adv))
        e_adv = marginal_energy(logits_adv)
        ce_adv = cross_entropy(logits_adv, y).mean()
        gap_adv = e_data.mean() - e_adv.mean()
        extra = self.mcfg.ebjdat_px_weight * gap_adv + self.mcfg.ebjdat_ce_weight * ce_adv
        metrics = {"ce_adv": ce_adv.detach(), "acc_adv": accuracy_metric(logits_adv.detach(), y),
                   "energy_x_adv": e_adv.mean().detach(), "energy_gap_adv": gap_adv.detach()}  # fmt: skip
        return extra, metrics

    def _forward_as_reference(self, model, x_px, x_adv):
        """The reference forwards x_px once more and x_adv twice (f(x_adv) and f.classify(x_adv)),
        all in train mode; with bn_stats=all their BN updates matter to the next step's attack,
        which reads the running statistics. Outputs equal one forward of each, so: x_px without a
        graph, and x_adv once with the momentum of two updates by the same batch, 1 - (1 - m)^2."""
        if self.reuse_crafted:  # SAM's second pass: BN statistics are frozen already
            return upcast(model(x_adv))
        with torch.no_grad():
            model(x_px)
        with repeated_bn_update(unwrap(model), 2):
            return upcast(model(x_adv))
