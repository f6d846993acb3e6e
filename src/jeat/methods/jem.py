"""JEM (Grathwohl et al.) and the shared -log p(x) machinery of JEAT and Robust JEM.

    loss = CE(x_cls, y) + px_weight * [ mean E(x_data) - mean E(x~_K) ]
           (+ energy_l2 * [ mean E(x_data)^2 + mean E(x~_K)^2 ], optional, IGEBM's regulariser)

where x~_K are SGLD negatives from the replay buffer (:mod:`.negatives`) and the E(x) term's
gradient is the contrastive estimate of -grad log p(x) (JEAT Eq. 20). For JEM both x_cls and
x_data are the clean batch x; subclasses change :meth:`JEM.inputs` (the classifier's inputs)
and :attr:`JEM.px_on_clean` (whether E(x_data) is taken on clean x or on x_cls).

Forwards: x_cls through the (possibly DDP) wrapper, updating BN statistics as in plain
training; x~_K (and clean x when it differs from x_cls) through the wrapper with BN running
statistics frozen, so SGLD samples never leak into evaluation statistics.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..energy import cross_entropy, joint_energy, marginal_energy
from ..models.utils import frozen_bn_stats, sgld_bn_context, unwrap
from .base import Method, accuracy_metric
from .negatives import SGLDNegatives


class JEM(Method):
    name = "jem"
    summary = "JEM: cross-entropy + -log p(x) with SGLD negatives from a replay buffer"
    px_on_clean = True  # E(x) of the data term on clean x (JEM, Robust JEM) or on x_cls (JEAT)

    def __init__(self, cfg, model, train_set, device):
        super().__init__(cfg, model, train_set, device)
        self.negatives = SGLDNegatives(cfg.method.sgld, train_set, device)
        self.last_inputs: dict = {}  # x_cls and x_neg of the latest step (tests, tracking)
        if cfg.method.px_data not in ("batch", "clean"):
            raise ValueError(f"method.px_data must be batch or clean, got {cfg.method.px_data!r}")
        if cfg.method.px_data == "clean" and not self.px_on_clean:
            raise ValueError(f"method.px_data=clean needs a data term on clean images; {self.name}'s is on x_adv")
        # px_data=clean draws its own un-augmented batch from these
        self.train_images = train_set.images if cfg.method.px_data == "clean" else None

    def px_batch(self, n: int) -> Tensor:
        """SADA-JEM's data term: n training images, un-augmented, drawn apart from the CE batch
        (with the global RNG, which checkpoints carry, so a resumed run draws the same)."""
        idx = torch.randint(len(self.train_images), (n,))
        return self.train_images[idx].to(self.device).float().div_(255)

    def inputs(self, model, x, y):
        """The classifier's inputs; JEM trains on clean x."""
        return x

    def extra_terms(self, model, x, y, e_data: Tensor) -> tuple[Tensor | float, dict[str, Tensor]]:
        """More loss terms of a hybrid built on JEM (EB-JDAT); ``e_data`` = E(x_data), with graph."""
        return 0.0, {}

    def loss(self, model, x, y):
        x_cls = self.crafted("x_cls", lambda: self.inputs(model, x, y))
        x_neg = self.crafted("x_neg", lambda: self.negatives.sample(unwrap(model), len(x))[0])
        logits = model(x_cls).float()  # CE and energies in fp32 from (bf16) logits
        x_px = x if self.mcfg.px_data == "batch" else self.crafted("x_px", lambda: self.px_batch(len(x)))
        if self.px_on_clean and x_cls is not x_px:
            with frozen_bn_stats(model):
                logits_px = model(x_px).float()
        else:
            logits_px = logits
        with sgld_bn_context(model, self.mcfg.sgld.bn):  # as the sampler saw them
            logits_neg = model(x_neg).float()
        ce = cross_entropy(logits, y).mean()
        e_pos_all, e_neg_all = marginal_energy(logits_px), marginal_energy(logits_neg)
        e_pos, e_neg = e_pos_all.mean(), e_neg_all.mean()
        px = e_pos - e_neg
        loss = ce + self.mcfg.px_weight * px
        if self.mcfg.energy_l2:
            loss = loss + self.mcfg.energy_l2 * (e_pos_all.square().mean() + e_neg_all.square().mean())
        extra, extra_metrics = self.extra_terms(model, x, y, e_pos_all)
        self.last_inputs = {"x_cls": x_cls.detach(), "x_neg": x_neg.detach()}
        metrics = {
            "loss": loss.detach(),
            "ce": ce.detach(),
            "acc": accuracy_metric(logits.detach(), y),
            "energy_xy": joint_energy(logits.detach(), y).mean(),
            "energy_x": marginal_energy(logits.detach()).mean(),
            "energy_x_data": e_pos.detach(),
            "energy_x_neg": e_neg.detach(),
            "energy_gap": px.detach(),  # E(x_data) - E(x~): the -log p(x) term
            **extra_metrics,
        }
        loss = loss + extra
        metrics["loss"] = loss.detach()
        metrics.update(self.track(model, x, x_cls, y, logits))
        return loss, metrics

    def state_dict(self) -> dict:
        return self.negatives.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.negatives.load_state_dict(state)


class JEMPP(JEM):
    """JEM++ (Yang & Ji 2021) as its own method: JEM's objective with JEM++'s proximal sampler
    (``sampling/pyld.py``) and informative (Gaussian) chain seeds, the sampler Robust JEM shares."""

    name = "jempp"
    summary = "JEM++: JEM with the proximal (PYLD) sampler and Gaussian-seeded chains"
    implies = {"method.sgld.sampler": "pyld", "method.sgld.init": "gaussian", "method.sgld.clamp": "true",
               "method.sgld.noise": "0"}  # fmt: skip

    def __init__(self, cfg, model, train_set, device):
        if cfg.method.sgld.sampler != "pyld":
            raise ValueError("jempp samples with JEM++'s proximal sampler: set method.sgld.sampler=pyld "
                             "(or train --method jem for plain SGLD)")  # fmt: skip
        super().__init__(cfg, model, train_set, device)

