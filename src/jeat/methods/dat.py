"""DAT: dual adversarial training (Yin, Zhang, Steele, Shavit, Wang 2025; code xuwangyin/DAT).

Two losses per step, as ``rebm/training/metrics.py`` computes them:
- **the energy as a discriminator** (``compute_ebm_metrics``): out-of-distribution images x_o
  (``data.outdist``) are pushed by T steps of unbounded l_2 PGD (unit-gradient steps of
  ``dat.step_size``, clamped to [0, 1], no random start) up the class-conditional logit f(x)[y] of
  the labels y of an in-distribution batch x (``dat.sample_energy``); then
      L_D = BCE(s(x), 1) + BCE(s(x_o^T), 0),   s = logsumexp_y f(.)[y] = -E(x)   (``dat.energy``)
  (+ ``dat.r1`` * 0.5 E||d s(x)/dx||^2, off in the paper);
- **the classifier** (``compute_clf_adv_loss``): CE on l_2 PGD examples of a second batch
  (``method.attack``: eps 0.5, 10 steps of 0.1, no random start).
The **curriculum**: after each step the AUC between f(x)[y] of the data and of the attacked images
(ranked in eval mode) joins a window of ``dat.auc_window`` images; when the window is full and its
mean reaches ``dat.auc_threshold``, T grows by one (up to ``dat.max_steps``) and the window restarts.
T and the window are the method's state (checkpointed, so ``--resume`` is exact).
With ``dat.bn=frozen`` (the reference: ``use_batchnorm=false``) every BatchNorm normalises by its
running statistics and never updates them. The paper's samples are the same attack run from
out-of-distribution seeds (``jeat generate --sampler dat``).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from ..attacks.dat import dat_attack, dat_logit
from ..data.augment import random_batch
from ..energy import upcast
from ..evaluation.ood_metrics import auroc
from ..models.folding import folded_bn
from ..models.utils import eval_mode, frozen_bn_stats, running_bn_stats, unwrap
from .base import Method, accuracy_metric
from .outdist import OutDist


def r1_penalty(s: Tensor, x: Tensor) -> Tensor:
    """0.5 * mean ||d s / dx||^2 (zero-centred gradient penalty on data, as the reference's r1_reg)."""
    (g,) = torch.autograd.grad(s.sum(), x, create_graph=True)
    return 0.5 * g.pow(2).flatten(1).sum(1).mean()


class DAT(Method):
    name = "dat"
    summary = "DAT: l_2 PGD adversarial training + the energy as a discriminator of data vs attacked OOD images"
    implies = {"method.attack.norm": "l2", "method.attack.eps": "0.5", "method.attack.step_size": "0.1",
               "method.attack.steps": "10", "method.attack.random_start": "false"}  # fmt: skip

    def __init__(self, cfg, model, train_set, device):
        super().__init__(cfg, model, train_set, device)
        self.d = cfg.method.dat
        # The discriminator's data and OOD batches are augmented as the classifier's (data.augment): the
        # reference's loaders all use RandomCrop(32, padding=4), zero padding (paper-dat: flip-crop-zero).
        self.augmentation = cfg.data.augment
        self.outdist = OutDist(cfg.data.outdist, train_set, cfg.data.root, device, cfg.data.download,
                               augmentation=cfg.data.augment)  # fmt: skip
        self.images, self.labels = train_set.images, train_set.labels
        self.batch_size = cfg.data.batch_size
        # data.batch_size is per rank; the reference's window counts global batches of images
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.window = math.ceil(self.d.auc_window / (self.batch_size * world))
        self.steps = self.d.start_steps  # T, the current attack length
        self.aucs: list[float] = []  # adversarial AUCs since T last changed (at most `window`)
        self._pending: Tensor | None = None
        self.last_inputs: dict = {}

    def bn_context(self, model):
        return running_bn_stats(unwrap(model)) if self.d.bn == "frozen" else contextlib.nullcontext()

    def ebm_batch(self) -> tuple[Tensor, Tensor]:
        """The discriminator's in-distribution batch, drawn apart from the classifier's (the reference's
        two loaders) and augmented as the classifier's ("original" augmentation); global RNG, so resumable."""
        x, idx = random_batch(self.images, self.batch_size, self.augmentation)
        return x.to(self.device), self.labels[idx].to(self.device)

    def adv_auc(self, net, x_in: Tensor, y_in: Tensor, x_adv: Tensor, x_out: Tensor) -> tuple[float, float]:
        """AUC of f(x)[y] between data and attacked / clean OOD images, in eval mode (the reference's)."""
        with eval_mode(net), torch.no_grad():
            s = upcast(net(torch.cat([x_in, x_adv, x_out]))).gather(1, y_in.repeat(3).view(-1, 1)).squeeze(1)
        s_in, s_adv, s_out = s.chunk(3)
        return auroc(s_in, s_adv), auroc(s_in, s_out)

    def loss(self, model, x, y):
        net, d = unwrap(model), self.d
        with self.bn_context(model):
            if not self.reuse_crafted:
                self._crafted["x_in"], self._crafted["y_in"] = self.ebm_batch()
                self._crafted["x_out"] = self.outdist.sample(self.batch_size)
            x_in, y_in, x_out = self._crafted["x_in"], self._crafted["y_in"], self._crafted["x_out"]
            x_adv = self.crafted("x_out_adv", lambda: self._attack_outdist(net, x_out, y_in))
            if not self.reuse_crafted:
                adv_auc, clean_auc = self.adv_auc(net, x_in, y_in, x_adv, x_out)
                self._pending = torch.tensor([adv_auc, clean_auc])
            if d.r1 > 0:
                x_in = x_in.detach().requires_grad_(True)
            # bn=train: only the classifier's forward moves BN running statistics (frozen: none does)
            with frozen_bn_stats(net):
                s_in = dat_logit(model(x_in), y_in, d.energy)
                s_adv = dat_logit(model(x_adv), y_in, d.energy)
            target = torch.cat([torch.ones_like(s_in), torch.zeros_like(s_adv)])
            bce = F.binary_cross_entropy_with_logits(torch.cat([s_in, s_adv]), target)
            r1 = r1_penalty(s_in, x_in) if d.r1 > 0 else s_in.new_zeros(())
            x_cls = self.crafted("x_adv", lambda: self.attack(model, x, y))
            logits = upcast(model(x_cls))
            ce = F.cross_entropy(logits, y)
        self.last_inputs = {"x_in": x_in.detach(), "x_out": x_out, "x_out_adv": x_adv, "x_cls": x_cls}
        metrics = {"ce": ce.detach(), "acc": accuracy_metric(logits, y), "bce": bce.detach(),
                   "dat_steps": torch.tensor(float(self.steps)), "dat_energy_in": -s_in.detach().mean(),
                   "dat_energy_adv": -s_adv.detach().mean()}  # fmt: skip
        if self._pending is not None:
            metrics["adv_auc"], metrics["clean_auc"] = self._pending[0], self._pending[1]
        if d.r1 > 0:
            metrics["r1"] = r1.detach()
        loss = bce + d.r1 * r1 + ce
        metrics["loss"] = loss.detach()
        return loss, metrics

    def _attack_outdist(self, net, x_out: Tensor, y_in: Tensor) -> Tensor:
        with eval_mode(net), folded_bn(net, self.cfg.fold_bn):  # the reference attacks in eval mode
            return dat_attack(net, x_out, y_in, self.steps, self.d.step_size, self.d.eps, self.d.sample_energy)

    @torch.no_grad()
    def after_update(self, model) -> dict[str, Tensor]:
        out = super().after_update(model)
        if self._pending is None:
            return out
        auc = self._pending[0].clone()
        if dist.is_available() and dist.is_initialized():  # the reference averages the AUC over ranks
            dist.all_reduce(auc)
            auc /= dist.get_world_size()
        self._pending = None
        self.aucs = [*self.aucs, float(auc)][-self.window :]
        if self.steps < self.d.max_steps and len(self.aucs) == self.window:
            if sum(self.aucs) / self.window >= self.d.auc_threshold:
                self.steps, self.aucs = self.steps + 1, []
        return out

    def describe(self) -> dict:
        return {"dat": {"outdist": self.outdist.describe(), "steps": self.steps, "max_steps": self.d.max_steps}}

    def state_dict(self) -> dict:
        return {"steps": torch.tensor(self.steps), "aucs": torch.tensor(self.aucs, dtype=torch.float64)}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self.aucs = [float(a) for a in state["aucs"]]
