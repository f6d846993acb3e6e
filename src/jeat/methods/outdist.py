"""Where DAT's out-of-distribution images come from (``data.outdist``).

``gaussian`` (default, offline): the training set's class-conditional Gaussians, the seeds jeat
already generates from, so the images DAT learns to reject are the ones its sampler starts from;
``uniform``: U[0, 1] pixels; ``cifar10`` / ``cifar100`` / ``svhn``: their training split from the
data root; ``npz:PATH`` / ``folder:PATH``: any image set of the training images' shape. Data-set
images are flipped and cropped as the reference augments its Tiny Images ("original"). Every draw
uses the global RNG, which checkpoints carry, so a resumed run draws the same images.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import ImageSet, load_dataset
from ..data.augment import random_batch
from .negatives import class_gaussian

BUILT_IN = {
    "gaussian": "class-conditional Gaussians of the training set (built in, offline)",
    "uniform": "uniform noise U[0, 1] (built in, offline)",
}
NAMED = ("cifar10", "cifar100", "svhn")


class OutDist:
    def __init__(self, spec: str, train_set: ImageSet, root: str | None, device, download: bool = False,
                 augmentation: str = "flip-crop"):  # fmt: skip
        self.spec, self.device, self.shape = spec, torch.device(device), train_set.shape
        self.augmentation = augmentation  # of image sets (the run's data.augment)
        self.images: Tensor | None = None
        if spec == "gaussian":
            self.gaussian = class_gaussian(train_set, device)
            self.num_classes = train_set.num_classes
        elif spec == "uniform":
            pass
        elif spec in NAMED or spec.startswith(("npz:", "folder:")):
            if spec in NAMED:
                data = load_dataset(spec, "train", root, download)
            else:
                kind, path = spec.split(":", 1)
                data = load_dataset(kind, "train", path, image_size=self.shape[-1])
            if tuple(data.images.shape[1:]) != tuple(self.shape):
                raise ValueError(f"data.outdist={spec}: images of shape {tuple(data.images.shape[1:])}, the training "
                                 f"images' {tuple(self.shape)}")  # fmt: skip
            self.images = data.images
        else:
            raise ValueError(f"unknown data.outdist {spec!r}; choose {', '.join(BUILT_IN)}, {', '.join(NAMED)}, "
                             "npz:PATH or folder:PATH")  # fmt: skip

    def describe(self) -> str:
        if self.spec in BUILT_IN:
            return f"{self.spec}: {BUILT_IN[self.spec]}"
        return f"{self.spec}: {len(self.images)} images, {self.augmentation} augmented"

    def sample(self, n: int) -> Tensor:
        """n images in [0, 1] on the device."""
        if self.spec == "gaussian":
            y = torch.randint(self.num_classes, (n,))
            return self.gaussian.sample(y.to(self.device), clamp=True)
        if self.spec == "uniform":
            return torch.rand(n, *self.shape).to(self.device)
        return random_batch(self.images, n, self.augmentation)[0].to(self.device)
