"""Re-initialised chains, compared: both sides' re-initialisation seeds fed alike, and the class-conditional
Gaussian those seeds come from fitted by each side's own code.

With ``reinit_freq`` > 0 (JEM, JEM++, EB-JDAT, SADA-JEM: 0.05) each sampler call restarts some chains
from a fresh seed. The references draw a seed for *every* chain of the batch (``init_random``) and then
pick the restarted ones with ``t.rand(bs) < reinit_freq``; jeat's ``ReplayBuffer.sample`` draws the mask
first and seeds only the chosen chains (a Gaussian seed costs O(D^2) per image). Same distribution,
different random streams. :class:`ReinitFeed` aligns them without touching either side's logic: the
harness draws each step's seeds once, with the reference's own ``init_random``, under a seed of its own;
inside a sampler call the reference's ``init_random`` returns them instead of drawing (so it no longer
consumes the global generator, and both sides' masks come from the same seeded stream), and jeat's
buffer seeds the chains its mask chose (``ReplayBuffer.last_reinit``) from the same rows.

What the feed cannot show is whether jeat's seed distribution is the reference's: that is
:func:`seed_distribution`, the per-class mean and covariance (ridge included) of the same images, fitted
by the reference's ``category_mean`` and ``init_from_centers`` and by jeat's ``class_gaussian``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch


class ReinitFeed:
    """Per sampler call i, the reference's ``init_random(args, batch)`` output, drawn under seed
    ``seed + i`` (torch and numpy) outside both runs' random streams, in the reference's [-1, 1] units."""

    def __init__(self, draw, steps: int, batch: int, dtype: torch.dtype, seed: int = 40_000):
        self.draw, self.steps, self.batch, self.dtype, self.seed = draw, steps, batch, dtype, seed
        self.draws: list[torch.Tensor] | None = None
        self.calls = {"ref": 0, "jeat": 0}
        self.armed: dict[str, torch.Tensor | None] = {"ref": None, "jeat": None}
        self.ref_fed = 0  # the reference's sampler calls served from the feed
        self.jeat_chains: list[int] = []  # per jeat run (main, controls): chains re-seeded from the feed
        self.size_mismatches = 0  # jeat sampler calls of another batch size than the reference's

    def _draw(self, n: int, seed: int) -> torch.Tensor:
        with torch.random.fork_rng():
            np_state = np.random.get_state()
            torch.manual_seed(seed)
            np.random.seed(seed)
            try:
                return self.draw(n).to(self.dtype)
            finally:
                np.random.set_state(np_state)

    def _draw_all(self) -> list[torch.Tensor]:
        # Lazily: JEM++'s init_random needs the class Gaussians its main() fits before the first step.
        if self.draws is None:
            self.draws = [self._draw(self.batch, self.seed + i) for i in range(self.steps)]
        return self.draws

    def arm(self, fn, side: str):
        """``fn`` (a sampler call of ``side``) with call i's seeds armed while it runs."""

        def armed(*a, **k):
            i = self.calls[side]
            self.calls[side] += 1
            self.armed[side] = self._draw_all()[i] if i < self.steps else None
            try:
                return fn(*a, **k)
            finally:
                self.armed[side] = None

        return armed

    def reference(self, orig):
        """Replaces the reference's ``init_random(args, bs)``: the armed seeds inside a sampler call,
        the original elsewhere (the initial buffer, the feed's own draws)."""

        def init_random(args, bs):
            z = self.armed["ref"]
            if z is None:
                return orig(args, bs)
            if len(z) != bs:
                raise RuntimeError(f"reinit feed: the reference asked for {bs} seeds, {len(z)} prepared")
            self.ref_fed += 1
            return z.clone()

        return init_random

    def jeat(self, buffer):
        """A ``seed_fn`` for jeat's ``ReplayBuffer``: the armed seeds of the chains its mask chose."""

        def seed_fn(n, labels):
            z = self.armed["jeat"]
            if z is None:
                raise RuntimeError("reinit feed: jeat re-seeded chains outside an armed sampler call")
            mask = buffer.last_reinit
            if len(mask) != len(z):  # a batch-size departure: let the checks fail on it, not the feed
                self.size_mismatches += 1
                z = self._draw(len(mask), self.seed + 10_000 + self.calls["jeat"])
            self.jeat_chains[-1] += int(mask.sum())
            return (z[mask] + 1) / 2

        return seed_fn

    def install(self, negatives) -> None:
        """jeat's side, on one trainer's ``SGLDNegatives``: its sampler calls armed (counted from 0,
        so each jeat run of a check, controls included, starts at the first step's seeds) and its
        buffer seeded from the feed."""
        self.calls["jeat"] = 0
        self.jeat_chains.append(0)
        negatives.buffer.seed_fn = self.jeat(negatives.buffer)
        negatives.sample = self.arm(negatives.sample, "jeat")

    def record(self) -> dict:
        """How much the feed was used: a run whose mask never chose a chain has tested nothing here."""
        return {"seed": self.seed, "reference_calls_fed": self.ref_fed, "size_mismatches": self.size_mismatches,
                "jeat_chains_reseeded": self.jeat_chains[0] if self.jeat_chains else 0}  # fmt: skip


def jeat_fit(images: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """jeat's class Gaussian of uint8 ``images``, fitted by the
    function its SGLD seeds use (``methods.negatives.class_gaussian``, in a fresh cache so that no
    earlier fit is reused), as (means, covariances) in the references' [-1, 1] units."""
    from jeat.data.sources import ImageSet
    from jeat.methods.negatives import class_gaussian

    data = ImageSet(images.clone(), y.clone(), [str(c) for c in range(10)])
    saved = os.environ.get("JEAT_CACHE")
    default = torch.get_default_dtype()
    with tempfile.TemporaryDirectory() as d:
        os.environ["JEAT_CACHE"] = d
        torch.set_default_dtype(dtype)
        try:
            g = class_gaussian(data)
        finally:
            torch.set_default_dtype(default)
            if saved is None:
                os.environ.pop("JEAT_CACHE")
            else:
                os.environ["JEAT_CACHE"] = saved
    mean = 2 * g.mean.to(dtype) - 1
    chol = g.chol.to(dtype)
    return mean, 4 * chol @ chol.transpose(1, 2)  # var_u = 4 var_x; the ridge is inside the factor


def reference_fit(conditionals) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's seed distribution as its ``init_from_centers`` built it (``conditionals``:
    one ``MultivariateNormal`` per class, its ridge included)."""
    return (torch.stack([d.loc for d in conditionals]), torch.stack([d.covariance_matrix for d in conditionals]))


def reference_category_mean(fn, images: torch.Tensor, y: torch.Tensor, args, where: Path,
                            typo_shim: bool = False) -> None:  # fmt: skip
    """Run the reference's own ``category_mean(dload_train, args)`` on uint8 ``images`` (handed over
    in [-1, 1] in the default dtype, its loaders' units) from folder ``where`` (it writes ``<dataset>_{mean,cov}.pt``
    there). ``typo_shim``: JEM++ (fba6ba5) ends it with ``t.load(covs, path)`` where ``t.save`` is
    meant; while it runs, ``torch.load`` handed a tensor saves it."""
    x = images.to(torch.get_default_dtype()) / 255
    loader = [(2 * x[i : i + 500] - 1, y[i : i + 500]) for i in range(0, len(x), 500)]
    orig_load = torch.load

    def load(obj, *a, **k):
        if isinstance(obj, torch.Tensor):
            return torch.save(obj, *a, **k)
        return orig_load(obj, *a, **k)

    (where / "data").mkdir(exist_ok=True)  # EB-JDAT's also saves each class's images under data/ in its cwd
    cwd = os.getcwd()
    os.chdir(where)
    if typo_shim:
        torch.load = load
    try:
        fn(loader, args)
    finally:
        torch.load = orig_load
        os.chdir(cwd)


def gaussian_files(x: torch.Tensor, y: torch.Tensor, where: Path) -> None:
    """``cifar10_mean.pt`` / ``cifar10_cov.pt`` as SADA-JEM's ``multi_center.category_mean`` writes them
    (its ``one_center.py`` is not in the checkout, so it cannot run): per class the mean and the biased
    covariance of the flattened images in [-1, 1], in the default dtype as the reference's ``torch.zeros``."""
    u = (2 * x - 1).flatten(1).double()
    dt = torch.get_default_dtype()
    means, covs = torch.zeros(10, u.shape[1], dtype=dt), torch.zeros(10, u.shape[1], u.shape[1], dtype=dt)
    for c in range(10):
        uc = u[y == c]
        mu = uc.mean(0)
        means[c], covs[c] = mu.to(dt), ((uc - mu).T @ (uc - mu) / len(uc)).to(dt)
    torch.save(means, where / "cifar10_mean.pt")
    torch.save(covs, where / "cifar10_cov.pt")
