"""Data sets by name: ``cifar10``, ``cifar100``, ``svhn``, ``npz`` and ``folder``.

>>> train = load_dataset("cifar10", split="train", root="../shared/data")
"""

from __future__ import annotations

import os
from pathlib import Path

from .augment import AUGMENTATIONS, augment, pad_crop_flip
from .download import download_cifar
from .loader import BatchStream
from .sources import (
    CIFAR_DIRS,
    DataNotFoundError,
    ImageSet,
    _folder_classes,
    data_root,
    load_cifar_batches,
    load_image_folder,
    load_npz,
)

DATASETS = ("cifar10", "cifar100", "svhn", "npz", "folder")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Test files tried in order for npz-format CIFAR (shared/data ships a JPEG test set).
TEST_NPZ = ("test.npz", "test_jpeg.npz")

_HELP = (
    "Pass --data DIR (or set JEAT_DATA) to a folder holding either the official python batches "
    "({batches}/) or train.npz/test.npz, or add --download to fetch CIFAR from the internet."
)


def _find_cifar(name: str, root: Path, split: str, test_file: str | None) -> tuple[str, Path] | None:
    npz_names = ("train.npz",) if split == "train" else ((test_file,) if test_file else TEST_NPZ)
    for d in (root, root / name):
        for f in npz_names:
            if (d / f).is_file():
                return "npz", d / f
        if (d / CIFAR_DIRS[name]).is_dir():
            return "batches", d / CIFAR_DIRS[name]
        if (d / ("batches.meta" if name == "cifar10" else "meta")).is_file():  # the batches dir itself
            return "batches", d
    return None


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = False,
    test_file: str | None = None,
    image_size: int | None = None,
    limit: int | None = None,
) -> ImageSet:
    """Load ``split`` ('train' or 'test') of a data set; ``limit`` keeps a random subset."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    base = data_root(root)
    if name in CIFAR_DIRS:
        found = _find_cifar(name, base, split, test_file)
        if found is None and download:
            download_cifar(name, base / name)
            found = _find_cifar(name, base, split, test_file)
        if found is None:
            files = ["train.npz"] if split == "train" else list((test_file,) if test_file else TEST_NPZ)
            looked = [str(d / f) for d in (base, base / name) for f in [*files, CIFAR_DIRS[name]]]
            raise DataNotFoundError(
                f"{name} ({split}) not found. Looked for:\n  "
                + "\n  ".join(looked)
                + "\n"
                + _HELP.format(batches=CIFAR_DIRS[name])
            )
        kind, path = found
        if kind == "npz":
            data = load_npz(path, CIFAR10_CLASSES if name == "cifar10" else None)
            if name == "cifar100" and data.num_classes < 100:
                data = ImageSet(data.images, data.labels, [str(i) for i in range(100)])
        else:
            data = load_cifar_batches(path, name, split == "train")
    elif name == "svhn":
        from .svhn import load_svhn

        data = load_svhn(base, split, download)
    elif name == "npz":
        p = Path(root) if root else base
        if p.is_dir():
            p = p / ("train.npz" if split == "train" else (test_file or "test.npz"))
        if not p.is_file():
            raise DataNotFoundError(
                f"npz data set ({split}) not found: no file at {p}. Pass --data FILE_OR_DIR (or set "
                "JEAT_DATA) to an .npz file or a folder holding train.npz/test.npz."
            )
        data = load_npz(p)
    elif name == "folder":
        if root is None:
            raise DataNotFoundError(
                "the folder data set needs --data DIR holding DIR/train/<class>/ and DIR/test/<class>/"
            )
        p = Path(root)
        # With train/ and test/ splits, train/ defines the classes, so a class missing from
        # test/ does not shift the labels of the others.
        classes = _folder_classes(p / "train") if (p / "train").is_dir() and (p / split).is_dir() else None
        data = load_image_folder(p / split if (p / split).is_dir() else p, image_size=image_size, classes=classes)
    else:
        raise ValueError(f"unknown data set {name!r}; choose {', '.join(DATASETS)}")
    return data.subset(limit)


__all__ = [
    "AUGMENTATIONS", "BatchStream", "DATASETS", "DataNotFoundError", "ImageSet", "augment", "data_root",
    "download_cifar", "load_cifar_batches", "load_dataset", "load_image_folder", "load_npz", "pad_crop_flip",
]  # fmt: skip
