"""Divergence guard: JEM-style training is known to blow up (JEM issues #4 and #8).

The guard looks at the loss and every logged energy every ``check_every`` steps; a
non-finite value or an energy beyond ``max_energy`` stops the run with
:class:`DivergenceError`. Checkpoints are only written after a passing check, so the last
one on disk is good. Recovery recipe (docs/TRAINING.md): resume from it with a new seed
and/or a lower learning rate, e.g. ``jeat train --resume RUN --reseed 1 --set optim.lr=5e-5``.
"""

from __future__ import annotations

import math

from ..config import GuardConfig


class DivergenceError(RuntimeError):
    def __init__(self, step: int, quantity: str, value: float, checkpoint: str | None):
        self.step, self.quantity, self.value, self.checkpoint = step, quantity, value, checkpoint
        where = f"last good checkpoint: {checkpoint}" if checkpoint else "no checkpoint was written yet"
        super().__init__(
            f"training diverged at step {step}: {quantity} = {value:.4g}. {where}. "
            f"To recover, resume with a new seed and/or a lower learning rate, e.g. "
            f"`jeat train --resume RUN_DIR --reseed 1 --set optim.lr=<smaller>`."
        )


def check(metrics: dict[str, float], step: int, cfg: GuardConfig, checkpoint: str | None) -> None:
    """Raise :class:`DivergenceError` if a metric is non-finite or an energy exceeds the bound."""
    if not cfg.enabled:
        return
    for key, value in metrics.items():
        if not math.isfinite(value):
            raise DivergenceError(step, key, value, checkpoint)
        if ("energy" in key or key.startswith("E_")) and abs(value) > cfg.max_energy:
            raise DivergenceError(step, key, value, checkpoint)
