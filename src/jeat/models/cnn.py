"""A small VGG-style CNN for CPU experiments (about 0.3M-1.2M parameters)."""

from __future__ import annotations

from torch import Tensor, nn


class SmallCNN(nn.Module):
    """Three conv stages (2 convs each, BN, ReLU/LeakyReLU, max-pool), global pool, linear."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, width: int = 32, norm: str = "batch", leak: float = 0.0
    ):
        super().__init__()

        def stage(c_in: int, c_out: int) -> list[nn.Module]:
            out: list[nn.Module] = []
            for c in (c_in, c_out):
                out += [nn.Conv2d(c, c_out, 3, padding=1, bias=norm != "batch")]
                if norm == "batch":
                    out.append(nn.BatchNorm2d(c_out))
                out.append(nn.LeakyReLU(leak) if leak > 0 else nn.ReLU())
            return out

        w = width
        self.features = nn.Sequential(
            *stage(in_channels, w), nn.MaxPool2d(2),
            *stage(w, 2 * w), nn.MaxPool2d(2),
            *stage(2 * w, 4 * w), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))
