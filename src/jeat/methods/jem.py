"""JEM (Grathwohl et al.) and the shared -log p(x) machinery of JEAT and Robust JEM.

    loss = CE(x_cls, y) + px_weight * [ mean E(x_data) - mean E(x~_K) ]
           (+ energy_l2 * [ mean E(x_data)^2 + mean E(x~_K)^2 ], optional, IGEBM's regulariser)

where x~_K are SGLD negatives from the replay buffer (:mod:`.negatives`) and the E(x) term's
gradient is the contrastive estimate of -grad log p(x) (JEAT Eq. 20). For JEM both x_cls and
x_data are the clean batch x; subclasses change :meth:`JEM.inputs` (the classifier's inputs)
and :attr:`JEM.px_on_clean` (whether E(x_data) is taken on clean x or on x_cls).

Forwards, in the references' order (JEM's and JEM++'s train loops): the data batch's E(x), the
SGLD chains, the negatives' E(x), the classifier's CE. x_cls updates BN running statistics as in
plain training; the others leave them frozen, so SGLD samples never leak into evaluation
statistics, unless ``method.bn_stats=all`` (JEM++, SADA-JEM, EB-JDAT: every train-mode forward
moves them, with their BN momentum 0.9). Parity with the authors' code: docs/PARITY.md.
"""

from __future__ import annotations

import contextlib

from torch import Tensor

from ..data.augment import random_batch
from ..energy import cross_entropy, joint_energy, marginal_energy, upcast
from ..models.utils import frozen_bn_stats, unwrap
from .base import Method, accuracy_metric
from .negatives import SGLDNegatives

PX_DATA = ("batch", "separate", "clean")


class JEM(Method):
    name = "jem"
    summary = "JEM: cross-entropy + -log p(x) with SGLD negatives from a replay buffer"
    px_on_clean = True  # E(x) of the data term on clean x (JEM, Robust JEM) or on x_cls (JEAT)

    def __init__(self, cfg, model, train_set, device):
        super().__init__(cfg, model, train_set, device)
        self.negatives = SGLDNegatives(cfg.method.sgld, train_set, device, update_bn=cfg.method.bn_stats == "all")
        self.last_inputs: dict = {}  # x_cls and x_neg of the latest step (tests, tracking)
        m = cfg.method
        if m.px_data not in PX_DATA:
            raise ValueError(f"method.px_data must be one of {', '.join(PX_DATA)}, got {m.px_data!r}")
        if m.px_data != "batch" and not self.px_on_clean:
            raise ValueError(f"method.px_data={m.px_data} needs a data term on clean images; {self.name}'s is on x_adv")
        if m.px_batch_size is not None and m.px_data == "batch":
            raise ValueError("method.px_batch_size needs a data batch of its own: set method.px_data=separate or clean")
        # px_data=separate|clean draw their own batch from these
        self.train_images = train_set.images if m.px_data != "batch" else None
        self.augmentation = cfg.data.augment if m.px_data == "separate" else "none"

    def bn_frozen(self, model):
        """BN running statistics for a forward that is not the classifier input's: frozen, or
        updated as every train-mode forward of the references does (``method.bn_stats=all``)."""
        return contextlib.nullcontext() if self.mcfg.bn_stats == "all" else frozen_bn_stats(model)

    def px_batch(self, n: int) -> Tensor:
        """The data term's own batch: n training images drawn apart from the CE batch, augmented as
        the CE batch is (``separate``, JEM/JEM++) or not (``clean``, SADA-JEM). Drawn with the global
        RNG, which checkpoints carry, so a resumed run draws the same."""
        return random_batch(self.train_images, n, self.augmentation)[0].to(self.device)

    def inputs(self, model, x, y):
        """The classifier's inputs; JEM trains on clean x."""
        return x

    def extra_terms(self, model, x, y, e_data: Tensor, x_px: Tensor) -> tuple[Tensor | float, dict[str, Tensor]]:
        """More loss terms of a hybrid built on JEM (EB-JDAT); ``e_data`` = E(x_px), with graph."""
        return 0.0, {}

    def loss(self, model, x, y):
        m = self.mcfg
        n_px = m.px_batch_size or len(x)
        x_cls = self.crafted("x_cls", lambda: self.inputs(model, x, y))
        # The references' order (it matters when every forward moves BN statistics, bn_stats=all):
        # the data batch's E(x), the SGLD chains, the negatives' E(x), then the classifier's CE.
        logits_px = None
        if m.px_data == "batch":
            x_px = x if self.px_on_clean else x_cls
        else:
            x_px = self.crafted("x_px", lambda: self.px_batch(n_px))
        if self.px_on_clean and x_px is not x_cls:
            with self.bn_frozen(model):
                logits_px = upcast(model(x_px))
        x_neg = self.crafted("x_neg", lambda: self.negatives.sample(unwrap(model), n_px)[0])
        with self.negatives.bn_context(model):  # as the sampler saw them
            logits_neg = upcast(model(x_neg))
        logits = upcast(model(x_cls))  # CE and energies in fp32 from (bf16) logits
        if logits_px is None:
            logits_px = logits
        ce = cross_entropy(logits, y).mean()
        e_pos_all, e_neg_all = marginal_energy(logits_px), marginal_energy(logits_neg)
        e_pos, e_neg = e_pos_all.mean(), e_neg_all.mean()
        px = e_pos - e_neg
        loss = ce + m.px_weight * px
        if m.energy_l2:
            loss = loss + m.energy_l2 * (e_pos_all.square().mean() + e_neg_all.square().mean())
        extra, extra_metrics = self.extra_terms(model, x, y, e_pos_all, x_px)
        self.last_inputs = {"x_cls": x_cls.detach(), "x_neg": x_neg.detach(), "x_px": x_px.detach()}
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
    (``sampling/pyld.py``) and informative (Gaussian) chain seeds, the sampler Robust JEM shares.
    ``paper-jempp`` matches sndnyang/JEMPP at fba6ba5 step for step (docs/PARITY.md). SADA-JEM is
    :class:`JEM` with ASAM (``paper-sadajem``), checked against sndnyang/SADAJEM the same way."""

    name = "jempp"
    summary = "JEM++: JEM with the proximal (PYLD) sampler and Gaussian-seeded chains"
    implies = {"method.sgld.sampler": "pyld", "method.sgld.init": "gaussian", "method.sgld.clamp": "true",
               "method.sgld.noise": "0", "method.sgld.step_size": "0"}  # fmt: skip

    def __init__(self, cfg, model, train_set, device):
        if cfg.method.sgld.sampler != "pyld":
            raise ValueError("jempp samples with JEM++'s proximal sampler: set method.sgld.sampler=pyld "
                             "(or train --method jem for plain SGLD)")  # fmt: skip
        super().__init__(cfg, model, train_set, device)
