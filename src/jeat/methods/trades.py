"""TRADES (Zhang et al. 2019) and WEAT (Mirza et al., ECCV 2024), one per-example loss:

    L = mean_i w_i * base_i  +  beta * mean_i w_i * KL(p(.|x_i) || p(.|x'_i))

x' from TRADES' KL attack (attacks/trades_kl.py; ``method.attack`` eps/step/steps; the model's BN
in eval mode, as TRADES' code runs ``model.eval()`` while attacking). ``trades``: w = 1,
base = CE(x). ``weat``: w_i = 1 / softplus(|E(x_i)|) (detached), WEAT's energy weighting, with
base = CE(x) (``method.weat_variant = nat``, WEAT_nat) or CE(x') (``adv``, WEAT_adv); the
reference code is OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM, Adversarial ML/WEAT_loss.py.

Parity: benchmarks/parity/trades.py runs TRADES' ``trades_loss``/``train`` and WEAT's
``adv_train`` beside these methods on the same weights, batches and noise (docs/PARITY.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attacks.trades_kl import kl_to_clean, trades_kl
from ..energy import cross_entropy, joint_energy, marginal_energy, upcast
from ..models.folding import folded_bn
from ..models.utils import running_bn_stats, unwrap
from .base import Method, accuracy_metric

WEAT_VARIANTS = ("nat", "adv")


def weat_weights(logits: Tensor) -> Tensor:
    """WEAT's per-example weight 1 / log(1 + exp(|E(x)|)), E(x) = -logsumexp f(x): low-energy
    (confidently modelled) examples count less. Not differentiated."""
    return 1.0 / F.softplus(marginal_energy(upcast(logits.detach())).abs())


class TRADES(Method):
    name = "trades"
    summary = "TRADES: CE(x) + beta * KL(p(x) || p(x')) with x' from the KL attack"
    kl_log_eps = 0.0  # TRADES: log_softmax
    refeeds_clean = True  # trades_loss forwards x again for the KL target (matters to BN, bn_stats=all)

    def __init__(self, cfg, model, train_set, device):
        super().__init__(cfg, model, train_set, device)
        if self.mcfg.weat_variant not in WEAT_VARIANTS:
            raise ValueError(f"unknown method.weat_variant {self.mcfg.weat_variant!r}; choose nat or adv")

    def weights(self, logits: Tensor) -> Tensor | None:
        return None

    def kl_attack(self, model, x: Tensor) -> Tensor:
        a, net = self.mcfg.attack, unwrap(model)
        with running_bn_stats(net), folded_bn(net, self.cfg.fold_bn):
            return trades_kl(net, x, a.eps, a.step_size, a.steps, log_eps=self.kl_log_eps, norm=a.norm)

    def loss(self, model, x, y):
        x_adv = self.crafted("x_adv", lambda: self.kl_attack(model, x))
        logits = upcast(model(x))
        logits_adv = upcast(model(x_adv))
        if self.mcfg.bn_stats == "all" and self.refeeds_clean and not self.reuse_crafted:
            # TRADES' trades_loss forwards x a second time for the KL target, in train mode: its BN
            # running statistics (which the next attack reads) see x, x', x. Same outputs, so no graph.
            with torch.no_grad():
                model(x)
        kl = kl_to_clean(logits_adv, F.softmax(logits, 1), self.kl_log_eps)
        ce_nat, ce_adv = cross_entropy(logits, y), cross_entropy(logits_adv, y)
        base = ce_adv if self.name == "weat" and self.mcfg.weat_variant == "adv" else ce_nat
        w = self.weights(logits)
        if w is None:
            loss = base.mean() + self.mcfg.trades_beta * kl.mean()
        else:
            loss = (w * base).mean() + self.mcfg.trades_beta * (w * kl).mean()
        metrics = {
            "loss": loss.detach(),
            "ce": ce_nat.mean().detach(),
            "ce_adv": ce_adv.mean().detach(),
            "kl": kl.mean().detach(),
            "acc": accuracy_metric(logits.detach(), y),
            "acc_adv": accuracy_metric(logits_adv.detach(), y),
            "energy_xy": joint_energy(logits.detach(), y).mean(),
            "energy_x": marginal_energy(logits.detach()).mean(),
        }
        if w is not None:
            metrics["weat_weight"] = w.mean()
        metrics.update(self.track(model, x, x_adv, y, logits_adv))
        return loss, metrics


class WEAT(TRADES):
    name = "weat"
    summary = "WEAT: TRADES with per-example weights 1/softplus(|E(x)|) (nat or adv variant)"
    kl_log_eps = 1e-12  # WEAT_loss.py: log(softmax + 1e-12), in its attack and its loss
    refeeds_clean = False  # WEAT_nat forwards x once

    def weights(self, logits: Tensor) -> Tensor:
        return weat_weights(logits)
