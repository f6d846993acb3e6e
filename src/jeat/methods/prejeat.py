"""PreJEAT (JEAT paper, Algorithm 2): cross-entropy on energy-attack examples.

    delta ~ U(-eps, eps);  delta += eps * sign(grad_x E(x, y));  clip to the eps-ball and [0, 1]
    loss = CE(x + delta, y)

The attack always ascends the joint energy E(x, y) (Eq. 18), whatever ``method.attack.energy``
says. ``attack.step_size = eps, steps = 1`` is Algorithm 2 exactly (the paper preset);
``steps > 1`` is the multi-step energy-PGD option (projected after every step).
"""

from __future__ import annotations

from .standard import Standard

ENERGY_ATTACK = "joint"  # Eq. 18


class PreJEAT(Standard):
    name = "prejeat"
    summary = "cross-entropy on energy-attack examples, PGD on E(x,y) (JEAT Alg. 2)"

    def inputs(self, model, x, y):
        return self.attack(model, x, y, energy=ENERGY_ATTACK)
