"""Seeds for ``jeat generate``: for each seed distribution a function ``labels (n,) -> x0 (n, C, H, W)``.

``uniform`` U(0,1); ``gaussian`` / ``jempp`` class-conditional Gaussians (``seeds.py``) fitted on the
training set; ``gmm`` a per-class mixture (``gmm.py``); ``buffer`` states of a checkpoint's replay buffer.
Fitted distributions are cached in the run directory, so a second generation reuses the first's fit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from .gmm import ClassGMM
from .seeds import ClassGaussian

SEED_DISTS = ("uniform", "gaussian", "jempp", "gmm", "buffer")
SeedFn = Callable[[Tensor], Tensor]  # labels (n,) -> seeds (n, C, H, W)


def find_buffer(method_state: dict | None) -> dict[str, Tensor]:
    """The replay buffer ``{"x": (N, C, H, W), "labels": (N,)}`` inside a checkpoint's method state
    (JEM / JEAT / Robust JEM save ``{"buffer": {"x", "labels"}}``; nested dicts are searched too)."""
    stack = [method_state] if isinstance(method_state, dict) else []
    while stack:
        c = stack.pop(0)
        if isinstance(c.get("x"), Tensor) and c["x"].dim() == 4:
            labels = c.get("labels", c.get("y"))
            if labels is None:
                labels = torch.zeros(len(c["x"]), dtype=torch.long)
            return {"x": c["x"], "labels": labels.long()}
        stack.extend(v for v in c.values() if isinstance(v, dict))
    raise ValueError(
        "this checkpoint holds no replay buffer (only JEM / JEAT / Robust JEM runs keep one); "
        "use --seed-dist uniform, gaussian or gmm"
    )


def buffer_seed_fn(buffer: dict[str, Tensor], num_classes: int, generator: torch.Generator) -> SeedFn:
    """Draw buffer states; from a class-conditional buffer (labels in blocks) states of class y.

    An unconditional buffer's labels mean nothing, so any state may start any class.
    """
    bx, bl = buffer["x"].float(), buffer["labels"].cpu()
    conditional = bool(len(bl) >= num_classes and torch.equal(bl, torch.arange(len(bl)) % num_classes))
    pools = [torch.nonzero(bl == c).squeeze(1) for c in range(num_classes)] if conditional else None

    def fn(y: Tensor) -> Tensor:
        if pools is None:
            idx = torch.randint(0, len(bx), (len(y),), generator=generator)
        else:
            idx = torch.stack([pools[c][torch.randint(0, len(pools[c]), (1,), generator=generator)][0]
                               for c in y.cpu().tolist()])  # fmt: skip
        return bx[idx]

    return fn


def seed_fn(kind: str, shape: tuple[int, ...], num_classes: int, *, run_dir: str | Path | None = None,
            data=None, method_state: dict | None = None, gmm_components: int = 5, gmm_rank: int = 16,
            generator: torch.Generator | None = None) -> SeedFn:  # fmt: skip
    """Build ``labels -> x0`` for a seed distribution. ``data`` is an :class:`ImageSet` or a
    zero-argument callable returning one (only called when a Gaussian must be fitted)."""
    gen = generator or torch.Generator().manual_seed(0)
    if kind == "uniform":
        return lambda y: torch.rand((len(y), *shape), generator=gen)
    if kind == "buffer":
        return buffer_seed_fn(find_buffer(method_state), num_classes, gen)
    if kind not in ("gaussian", "jempp", "gmm"):
        raise ValueError(f"unknown seed distribution {kind!r}; choose {', '.join(SEED_DISTS)}")
    name = f"seeds-{kind}" if kind != "gmm" else f"seeds-gmm-m{gmm_components}-r{gmm_rank}"
    name += ".safetensors"
    path = Path(run_dir) / name if run_dir is not None else None
    if path is not None and path.exists():
        model = ClassGMM.load(path) if kind == "gmm" else ClassGaussian.load(path)
    else:
        if data is None:
            raise ValueError(f"--seed-dist {kind} needs the training set to fit the Gaussian(s) (pass --data)")
        ds = data() if callable(data) else data
        # `gaussian` keeps ridge 1e-4 and the unbiased covariance, the seeds every leaderboard FID was
        # measured with; `jempp` is JEM++'s own form (ClassGaussian.fit's default, also the training chains').
        if kind == "gaussian":
            model = ClassGaussian.fit(ds, ridge=1e-4, unbiased=True)
        elif kind == "jempp":
            model = ClassGaussian.fit(ds)
        else:
            model = ClassGMM.fit(ds, gmm_components, gmm_rank)
        if path is not None:
            model.save(path)
    if model.num_classes != num_classes or tuple(model.shape) != tuple(shape):
        raise ValueError(f"cached seeds at {path} are for {model.num_classes} classes of {model.shape}, "
                         f"expected {num_classes} of {tuple(shape)}; delete the file to refit")  # fmt: skip
    if kind == "gmm":
        return lambda y: model.sample(y.cpu(), generator=gen)

    def gauss(y: Tensor) -> Tensor:  # ClassGaussian.sample uses the global RNG; seeded by generate(); clamped
        return model.sample(y.cpu())

    return gauss
