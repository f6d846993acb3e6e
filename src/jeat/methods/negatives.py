"""SGLD negatives x~ for the -log p(x) term, shared by JEM, JEAT and Robust JEM.

A persistent :class:`~jeat.sampling.ReplayBuffer`: each step draws a batch of chain states
(fresh seeds with probability rho), runs K Langevin steps (``sampler=sgld``) or JEM++'s m x n
proximal steps (``sampler=pyld``, :mod:`jeat.sampling.pyld`) on E(x) (on E(x, y~) for a
class-conditional buffer, as in JEM's ``class_cond_p_x_sample``) with the unwrapped model in
train mode and BN running statistics frozen, writes the states back and returns them.

Seeds: ``uniform`` U(0, 1) (JEM's U(-1, 1) in [0, 1] units; Algorithm 1) or ``gaussian``, the
class-conditional Gaussian of JEM++ / Robust JEM fitted on the training set and cached under
``$JEAT_CACHE`` (default ``~/.cache/jeat``) keyed by a hash of the training images.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ..config import SGLDConfig
from ..data import ImageSet
from ..models.utils import sgld_bn_context
from ..sampling import ClassGaussian, ReplayBuffer, langevin, pyld, uniform_seeds

SEED_KINDS = ("uniform", "gaussian")
SAMPLERS = ("sgld", "pyld")


def cache_dir() -> Path:
    return Path(os.environ.get("JEAT_CACHE") or Path.home() / ".cache" / "jeat").expanduser()


def dataset_digest(data: ImageSet) -> str:
    h = hashlib.sha1()
    h.update(str(tuple(data.images.shape)).encode())
    h.update(data.images.contiguous().numpy().tobytes())
    h.update(data.labels.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def class_gaussian(data: ImageSet, device: torch.device | str = "cpu") -> ClassGaussian:
    """The class-conditional Gaussian of ``data``, fitted once and cached (safetensors)."""
    # "-jempp": JEM++'s biased covariance and ridge (2026-11-30); earlier caches used / (N - 1), 1e-4.
    path = cache_dir() / "class_gaussian" / f"{dataset_digest(data)}-jempp.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    return ClassGaussian.cached(path, data).to(device)


class SGLDNegatives:
    def __init__(self, cfg: SGLDConfig, train_set: ImageSet, device: torch.device | str, update_bn: bool = False):
        if cfg.init not in SEED_KINDS:
            raise ValueError(f"unknown method.sgld.init {cfg.init!r}; choose {', '.join(SEED_KINDS)}")
        sgld_bn_context(nn.Identity(), cfg.bn)  # validates the name
        if cfg.sampler not in SAMPLERS:
            raise ValueError(f"unknown method.sgld.sampler {cfg.sampler!r}; choose {', '.join(SAMPLERS)}")
        self.cfg, self.update_bn = cfg, update_bn
        shape, device = train_set.shape, torch.device(device)
        if cfg.init == "gaussian":
            gauss = class_gaussian(train_set, device)
            seed_fn = lambda n, labels: gauss.sample(labels)  # noqa: E731
        else:
            seed_fn = lambda n, labels: uniform_seeds(n, shape, device)  # noqa: E731
        self.buffer = ReplayBuffer(cfg.buffer_size, shape, train_set.num_classes, seed_fn, device,
                                   conditional=cfg.class_conditional_buffer)  # fmt: skip

    def sample(self, net: nn.Module, n: int) -> tuple[Tensor, Tensor]:
        """K SGLD steps from n buffer states; returns (x~_K, their buffer labels)."""
        c = self.cfg
        x0, idx, labels = self.buffer.sample(n, c.reinit_prob)
        kind, y = ("joint", labels) if c.class_conditional_buffer else ("marginal", None)
        with self.bn_context(net):
            if c.sampler == "pyld":
                x = pyld(net, x0, y, c.steps, c.inner_steps, c.step_size, c.inner_step_size, c.inner_clip, c.noise,
                         c.clip_grad)  # fmt: skip
            else:
                x, _ = langevin(net, x0, y, kind, c.steps, c.step_size, c.noise, c.clip_grad, c.clamp)
        self.buffer.push(x, idx)
        return x, labels

    def bn_context(self, net: nn.Module):
        """How BN treats the chains: ``sgld.bn`` (batch or running statistics, frozen), or batch
        statistics that also move the running ones (``method.bn_stats=all``, the references)."""
        if self.update_bn and self.cfg.bn == "batch":
            return contextlib.nullcontext()
        return sgld_bn_context(net, self.cfg.bn)

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state["buffer"])
