"""The method strategy: how one batch becomes a loss.

The training loop (``jeat.training.loop``) owns everything else — data, autocast, the
optimizer step, logging, checkpoints, the divergence guard. A method only implements
:meth:`Method.loss`, and optionally keeps state (a replay buffer) that is checkpointed.
Metrics are returned as 0-dim tensors and synced by the loop only when it logs; keys of
energies contain "energy" so the guard bounds them.

``model`` in :meth:`Method.loss` may be DDP-wrapped or compiled: attacks run on ``unwrap(model)``
under ``frozen_bn_stats`` (they must neither sync gradients nor move BN running statistics); only
the forwards whose output enters the loss go through the wrapper. SGLD and the negatives' forward
leave the running statistics alone under ``method.bn_stats=classifier``; under ``bn_stats=all`` (the
references' behaviour) they move them like every other train-mode forward (``sgld_bn_context``).
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..attacks import pgd
from ..config import TrainConfig
from ..data import ImageSet
from ..models.folding import folded_bn
from ..models.utils import frozen_bn_stats, unwrap
from .tracking import EnergyTracker


class Method:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for `jeat info methods` and `jeat train --help`
    # Settings the method implies, applied by `jeat train --method NAME` before any --set (so they
    # show in config.json and can still be overridden), e.g. JEM++'s sampler.
    implies: ClassVar[dict[str, str]] = {}

    def __init__(self, cfg: TrainConfig, model: nn.Module, train_set: ImageSet, device: torch.device):
        self.cfg, self.mcfg, self.device = cfg, cfg.method, device
        self.num_classes = train_set.num_classes
        self.image_shape = train_set.shape
        self.tracker = EnergyTracker(cfg.amp) if cfg.method.track_energy else None
        # SAM (training/sam.py) evaluates the loss twice per step; the second pass, at perturbed
        # weights, must see the same crafted inputs (attacks, noise, SGLD negatives) and must not
        # sample again (the replay buffer would move twice).
        self.reuse_crafted = False
        self._crafted: dict[str, Tensor] = {}

    def crafted(self, key: str, make) -> Tensor:
        """``make()`` for this batch, or, on SAM's second pass, what it returned on the first."""
        if self.reuse_crafted:
            return self._crafted[key]
        self._crafted[key] = value = make()
        return value

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Return (scalar loss to minimise, metrics). ``model`` may be DDP-wrapped."""
        raise NotImplementedError

    @torch.no_grad()
    def after_update(self, model: nn.Module) -> dict[str, Tensor]:
        """Called after the optimizer step (e.g. to measure Delta_theta of the energies)."""
        return self.tracker.after(model) if self.tracker is not None else {}

    def attack(self, model: nn.Module, x: Tensor, y: Tensor, energy: str | None = None,
               steps: int | None = None) -> Tensor:  # fmt: skip
        """PGD/FGSM-RS (l_inf or l_2) from ``method.attack`` (``energy``/``steps`` override the config's) on
        the unwrapped model with BN running statistics frozen (BN layers already in eval mode, as DAT's
        ``bn=frozen`` sets them, run folded into their convolutions). Returns x_adv (no graph)."""
        a = self.mcfg.attack
        net = unwrap(model)
        with contextlib.ExitStack() as stack:
            if not a.update_bn:  # update_bn (Fast AT's code): train-mode forwards move the running statistics
                stack.enter_context(frozen_bn_stats(net))
                stack.enter_context(folded_bn(net, self.cfg.fold_bn))
            return pgd(net, x, y, a.eps, a.step_size, a.steps if steps is None else steps, energy or a.energy,
                       a.random_start, norm=a.norm)  # fmt: skip

    def track(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, logits_adv: Tensor) -> dict[str, Tensor]:
        """Delta_x energy metrics when ``method.track_energy`` is on (see :mod:`.tracking`); not on
        SAM's second pass (its weights are perturbed)."""
        if self.tracker is None or self.reuse_crafted:
            return {}
        return self.tracker.before(model, x, x_adv, y, logits_adv)

    def describe(self) -> dict:
        """What the run's summary.json should say about this method (e.g. DAT's out-of-distribution source)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def accuracy_metric(logits: Tensor, y: Tensor) -> Tensor:
    return (logits.argmax(1) == y).float().mean()
