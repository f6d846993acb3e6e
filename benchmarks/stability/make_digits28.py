"""A data set of another domain for the stability benchmark (issue 26): handwritten digits, 28x28.

scikit-learn ships UCI's 8x8 optical digits (1,797 images, 10 classes, 16 grey levels) offline; they
are upscaled (bilinear, antialiased) to 28x28 uint8, one channel, and split 1,497 train / 300 test
with a fixed permutation. Not derived from CIFAR: other content, resolution and statistics, so
thresholds chosen on CIFAR-10 and its gray28 copy can be judged on it. Needs ``pip install scikit-learn``
(benchmark-only; jeat does not depend on it). Only this converter is committed.

    python benchmarks/stability/make_digits28.py --out runs/data/digits28
    jeat train --preset cpu-jeat --dataset npz --data runs/data/digits28
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

N_TEST = 300


def build(out: Path, size: int = 28, seed: int = 0) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)  # (N, 1, 8, 8), 0..255
    big = F.interpolate(x, size=(size, size), mode="bilinear", antialias=False, align_corners=False)
    imgs = big.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    perm = np.random.default_rng(seed).permutation(len(imgs))
    out.mkdir(parents=True, exist_ok=True)
    for name, idx in (("test.npz", perm[:N_TEST]), ("train.npz", perm[N_TEST:])):
        tmp = out / f".{name}.tmp.npz"
        np.savez(tmp, x=imgs[idx], y=d.target[idx].astype(np.int64))
        tmp.replace(out / name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/data/digits28")
    build(Path(p.parse_args().out))


if __name__ == "__main__":
    main()
