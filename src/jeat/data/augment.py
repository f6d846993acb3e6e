"""Batch augmentations on float images in [0, 1], vectorised, driven by an explicit generator
so a resumed run draws the same crops and flips."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

AUGMENTATIONS = ("none", "flip-crop", "flip-crop-zero", "jem")


def pad_crop_flip(x: Tensor, gen: torch.Generator, pad: int = 4, mode: str = "reflect") -> Tensor:
    """Pad by ``pad`` (``reflect``: JEM/JEM++'s Pad(4, reflect); ``constant``: zeros, torchvision's
    RandomCrop(32, padding=4) as TRADES and WEAT use it), take a random crop of the original size,
    flip half horizontally."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode=mode)
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (ox[:, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
    flip = torch.rand(n, generator=gen) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
    out = xp[torch.arange(n)[:, None, None], :, rows, cols]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


# JEM (train_wrn_ebm.py) adds N(0, 0.03^2) *after* normalising to [-1, 1], i.e. 0.015 in our
# [0, 1] pixel units, and does not clamp the noised image.
JEM_NOISE_STD = 0.03 / 2


def augment(x: Tensor, kind: str, gen: torch.Generator, noise_std: float = JEM_NOISE_STD) -> Tensor:
    """``flip-crop``: reflect-pad-crop-flip; ``flip-crop-zero``: the same with zero padding (TRADES,
    WEAT). ``jem``: pad-crop-flip + JEM's Gaussian noise (std 0.03 in
    [-1, 1] units = 0.015 in [0, 1]), unclamped as in JEM."""
    if kind == "none":
        return x
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; choose {', '.join(AUGMENTATIONS)}")
    x = pad_crop_flip(x, gen, mode="constant" if kind == "flip-crop-zero" else "reflect")
    if kind == "jem":
        x = x + noise_std * torch.randn(x.shape, generator=gen)
    return x


def random_batch(images: Tensor, n: int, kind: str = "none") -> tuple[Tensor, Tensor]:
    """``n`` uint8 images drawn with replacement by the global RNG (which checkpoints carry, so a
    resumed run draws the same), in [0, 1] and augmented with ``kind``; returns (x, indices)."""
    idx = torch.randint(len(images), (n,))
    x = images[idx].float().div_(255)
    if kind != "none":
        x = augment(x, kind, torch.Generator().manual_seed(int(torch.randint(2**62, ()))))
    return x, idx
