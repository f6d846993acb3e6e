"""Shared fixtures: tiny synthetic data sets written to tmp_path, the real shared CIFAR-10 (if
present), and a fast config for training tests.

Tests never copy ``../shared/data`` into the repository; they read it in place (``JEAT_DATA`` or
``<repo>/../shared/data``) and skip when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Tests use tiny models and batches: one intra-op thread is as fast, and on 2 shared cores
# (CI, parallel sessions) extra OpenMP threads only spin and contend. Override with JEAT_TEST_THREADS.
torch.set_num_threads(int(os.environ.get("JEAT_TEST_THREADS", "1")))


def write_npz(path: Path, n: int, size: int = 16, channels: int | None = 3, num_classes: int = 4, seed: int = 0):
    """Write ``x`` uint8 (n, size, size, channels) -- or (n, size, size) when channels is None -- and
    ``y`` labels cycling through every class. Returns (x, y) as written."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if channels is None else (n, size, size, channels)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = (np.arange(n) % num_classes).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    return x, y


def make_npz_dir(root: Path, n_train: int = 64, n_test: int = 32, size: int = 16, channels: int | None = 3,
                 num_classes: int = 4) -> Path:  # fmt: skip
    """A data root holding train.npz and test.npz (data.name='npz', data.root=root)."""
    write_npz(root / "train.npz", n_train, size, channels, num_classes, seed=1)
    write_npz(root / "test.npz", n_test, size, channels, num_classes, seed=2)
    return root


@pytest.fixture
def npz_dir(tmp_path: Path) -> Path:
    """A tiny 3-channel 16x16, 4-class npz data set (64 train / 32 test images)."""
    return make_npz_dir(tmp_path / "data")


def tiny_config(data_root: Path, out_dir: Path, **changes):
    """The ``tiny`` preset on a tiny npz data set: fp32, 16-image batches, fast."""
    from jeat import get_preset

    cfg = get_preset("tiny")
    cfg.device = "cpu"
    cfg.out_dir = str(out_dir)
    cfg.data.name = "npz"
    cfg.data.root = str(data_root)
    cfg.data.batch_size = 16
    cfg.data.eval_batch_size = 64
    cfg.data.train_limit = None
    cfg.data.test_limit = None
    cfg.data.valid_size = 0  # the 64-image sets keep every image for training; validation tests set it
    cfg.log_every = 1
    cfg.guard.check_every = 1
    for key, value in changes.items():
        obj = cfg
        *parents, leaf = key.split("__")
        for p in parents:
            obj = getattr(obj, p)
        setattr(obj, leaf, value)
    return cfg


def _has_cifar_npz(root: Path) -> bool:
    return (root / "cifar10" / "train.npz").is_file() or (root / "train.npz").is_file()


def find_shared_data() -> Path | None:
    """The shared data root: ``$JEAT_DATA`` if it holds CIFAR-10 npz files, else ``<repo>/../shared/data``."""
    env = os.environ.get("JEAT_DATA")
    candidates = ([Path(env).expanduser()] if env else []) + [REPO.parent / "shared" / "data"]
    for c in candidates:
        if _has_cifar_npz(c):
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = find_shared_data()
    if root is None:
        pytest.skip("real CIFAR-10 npz files not found (set JEAT_DATA or provide ../shared/data)")
    return root


@pytest.fixture
def no_jeat_data(monkeypatch):
    """Make sure an outer ``JEAT_DATA`` does not leak into a test about defaults or errors."""
    monkeypatch.delenv("JEAT_DATA", raising=False)


def jem_state_keys(depth: int, k: int, norm: bool) -> dict[str, tuple[int, ...]]:
    """The parameter names and shapes of JEM's ``F`` (wideresnet.py + class_output), written out
    from JEM's architecture: conv3x3 stem with bias, ``wide_basic`` blocks, final bn1, heads."""
    n, w = (depth - 4) // 6, [16, 16 * k, 32 * k, 64 * k]
    keys = {"f.conv1.weight": (16, 3, 3, 3), "f.conv1.bias": (16,)}
    c_in = 16
    for g in (1, 2, 3):
        for i in range(n):
            c = w[g]
            pre = f"f.layer{g}.{i}."
            if norm:
                keys |= {pre + "bn1.weight": (c_in,), pre + "bn1.bias": (c_in,), pre + "bn2.weight": (c,),
                         pre + "bn2.bias": (c,)}  # fmt: skip
            keys |= {pre + "conv1.weight": (c, c_in, 3, 3), pre + "conv1.bias": (c,),
                     pre + "conv2.weight": (c, c, 3, 3), pre + "conv2.bias": (c,)}  # fmt: skip
            if c_in != c or (i == 0 and g > 1):
                keys |= {pre + "shortcut.0.weight": (c, c_in, 1, 1), pre + "shortcut.0.bias": (c,)}
            c_in = c
    if norm:
        keys |= {"f.bn1.weight": (c_in,), "f.bn1.bias": (c_in,)}
    keys |= {"f.linear.weight": (10, c_in), "f.linear.bias": (10,), "energy_output.weight": (1, c_in),
             "energy_output.bias": (1,), "class_output.weight": (10, c_in), "class_output.bias": (10,)}  # fmt: skip
    return keys


def counting_method():
    """A Standard method that counts its loss calls and passes (loss, metrics) through
    ``self.corrupt`` (identity here): the fault-injection tests override it."""
    from jeat.methods import Standard

    class Counting(Standard):
        name = "test-counting"

        def __init__(self, *a):
            super().__init__(*a)
            self.calls = 0

        def corrupt(self, loss, metrics):
            return loss, metrics

        def loss(self, model, x, y):
            loss, metrics = super().loss(model, x, y)
            self.calls += 1
            return self.corrupt(loss, metrics)

    return Counting
