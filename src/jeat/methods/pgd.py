"""Adversarial training on the cross-entropy (Madry et al., Eq. 1-3 / Eq. 14) and Fast AT.

``pgd``: PGD-k from a random start in the l_inf ball (``method.attack``: eps, step_size,
steps), CE on x_adv. ``fgsm``: one step with a random start (Wong et al.'s "Fast" AT, step
``attack.step_size``, 10/255 in the paper preset; ``attack.steps`` is ignored). Both use
``method.attack.energy`` (default ``ce``), so ``energy=joint`` gives PreJEAT's energy attack.
"""

from __future__ import annotations

from .standard import Standard


class PGDTraining(Standard):
    name = "pgd"
    summary = "PGD adversarial training on the cross-entropy (Madry et al.)"

    def inputs(self, model, x, y):
        return self.attack(model, x, y)


class FGSMTraining(Standard):
    name = "fgsm"
    summary = "FGSM with a random start (fast adversarial training)"

    def inputs(self, model, x, y):
        return self.attack(model, x, y, steps=1)  # one step whatever attack.steps says
