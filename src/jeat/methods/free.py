"""Free adversarial training (Shafahi et al. 2019, "Adversarial Training for Free!"; the JEAT paper's
"Free m=8" baseline, Tables 2-4), as locuslab/fast_adversarial's ``CIFAR10/train_free.py`` runs it.

Each minibatch is replayed ``method.free_replays`` = m times in a row (the batch stream repeats it:
``BatchStream(replays=m)``). One forward and backward per replay gives both gradients at once:

    loss = CE(f(x + delta), y);  theta <- optimizer step on grad_theta;
    delta <- clip(delta + eps * sign(grad_delta), -eps, eps);  delta <- clip(delta, -x, 1 - x)

The perturbation ``delta`` is carried across replays *and* across minibatches (one (batch, C, H, W)
tensor for the whole run, as the reference's; a smaller last batch uses its first rows) and starts at
zero. As in the reference, the forward uses x + delta as it stands: delta was kept inside [0, 1]
relative to the previous minibatch, not re-clipped for the new one. Epochs count as the paper counts
them: one epoch is as many optimizer steps as a natural epoch has batches (each of 1/m of the data,
replayed m times), so Table 4's 200 epochs with milestones [100, 150] hold as written.
The step is ``method.attack.step_size`` (the reference hard-codes eps); eps ``method.attack.eps``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..energy import cross_entropy, upcast
from .base import Method
from .standard import ce_metrics


class FreeAT(Method):
    name = "free"
    summary = "free adversarial training: each minibatch replayed m times, one perturbation carried along"

    def __init__(self, cfg, model, train_set, device):
        super().__init__(cfg, model, train_set, device)
        if cfg.method.attack.norm != "linf":
            raise ValueError("method free: the reference is l_inf (method.attack.norm=linf)")
        self.replays = cfg.method.free_replays
        self.delta = torch.zeros(cfg.data.batch_size, *train_set.shape, device=device)
        self._leaf: Tensor | None = None  # this step's delta, whose gradient after_update reads
        self._x: Tensor | None = None

    def loss(self, model, x, y):
        n = len(x)
        if self.reuse_crafted:  # SAM's second pass: the same perturbation, no new gradient to carry
            leaf = self._leaf.detach()
        else:
            leaf = self._leaf = self.delta[:n].clone().requires_grad_(True)
            self._x = x
        logits = upcast(model(x + leaf))  # CE in fp32, as Standard
        loss = cross_entropy(logits, y).mean()
        return loss, ce_metrics(loss, logits, y)

    @torch.no_grad()
    def after_update(self, model) -> dict[str, Tensor]:
        """The perturbation's free ascent step, from the gradient the loss's backward left on it."""
        leaf, x = self._leaf, self._x
        if leaf is not None and leaf.grad is not None:
            a = self.mcfg.attack
            n = len(x)
            d = self.delta
            d[:n] = leaf.detach() + a.step_size * leaf.grad.sign()
            d.clamp_(-a.eps, a.eps)
            d[:n] = torch.max(torch.min(d[:n], 1 - x), -x)  # x + delta inside [0, 1]
        self._leaf = self._x = None
        return super().after_update(model)

    def state_dict(self) -> dict:
        return {"delta": self.delta.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        if "delta" in state:
            self.delta.copy_(state["delta"].to(self.delta.device))
