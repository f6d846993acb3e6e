"""Build the stability benchmark's second data set: CIFAR-10 as 28x28 grayscale (1 channel).

No second image data set can be downloaded here, so one of a different kind is made from CIFAR-10:
luminance (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B), then an antialiased bilinear resize from
32x32 to 28x28, rounded back to uint8. Other channels and resolution than CIFAR-10, the same
labels. This is the shape of the data set in the stability issue's report (28x28 grayscale given
as npz). Only this converter is committed; the data it writes stays outside the repository.

    python benchmarks/stability/make_gray28.py --data ../shared/data --out runs/data/cifar10-gray28
    jeat train --preset cpu-jeat --dataset npz --data runs/data/cifar10-gray28
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jeat.data import data_root

LUMA = (0.299, 0.587, 0.114)


def to_gray28(x: np.ndarray, size: int = 28) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, size, size, 1)."""
    t = torch.from_numpy(x).float().permute(0, 3, 1, 2)
    gray = (t * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    small = F.interpolate(gray, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def convert(src: Path, out: Path, test_file: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, dst in (("train.npz", "train.npz"), (test_file, "test.npz")):
        with np.load(src / name, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
        tmp = out / f".{dst}.tmp.npz"
        np.savez(tmp, x=to_gray28(x), y=y)
        tmp.replace(out / dst)
        print(f"{src / name} -> {out / dst}: {len(y)} images, 28x28x1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="folder holding cifar10/train.npz (default $JEAT_DATA)")
    p.add_argument("--out", default="runs/data/cifar10-gray28")
    p.add_argument("--test-file", default="test_jpeg.npz")
    a = p.parse_args()
    root = data_root(a.data)
    src = root / "cifar10" if (root / "cifar10" / "train.npz").exists() else root
    convert(src, Path(a.out), a.test_file)


if __name__ == "__main__":
    main()
