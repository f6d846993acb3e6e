"""Downloading CIFAR for users with internet (never needed by tests or CI)."""

from __future__ import annotations

import hashlib
import tarfile
import urllib.request
from pathlib import Path

# Official archives and their published MD5 sums.
ARCHIVES = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
}


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB chunks (downloads are checked against published sums)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_cifar(name: str, root: Path) -> Path:
    """Fetch and unpack CIFAR-10/100 into ``root``; torchvision is used when importable."""
    root.mkdir(parents=True, exist_ok=True)
    try:  # torchvision's downloader handles mirrors and retries; optional.
        import torchvision.datasets as tvd

        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
        return root
    except Exception:  # not importable here (CUDA wheel beside CPU torch) or offline: plain download
        pass
    url, md5 = ARCHIVES[name]
    archive = root / url.rsplit("/", 1)[1]
    if not archive.exists() or file_digest(archive) != md5:
        tmp = archive.with_suffix(".part")
        urllib.request.urlretrieve(url, tmp)
        if file_digest(tmp) != md5:
            tmp.unlink()
            raise OSError(f"downloaded {url} but its MD5 does not match {md5}")
        tmp.replace(archive)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root
