"""Per-class Gaussian mixtures as Langevin seeds (JEM++'s informative initialisation; Robust JEM).

For each class the flattened training images are clustered by k-means (k-means++ start, Lloyd
iterations, i.e. hard-assignment EM), then each cluster gets a Gaussian whose covariance is
low-rank plus diagonal, the probabilistic-PCA form

    Sigma_k = F_k F_k^T + diag(psi_k),   F_k = top-r principal directions * their std,

with psi_k the per-pixel variance the r directions leave unexplained (plus a small ridge).
That keeps a 3072-pixel CIFAR image's model at ``M * D * (r + 2)`` numbers per class instead of
the ``D^2`` of a full covariance, and sampling costs one (r + D)-dim Gaussian draw. Fitted once
and cached as a safetensors file (see :meth:`ClassGMM.cached`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as st_save
from torch import Tensor

from ..data import ImageSet
from ..training.checkpoint import atomic_write_bytes
from .seeds import CachedFit


def kmeans(x: Tensor, k: int, iters: int = 20, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """k-means of rows of ``x`` (n, D) with k-means++ seeding; returns (centres (k, D), assignment (n,))."""
    n = len(x)
    if n < k:
        raise ValueError(f"k-means needs at least k={k} points, got {n}")
    centres = x[torch.randint(0, n, (1,), generator=generator)]
    d2 = torch.cdist(x, centres).squeeze(1) ** 2
    for _ in range(1, k):  # k-means++: next centre drawn with probability ~ squared distance
        p = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1 / n)
        nxt = x[torch.multinomial(p, 1, generator=generator)]
        centres = torch.cat([centres, nxt])
        d2 = torch.minimum(d2, (torch.cdist(x, nxt).squeeze(1)) ** 2)
    assign = torch.zeros(n, dtype=torch.long)
    for it in range(iters):
        new = torch.cdist(x, centres).argmin(1)
        if it > 0 and torch.equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = x[assign == j]
            if len(members):
                centres[j] = members.mean(0)
            else:  # empty cluster: restart it at the point farthest from its centre
                far = (x - centres[assign]).pow(2).sum(1).argmax()
                centres[j] = x[far]
                assign[far] = j
    return centres, assign


class ClassGMM(CachedFit):
    """Mixture of ``M`` low-rank-plus-diagonal Gaussians per class over flattened images in [0, 1]."""

    def __init__(self, weights: Tensor, means: Tensor, factors: Tensor, diag: Tensor, shape: tuple[int, ...]):
        # weights (K, M), means (K, M, D), factors (K, M, D, r), diag (K, M, D) variances
        self.weights, self.means, self.factors, self.diag = weights, means, factors, diag
        self.shape = tuple(shape)

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]

    @property
    def num_components(self) -> int:
        return self.means.shape[1]

    @property
    def rank(self) -> int:
        return self.factors.shape[-1]

    @classmethod
    def fit(cls, data: ImageSet, components: int = 5, rank: int = 16, iters: int = 20, ridge: float = 1e-4,
            max_per_class: int | None = None, seed: int = 0) -> ClassGMM:  # fmt: skip
        k, shape = data.num_classes, data.shape
        d = int(torch.tensor(shape).prod())
        gen = torch.Generator().manual_seed(seed)
        weights = torch.zeros(k, components)
        means = torch.zeros(k, components, d)
        factors = torch.zeros(k, components, d, rank)
        diag = torch.zeros(k, components, d)
        for c in range(k):
            xs = data.images[data.labels == c][:max_per_class].reshape(-1, d).float() / 255
            if len(xs) < 2 * components:
                need = 2 * components
                raise ValueError(f"class {c} has {len(xs)} images; {components} components need at least {need}")
            centres, assign = kmeans(xs, components, iters, gen)
            for j in range(components):
                xj = xs[assign == j]
                mu = xj.mean(0) if len(xj) else centres[j]
                weights[c, j] = len(xj)
                means[c, j] = mu
                if len(xj) < 2:
                    diag[c, j] = ridge
                    continue
                xc = xj - mu
                var = xc.pow(2).sum(0) / (len(xj) - 1)
                r = min(rank, len(xj) - 1, d)
                if r > 0:
                    with torch.random.fork_rng(devices=[]):  # randomised SVD, O(n D r): seeded, deterministic
                        torch.manual_seed(seed * 1_000_003 + c * 1009 + j)
                        _, s, v = torch.svd_lowrank(xc, q=min(r + 10, len(xj), d), niter=4)
                    f = v[:, :r] * (s[:r] / (len(xj) - 1) ** 0.5)  # (D, r): principal directions * std
                else:
                    f = xc.new_zeros(d, 0)
                factors[c, j, :, : f.shape[1]] = f
                diag[c, j] = (var - f.pow(2).sum(1)).clamp_min(0) + ridge
        weights = weights / weights.sum(1, keepdim=True)
        return cls(weights, means, factors, diag, shape)

    def covariance(self, c: int, j: int) -> Tensor:
        """The full (D, D) covariance of component j of class c (for tests and inspection)."""
        f = self.factors[c, j]
        return f @ f.T + torch.diag(self.diag[c, j])

    def sample(self, y: Tensor, clamp: bool = True, generator: torch.Generator | None = None) -> Tensor:
        y = y.to(self.means.device)
        n = len(y)
        comp = torch.multinomial(self.weights[y], 1, generator=generator).squeeze(1)
        dev = self.means.device
        z = torch.randn(n, self.rank, 1, device=dev, generator=generator)
        eps = torch.randn(n, self.means.shape[-1], device=dev, generator=generator)
        x = self.means[y, comp] + (self.factors[y, comp] @ z).squeeze(-1) + self.diag[y, comp].sqrt() * eps
        x = x.view(n, *self.shape)
        return x.clamp_(0, 1) if clamp else x

    def to(self, device) -> ClassGMM:
        return ClassGMM(self.weights.to(device), self.means.to(device), self.factors.to(device), self.diag.to(device),
                        self.shape)  # fmt: skip

    def save(self, path: str | Path) -> None:
        blob = st_save({"weights": self.weights.contiguous(), "means": self.means.contiguous(),
                        "factors": self.factors.contiguous(), "diag": self.diag.contiguous(),
                        "shape": torch.tensor(self.shape)})  # fmt: skip
        atomic_write_bytes(path, lambda f: f.write(blob))

    @classmethod
    def load(cls, path: str | Path) -> ClassGMM:
        t = load_file(str(path))
        return cls(t["weights"], t["means"], t["factors"], t["diag"], tuple(t["shape"].tolist()))
