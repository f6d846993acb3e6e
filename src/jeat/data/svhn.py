"""SVHN (Netzer et al. 2011), the cropped-digit format: ``{train,test}_32x32.mat``, or ``train.npz`` /
``test.npz`` in the same folder. JEM's Table 3 and most OOD tables score CIFAR-10 models against its
test split. The .mat files are MATLAB v5 (read with scipy, no pickle); label 10 means digit 0.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import torch

from .download import file_digest
from .sources import DataNotFoundError, ImageSet, load_npz

URL = "http://ufldl.stanford.edu/housenumbers/{split}_32x32.mat"
MD5 = {"train": "e26dedcc434d2e4c54c9b2d4a06d0373", "test": "eb5a983be6a315427106f1b164d9cef3"}
CLASSES = [str(i) for i in range(10)]


def _find(root: Path, split: str) -> Path | None:
    for d in (root, root / "svhn"):
        for f in (f"{split}.npz", f"{split}_32x32.mat"):
            if (d / f).is_file():
                return d / f
    return None


def download_svhn(root: Path, split: str) -> Path:
    """Fetch ``{split}_32x32.mat`` into ``root/svhn`` and check its published MD5."""
    target = root / "svhn" / f"{split}_32x32.mat"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    urllib.request.urlretrieve(URL.format(split=split), tmp)
    if file_digest(tmp) != MD5[split]:
        tmp.unlink()
        raise OSError(f"downloaded {URL.format(split=split)} but its MD5 does not match {MD5[split]}")
    tmp.replace(target)
    return target


def load_svhn(root: Path, split: str, download: bool = False) -> ImageSet:
    path = _find(root, split)
    if path is None and download:
        path = download_svhn(root, split)
    if path is None:
        raise DataNotFoundError(
            f"svhn ({split}) not found under {root} or {root / 'svhn'}: put {split}_32x32.mat (or {split}.npz) "
            "there, or add --download where online"
        )
    if path.suffix == ".npz":
        return load_npz(path, CLASSES)
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise ImportError(f"reading {path} needs scipy (pip install scipy): {e}") from None
    mat = loadmat(str(path))
    x = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    y = mat["y"].astype(np.int64).reshape(-1) % 10  # 10 -> 0
    return ImageSet(torch.from_numpy(x), torch.from_numpy(y), CLASSES)
