"""Seed distributions x_0 for Langevin sampling.

- uniform U(0, 1) (JEM's U(-1, 1) in its [-1, 1] units),
- class-conditional Gaussian N(mu_y, Sigma_y) fitted on the training set (Section 2.2,
  Santurkar et al.; JEM++'s informative initialisation), full covariance with a small ridge,
  sampled through a Cholesky factor; fitted once and cached in a safetensors file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as st_save
from torch import Tensor

from ..data import ImageSet
from ..training.checkpoint import atomic_write_bytes


def uniform_seeds(n: int, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
    return torch.rand((n, *shape), device=device)


class CachedFit:
    """Seed distributions fitted on a data set once and cached on disk (safetensors)."""

    @classmethod
    def cached(cls, path: str | Path, data: ImageSet, **fit_kw):
        """Load from ``path`` if present, else fit on ``data`` and save there."""
        path = Path(path)
        if path.exists():
            return cls.load(path)
        g = cls.fit(data, **fit_kw)
        g.save(path)
        return g


JEMPP_RIDGE = 1e-4 / 4  # JEM++ adds 1e-4 I to covariances of u = 2x - 1: var_u = 4 var_x


class ClassGaussian(CachedFit):
    """Per-class mean and covariance of flattened images in [0, 1]."""

    def __init__(self, mean: Tensor, chol: Tensor, shape: tuple[int, ...]):
        self.mean, self.chol, self.shape = mean, chol, tuple(shape)  # (K, D), (K, D, D)

    @property
    def num_classes(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def fit(cls, data: ImageSet, ridge: float = JEMPP_RIDGE, max_per_class: int | None = None,
            unbiased: bool = False) -> ClassGaussian:  # fmt: skip
        """JEM++'s ``category_mean`` / ``init_from_centers``: the biased covariance (/ N) plus
        1e-4 I in its [-1, 1] units, i.e. ``JEMPP_RIDGE`` = 1e-4 / 4 on [0, 1] pixels."""
        k, shape = data.num_classes, data.shape
        d = int(torch.tensor(shape).prod())
        means, chols = torch.zeros(k, d), torch.zeros(k, d, d)
        for c in range(k):
            xs = data.images[data.labels == c][:max_per_class].reshape(-1, d).double() / 255
            if len(xs) < 2:
                raise ValueError(f"class {c} has {len(xs)} images; need at least 2 to fit a covariance")
            mu = xs.mean(0)
            cov = (xs - mu).T @ (xs - mu) / (len(xs) - 1 if unbiased else len(xs))
            cov += ridge * torch.eye(d, dtype=cov.dtype)  # ridge keeps the factor defined when N < D
            # stored in the default dtype: float32 in training (a CIFAR fit is 10 x 3072^2 floats), float64
            # where the parity harness compares it with the reference's in double
            means[c], chols[c] = mu.to(means.dtype), torch.linalg.cholesky(cov).to(chols.dtype)
        return cls(means, chols, shape)

    def sample(self, y: Tensor, clamp: bool = True) -> Tensor:
        y = y.to(self.mean.device)
        z = torch.randn(len(y), self.mean.shape[1], device=self.mean.device, dtype=self.mean.dtype)
        # Per class, not ``self.chol[y]``: gathering a (D, D) factor per example would allocate
        # n * D^2 floats (37 MB each for CIFAR). One host sync for the class counts.
        x = torch.empty_like(z)
        order = torch.argsort(y)
        start = 0
        for c, count in enumerate(torch.bincount(y, minlength=self.num_classes).tolist()):
            if count:
                idx = order[start : start + count]
                x[idx] = self.mean[c] + z[idx] @ self.chol[c].T
                start += count
        x = x.view(len(y), *self.shape)
        return x.clamp_(0, 1) if clamp else x

    def to(self, device) -> ClassGaussian:
        return ClassGaussian(self.mean.to(device), self.chol.to(device), self.shape)

    def save(self, path: str | Path) -> None:
        blob = st_save({"mean": self.mean.contiguous(), "chol": self.chol.contiguous(),
                        "shape": torch.tensor(self.shape)})  # fmt: skip
        atomic_write_bytes(path, lambda f: f.write(blob))

    @classmethod
    def load(cls, path: str | Path) -> ClassGaussian:
        t = load_file(str(path))
        return cls(t["mean"], t["chol"], tuple(t["shape"].tolist()))
