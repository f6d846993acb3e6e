"""What every suite shares: the evaluation context, batching of uint8 sets, progress bars.

A suite is a function ``run(ctx) -> dict`` registered in :mod:`jeat.evaluation.suites`. The
returned dict goes to ``metrics.json`` under the suite's name and must carry every number with
its settings and the count N it was measured on; plots are written into ``ctx.out_dir`` and
listed under ``"plots"`` so the report can link them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data import ImageSet, load_dataset
from ..data.split import training_part


@dataclass
class EvalContext:
    model: nn.Module
    test: ImageSet  # the images measured (first ``n`` of a fixed shuffle of the test set)
    out_dir: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 200
    seed: int = 0
    progress: bool = True
    data_root: str | None = None
    dataset: str = "cifar10"
    samples: Path | None = None  # .npz of generated images (x uint8 NHWC, y) for fid / memorisation
    options: dict = field(default_factory=dict)  # per-suite settings from the CLI (--set suite.key=value)
    buffer: Tensor | None = None  # replay-buffer states in [0, 1] (NCHW) for fid's buffer FID
    run_dir: Path | None = None  # the evaluated run: its recorded validation split is left out of train_set()
    _train: ImageSet | None = None

    def opt(self, suite: str, key: str, default):
        """A suite setting: ``--set fid.n_ref=5000`` overrides ``default`` (cast to its type)."""
        v = self.options.get(f"{suite}.{key}", default)
        return type(default)(v) if default is not None and not isinstance(v, type(default)) else v

    def train_set(self) -> ImageSet:
        """The images the run trained on, loaded once (FID reference statistics, memorisation search):
        the training set minus the run's validation split (RUN/split.json), when it has one."""
        if self._train is None:
            self._train = training_part(load_dataset(self.dataset, "train", root=self.data_root), self.run_dir)
        return self._train

    def bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, unit="img", disable=not self.progress, leave=False, dynamic_ncols=True)


def to_float(images: Tensor, device: torch.device) -> Tensor:
    """uint8 (N, C, H, W) -> float [0, 1] on the device (the model's input contract)."""
    return images.to(device, non_blocking=True).float().div_(255)


def batches(data: ImageSet, batch_size: int, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    for i in range(0, len(data), batch_size):
        yield to_float(data.images[i : i + batch_size], device), data.labels[i : i + batch_size].to(device)


def pct(correct: Tensor | int, n: int) -> float:
    """Accuracy in percent from a count (one host sync, at the end of a loop)."""
    return 100.0 * float(correct) / max(n, 1)


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
