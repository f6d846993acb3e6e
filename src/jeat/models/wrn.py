"""Wide Residual Networks (Zagoruyko & Komodakis, 2016), pre-activation blocks.

``WRN-d-k``: depth d = 6n + 4, widths (16, 16k, 32k, 64k). The JEAT paper uses WRN-28-10
with batch norm and ReLU; JEM's variant drops normalisation and uses LeakyReLU(0.2),
because batch norm makes SGLD samples depend on the batch.
"""

from __future__ import annotations

from torch import Tensor, nn


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(32, channels // 4) or 1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose batch, group or none")


def _act(leak: float) -> nn.Module:
    return nn.LeakyReLU(leak) if leak > 0 else nn.ReLU()


class WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, leak: float, dropout: float):
        super().__init__()
        self.bn1, self.act1 = _norm(norm, c_in), _act(leak)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=norm == "none")
        self.bn2, self.act2 = _norm(norm, c_out), _act(leak)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=norm == "none")
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=norm == "none") if stride != 1 or c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.drop(self.act2(self.bn2(out))))
        return out + skip


class WideResNet(nn.Module):
    def __init__(
        self,
        depth: int = 28,
        widen: int = 10,
        num_classes: int = 10,
        in_channels: int = 3,
        norm: str = "batch",
        leak: float = 0.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=norm == "none")]
        c_in = widths[0]
        for group, stride in zip(widths[1:], (1, 2, 2), strict=True):
            for i in range(n):
                layers.append(WideBlock(c_in, group, stride if i == 0 else 1, norm, leak, dropout))
                c_in = group
        layers += [_norm(norm, c_in), _act(leak), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))
