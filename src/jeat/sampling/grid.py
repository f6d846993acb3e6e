"""Image grids (PNG) and sample files (``.npz``) written by ``jeat generate`` / ``jeat denoise``.

``samples.npz`` format (read by the FID evaluation): ``x`` uint8 (N, H, W, C) RGB (or C = 1),
``y`` int64 (N,). Float images in [0, 1] become uint8 by ``round(clamp(x, 0, 1) * 255)``.
All files are written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..training.checkpoint import atomic_write_bytes


def to_uint8(x: Tensor) -> np.ndarray:
    """Float (N, C, H, W) in [0, 1] -> uint8 numpy (N, H, W, C); values outside the box are clamped."""
    if x.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) images, got {tuple(x.shape)}")
    u8 = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return u8.permute(0, 2, 3, 1).cpu().numpy()


def image_grid(x: Tensor, ncol: int, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile (N, C, H, W) images row by row, ``ncol`` per row -> uint8 (H', W', C)."""
    imgs = to_uint8(x)
    n, h, w, c = imgs.shape
    ncol = max(1, min(ncol, n)) if n else 1
    nrow = max(1, -(-n // ncol))
    out = np.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        out[top : top + h, left : left + w] = imgs[i]
    return out


def class_grid(x: Tensor, y: Tensor, num_classes: int, per_row: int, padding: int = 2) -> np.ndarray:
    """One row per class (Fig. 6 style): the first ``per_row`` images of each class, in order.

    Rows of classes with fewer images are padded with blank cells; classes without any are skipped.
    """
    rows = []
    for c in range(num_classes):
        xc = x[y.to(x.device) == c][:per_row]
        if len(xc) == 0:
            continue
        if len(xc) < per_row:
            xc = torch.cat([xc, torch.ones(per_row - len(xc), *xc.shape[1:], device=xc.device)])
        rows.append(xc)
    if not rows:
        raise ValueError("no images to draw")
    return image_grid(torch.cat(rows), per_row, padding)


def save_png(img: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Write a uint8 (H, W, C) array as PNG; ``scale`` > 1 enlarges by pixel repetition."""
    if scale > 1:
        img = img.repeat(scale, 0).repeat(scale, 1)
    pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))


def save_samples(path: str | Path, x: Tensor, y: Tensor) -> Path:
    """``samples.npz``: x uint8 (N, H, W, C), y int64 (N,)."""
    buf = io.BytesIO()
    np.savez(buf, x=to_uint8(x), y=y.detach().cpu().to(torch.int64).numpy())
    return atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))


def load_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return f["x"], f["y"]
