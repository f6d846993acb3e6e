"""Plain cross-entropy training: minimise E(x,y) - E(x) on clean data (Eq. 13).

Subclasses only change :meth:`Standard.inputs` (noise, PGD/FGSM, the energy attack); the loss
is always the cross-entropy on those inputs.
"""

from __future__ import annotations

from ..energy import cross_entropy, joint_energy, marginal_energy, upcast
from .base import Method, accuracy_metric


def ce_metrics(loss, logits, y) -> dict:
    """What every cross-entropy method logs: the loss, batch accuracy and the two energies (Eq. 12)."""
    logits = logits.detach()
    return {"loss": loss.detach(), "acc": accuracy_metric(logits, y), "energy_xy": joint_energy(logits, y).mean(),
            "energy_x": marginal_energy(logits).mean()}  # fmt: skip


class Standard(Method):
    name = "standard"
    summary = "cross-entropy on clean images"

    def inputs(self, model, x, y):
        """The images the loss is computed on; subclasses perturb them."""
        return x

    def loss(self, model, x, y):
        x_in = self.crafted("x_in", lambda: self.inputs(model, x, y))
        logits = upcast(model(x_in))  # CE in fp32: bf16 logits lose the true-class gradient
        loss = cross_entropy(logits, y).mean()
        metrics = ce_metrics(loss, logits, y)
        metrics.update(self.track(model, x, x_in, y, logits))
        return loss, metrics
