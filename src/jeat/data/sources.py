"""Where images come from: CIFAR python batches, `.npz` files, image folders.

Every source returns an :class:`ImageSet`: uint8 images (N, C, H, W) and int64 labels, kept
in memory (CIFAR-10 is 150 MB). Paths come from arguments or the ``JEAT_DATA`` environment
variable; missing data raises :class:`DataNotFoundError` naming every place looked at.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


class DataNotFoundError(FileNotFoundError):
    """Raised when a data set cannot be found; the message says where we looked and what to do."""


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.images.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels, got {self.images.shape[1]}")
        if self.images.shape[2] != self.images.shape[3]:
            raise ValueError(f"images must be square, got {tuple(self.images.shape[2:])}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(
                f"labels must lie in [0, {len(self.classes)}), got [{self.labels.min()}, {self.labels.max()}]"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int | None) -> ImageSet:
        """The first ``n`` examples, class-balanced order kept (stratified by a fixed shuffle)."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(0))[:n]
        return ImageSet(self.images[idx], self.labels[idx], self.classes)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """An explicit root, else ``$JEAT_DATA``, else ``~/.cache/jeat/data``."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("JEAT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "jeat" / "data"


# ---------------------------------------------------------------- .npz files
def load_npz(path: str | os.PathLike, classes: list[str] | None = None) -> ImageSet:
    """An ``.npz`` with ``x`` uint8 (N, H, W, C) or (N, H, W) and ``y`` integer labels."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"no .npz file at {path}")
    with np.load(path, allow_pickle=False) as f:
        if "x" not in f or "y" not in f:
            raise ValueError(f"{path}: expected arrays 'x' and 'y', found {sorted(f.files)}")
        x, y = f["x"], f["y"]
    if x.dtype != np.uint8:
        raise ValueError(f"{path}: 'x' must be uint8 images, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{path}: 'x' must be (N, H, W, C), got shape {x.shape}")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(y.astype(np.int64).reshape(-1))
    if classes is None:
        classes = [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
    return ImageSet(images, labels, classes)


# ---------------------------------------------------------------- CIFAR python batches
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of bytes, lists and numpy arrays) and nothing else,
    so a tampered batch file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data batch")


def _read_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()


def load_cifar_batches(directory: Path, name: str, train: bool) -> ImageSet:
    """The standard python-version CIFAR-10/100 batches (as in the official tarballs)."""
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        label_key, meta, names_key = b"labels", "batches.meta", b"label_names"
    else:
        files = ["train"] if train else ["test"]
        label_key, meta, names_key = b"fine_labels", "meta", b"fine_label_names"
    xs, ys = [], []
    for fname in files:
        d = _read_batch(directory / fname)
        xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[label_key], dtype=np.int64))
    classes = [c.decode() for c in _read_batch(directory / meta)[names_key]]
    return ImageSet(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)), classes)


# ---------------------------------------------------------------- image folders
def _folder_classes(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir())


def load_image_folder(
    directory: str | os.PathLike,
    image_size: int | None = None,
    channels: int | None = None,
    classes: list[str] | None = None,
) -> ImageSet:
    """``directory/<class>/<image>``; classes sorted by name (or as given: a test split takes the
    training split's list). Images must share one square size unless ``image_size`` is given
    (then they are resized)."""
    from PIL import Image

    directory = Path(directory)
    if not directory.is_dir():
        raise DataNotFoundError(f"no image folder at {directory}")
    present = _folder_classes(directory)
    if not present:
        raise DataNotFoundError(f"{directory} has no class sub-folders (expected {directory}/<class>/<image>.png)")
    if classes is None:
        classes = present
    elif unknown := sorted(set(present) - set(classes)):
        raise ValueError(f"{directory}: class folders {unknown} are not among the training classes {classes}")
    arrays, labels = [], []
    for k, cls in enumerate(classes):
        if cls not in present:
            continue
        for f in sorted((directory / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(f) as im:
                mode = {1: "L", 3: "RGB"}.get(channels or (1 if im.mode in ("L", "1", "I;16") else 3))
                im = im.convert(mode)
                if image_size:
                    im = im.resize((image_size, image_size), Image.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
            arrays.append(a[..., None] if a.ndim == 2 else a)
            labels.append(k)
    if not arrays:
        raise DataNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {directory}")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{directory}: images differ in size {sorted(shapes)[:4]}; pass image_size to resize")
    x = np.stack(arrays).transpose(0, 3, 1, 2)
    return ImageSet(torch.from_numpy(np.ascontiguousarray(x)), torch.tensor(labels, dtype=torch.int64), classes)
