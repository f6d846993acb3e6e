"""Input normalisation inside the model, so every model takes images in [0, 1].

Attacks, samplers and third-party attack libraries then work in pixel space with
ε-balls in [0, 1] units, and never need to know a model's preprocessing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# Per-channel statistics of the CIFAR-10 training set (shared/data/README.md), rounded: jeat's `cifar`.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# The references' own constants, for the paper-* presets that reproduce them (issue 35):
REFERENCE_STATS = {
    # xuwangyin/DAT fb2ffc7, rebm/models/wide_resnet_innoutrobustness.py (normalize_input=True)
    "cifar-dat": ((0.4913997551666284, 0.48215855929893703, 0.4465309133731618),
                  (0.24703225141799082, 0.24348516474564, 0.26158783926049628)),
    # locuslab/fast_adversarial 54f7287, CIFAR10/utils.py (Fast and Free AT)
    "cifar-locuslab": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
}  # fmt: skip


def custom_normalization(mean, std) -> str:
    """The config string of explicit statistics (imported models): ``mean=a,b,c;std=d,e,f``."""
    return "mean=" + ",".join(f"{float(m):.6g}" for m in mean) + ";std=" + ",".join(f"{float(s):.6g}" for s in std)


def normalization_stats(kind: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``cifar``: dataset mean/std (rounded); ``cifar-dat`` / ``cifar-locuslab``: a reference's constants;
    ``half``: (x-0.5)/0.5 -> [-1, 1] as JEM uses; ``none``; or
    explicit ``mean=a,b,c;std=d,e,f`` (one value per channel)."""
    if kind.startswith("mean="):
        try:
            parts = dict(p.split("=", 1) for p in kind.split(";"))
            mean = tuple(float(v) for v in parts["mean"].split(","))
            std = tuple(float(v) for v in parts["std"].split(","))
        except (KeyError, ValueError):
            raise ValueError(f"bad normalisation {kind!r}; expected mean=a,b,c;std=d,e,f") from None
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise ValueError(f"normalisation {kind!r} needs {channels} means and {channels} positive stds")
        return mean, std
    if kind == "cifar":
        if channels == 3:
            return CIFAR10_MEAN, CIFAR10_STD
        return (0.5,) * channels, (0.25,) * channels
    if kind in REFERENCE_STATS:
        if channels != 3:
            raise ValueError(f"normalisation {kind!r} holds CIFAR-10's 3 channels, the data has {channels}")
        return REFERENCE_STATS[kind]
    if kind == "half":
        return (0.5,) * channels, (0.5,) * channels
    if kind == "none":
        return (0.0,) * channels, (1.0,) * channels
    raise ValueError(f"unknown normalisation {kind!r}; choose cifar, {', '.join(REFERENCE_STATS)}, half, none "
                     "or mean=...;std=...")  # fmt: skip


class Normalize(nn.Module):
    """(x - mean) / std with fixed buffers; no parameters."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """A backbone producing logits, preceded by normalisation. Input: images in [0, 1]."""

    def __init__(self, backbone: nn.Module, normalize: Normalize, in_channels: int, num_classes: int):
        super().__init__()
        self.normalize = normalize
        self.backbone = backbone
        self.in_channels = in_channels
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (N, {self.in_channels}, H, W) in [0, 1], got {tuple(x.shape)}")
        return self.backbone(self.normalize(x))
