"""JEAT (JEAT paper, Algorithm 1; Eq. 18-20).

    x_adv = clip(x + U(-eps, eps) + eps * sign(grad_x E(x, y)))      energy attack (Eq. 18)
    x~_K  = K SGLD steps on E(x) from the replay buffer (reinit U(0,1) w.p. rho)
    loss  = CE(x_adv, y) + px_weight * [E(x_adv) - E(x~_K)]           -log p(x_adv, y) (Eq. 19-20)

The attack is PreJEAT's (always E(x, y)); ``attack.steps > 1`` gives multi-step energy PGD.
Everything else is :class:`~jeat.methods.jem.JEM` with the data term on x_adv.
"""

from __future__ import annotations

from .jem import JEM
from .prejeat import ENERGY_ATTACK


class JEAT(JEM):
    name = "jeat"
    summary = "energy attack + SGLD replay buffer + the -log p(x) term (JEAT Alg. 1)"
    px_on_clean = False  # Algorithm 1: grad(E(x_adv) - E(x~_K))

    def inputs(self, model, x, y):
        return self.attack(model, x, y, energy=ENERGY_ATTACK)
