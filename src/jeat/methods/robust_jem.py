"""Robust JEM (Korst & Asadulaev, 2022): JEM++-style training with the classifier on PGD examples.

    x_adv = PGD-k on CE within eps      (paper: eps = 0.1 in its [-1, 1] units = 0.05 in [0, 1],
                                         15 steps; the step size is not stated, we use eps / 4)
    x~    = JEM++'s proximal sampler (m outer x n inner steps inside [0, 1], sampling/pyld.py)
            from a replay buffer seeded by the class-conditional Gaussians of the training set
            (JEM++'s informative init); Robust JEM trains with m = 10, n = 5
    loss  = CE(x_adv, y) + px_weight * [E(x) - E(x~)]         (E(x) on clean x, as in JEM++)

The sampler settings (``sampler=pyld``, ``steps``, ``inner_steps``, ``init=gaussian``) live in
``method.sgld`` and are set by the ``*-robust-jem`` presets; this class only fixes which inputs
each term sees.
"""

from __future__ import annotations

from .jem import JEM, JEMPP


class RobustJEM(JEM):
    name = "robust-jem"
    implies = JEMPP.implies  # Robust JEM samples with JEM++'s sampler
    summary = "JEM on PGD examples with the JEM++ proximal sampler (Robust JEM)"
    px_on_clean = True

    def inputs(self, model, x, y):
        return self.attack(model, x, y)  # method.attack.energy, 'ce' in the presets
