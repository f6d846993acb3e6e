"""Memorisation check (JEAT paper Fig. 7): the training images most similar to each generated one.

Similarity is SSIM (:mod:`.ssim`, Wang et al. 2004, as the paper uses). For each of the first
``memorisation.n`` generated images we search ``memorisation.train_n`` training images (all by
default) and keep the top ``memorisation.k``. A max SSIM near 1 would mean a copied training
image; the grid shows each generated image (left column) and its nearest training images.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..data import load_npz  # noqa: E402
from .common import EvalContext, to_float  # noqa: E402
from .ssim import pairwise_ssim  # noqa: E402


def nearest_by_ssim(gen: torch.Tensor, train: torch.Tensor, k: int, chunk: int = 2048, bar=None):
    """Top-k SSIM (values, indices) of generated images (float [0,1]) against uint8 training images.

    Training images are converted to float one chunk at a time (50k CIFAR images are 600 MB as float)."""
    best_v = torch.full((len(gen), 0), -2.0)
    best_i = torch.zeros((len(gen), 0), dtype=torch.long)
    for j in range(0, len(train), chunk):
        s = pairwise_ssim(gen, to_float(train[j : j + chunk], gen.device)).cpu()
        v = torch.cat([best_v, s], 1)
        i = torch.cat([best_i, torch.arange(j, j + s.shape[1]).expand(len(gen), -1)], 1)
        best_v, top = v.topk(min(k, v.shape[1]), dim=1)
        best_i = i.gather(1, top)
        if bar is not None:
            bar.update(s.shape[1])
    return best_v, best_i


def grid_png(gen: torch.Tensor, train: torch.Tensor, idx: torch.Tensor, path, pad: int = 2) -> None:
    """Rows: generated image | its nearest training images (uint8 NCHW inputs)."""
    n, k = idx.shape
    c, h, w = gen.shape[1:]
    canvas = np.full((n * (h + pad) + pad, (k + 1) * (w + pad) + 2 * pad, 3), 255, np.uint8)
    for r in range(n):
        row = [gen[r]] + [train[int(t)] for t in idx[r]]
        for col, img in enumerate(row):
            a = img.permute(1, 2, 0).numpy()
            a = np.repeat(a, 3, 2) if c == 1 else a
            x0 = pad + col * (w + pad) + (pad if col else 0)  # a wider gap after the generated column
            y0 = pad + r * (h + pad)
            canvas[y0 : y0 + h, x0 : x0 + w] = a
    plt.imsave(path, canvas)


def run(ctx: EvalContext) -> dict:
    if ctx.samples is None:
        return {"skipped": "no generated images: pass --samples FILE.npz (x uint8 NHWC, y), e.g. from `jeat generate`"}
    gen = load_npz(ctx.samples)
    n = min(len(gen), ctx.opt("memorisation", "n", 10))
    k = ctx.opt("memorisation", "k", 10)
    train = ctx.train_set()
    train_n = min(len(train), ctx.opt("memorisation", "train_n", len(train)))
    train_imgs = train.subset(train_n).images if train_n < len(train) else train.images
    if gen.shape != train.shape:
        raise ValueError(f"generated images {gen.shape} and training images {train.shape} differ in shape")
    bar = ctx.bar(train_n, "memorisation (SSIM search)")
    g = to_float(gen.images[:n], ctx.device)
    vals, idx = nearest_by_ssim(g, train_imgs, k, bar=bar)
    bar.close()
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    grid_png(gen.images[:n], train_imgs, idx, ctx.out_dir / "memorisation.png")
    top1 = vals[:, 0]
    nearest = [{"generated": r, "train_index": idx[r].tolist(), "ssim": [round(v, 4) for v in vals[r].tolist()]}
               for r in range(n)]  # fmt: skip
    return {"similarity": "SSIM (11x11 Gaussian window, sigma 1.5, [0,1] range)", "n": n, "train_n": train_n,
            "k": k, "train_index": "into the first train_n of a fixed shuffle (all: original order)",
            "max_ssim_mean": float(top1.mean()), "max_ssim_max": float(top1.max()), "nearest": nearest,
            "samples": str(ctx.samples), "plots": ["memorisation.png"]}  # fmt: skip
