"""Model registry. Every model takes images in [0, 1] and returns logits.

>>> model = build_model("wrn-28-10", num_classes=10)
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

from .cnn import SmallCNN
from .normalize import Classifier, Normalize, normalization_stats
from .resnet import PreActResNet18, ResNet18
from .wrn import WideResNet

# name -> (factory(num_classes, in_channels) -> backbone, default input normalisation)
_REGISTRY: dict[str, tuple[Callable[[int, int], nn.Module], str]] = {
    "wrn-28-10": (lambda k, c: WideResNet(28, 10, k, c), "cifar"),
    "wrn-34-10": (lambda k, c: WideResNet(34, 10, k, c), "cifar"),  # TRADES
    "wrn-28-2": (lambda k, c: WideResNet(28, 2, k, c), "cifar"),
    "wrn-16-4": (lambda k, c: WideResNet(16, 4, k, c), "cifar"),
    "wrn-16-2": (lambda k, c: WideResNet(16, 2, k, c), "cifar"),
    # JEM's variant: JEM's block, no normalisation layers, LeakyReLU(0.2), inputs scaled to [-1, 1].
    "jem-wrn-28-10": (lambda k, c: WideResNet(28, 10, k, c, norm="none", leak=0.2, block="jem"), "half"),
    "jem-wrn-28-2": (lambda k, c: WideResNet(28, 2, k, c, norm="none", leak=0.2, block="jem"), "half"),
    "jem-wrn-16-4": (lambda k, c: WideResNet(16, 4, k, c, norm="none", leak=0.2, block="jem"), "half"),
    # JEM++'s (and Robust JEM's): JEM's block with batch norm, LeakyReLU(0.2), [-1, 1] inputs.
    "jempp-wrn-28-10": (lambda k, c: WideResNet(28, 10, k, c, norm="batch", leak=0.2, block="jem"), "half"),
    "jempp-wrn-16-4": (lambda k, c: WideResNet(16, 4, k, c, norm="batch", leak=0.2, block="jem"), "half"),
    "preact-resnet18": (lambda k, c: PreActResNet18(k, c), "none"),  # [0, 1] inputs, no normalisation
    "resnet18": (lambda k, c: ResNet18(k, c), "none"),  # WEAT's default architecture, [0, 1] inputs
    "cnn-small": (lambda k, c: SmallCNN(k, c, width=32), "cifar"),
    "cnn-medium": (lambda k, c: SmallCNN(k, c, width=64), "cifar"),
    "jem-cnn-small": (lambda k, c: SmallCNN(k, c, width=32, norm="none", leak=0.2), "half"),
}


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def register_model(name: str, factory: Callable[[int, int], nn.Module], normalization: str = "cifar") -> None:
    """Add an architecture: ``factory(num_classes, in_channels)`` returns a logits backbone."""
    _REGISTRY[name] = (factory, normalization)


# Any depth/width of the three WRN families by name, e.g. "wrn-34-10", "jem-wrn-16-8" (imports).
_WRN_NAME = re.compile(r"^(jem-|jempp-)?wrn-(\d+)-(\d+)$")
_WRN_FAMILY = {"": ({}, "cifar"), "jem-": ({"norm": "none", "leak": 0.2, "block": "jem"}, "half"),
               "jempp-": ({"norm": "batch", "leak": 0.2, "block": "jem"}, "half")}  # fmt: skip


def _lookup(name: str) -> tuple[Callable[[int, int], nn.Module], str] | None:
    if name in _REGISTRY:
        return _REGISTRY[name]
    m = _WRN_NAME.match(name)
    if m is None:
        return None
    kw, norm = _WRN_FAMILY[m.group(1) or ""]
    depth, widen = int(m.group(2)), int(m.group(3))
    return (lambda k, c: WideResNet(depth, widen, k, c, **kw)), norm


def build_model(name: str, num_classes: int = 10, in_channels: int = 3, normalization: str | None = None) -> Classifier:
    entry = _lookup(name)
    if entry is None:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(available_models())} (and any [jem-|jempp-]wrn-DEPTH-WIDTH)"
        )
    factory, default_norm = entry
    mean, std = normalization_stats(normalization or default_norm, in_channels)
    return Classifier(factory(num_classes, in_channels), Normalize(mean, std), in_channels, num_classes)


__all__ = ["Classifier", "Normalize", "WideResNet", "SmallCNN", "available_models", "build_model", "register_model"]

from .utils import frozen_bn_stats, unwrap  # noqa: E402

__all__ += ["frozen_bn_stats", "unwrap"]
