"""Wide Residual Networks (Zagoruyko & Komodakis, 2016), pre-activation blocks.

``WRN-d-k``: depth d = 6n + 4, widths (16, 16k, 32k, 64k). Two block layouts:

- ``preact`` (:class:`WideBlock`, the standard robust-training WRN): the projection shortcut
  takes the pre-activated input, the stride sits on the first conv, convs without bias under BN.
- ``jem`` (:class:`JEMBlock`, JEM's and JEM++'s ``wide_basic``): the shortcut takes the raw
  block input, the stride sits on the second conv, every conv has a bias. Parameter names follow
  JEM's (``bn1, conv1, bn2, conv2, shortcut.0``); :func:`from_jem_state_dict` maps a JEM / JEM++
  checkpoint's keys onto this model.

JEM uses the ``jem`` layout without normalisation and with LeakyReLU(0.2) (batch norm makes SGLD
samples depend on the batch); JEM++ uses it with batch norm and LeakyReLU(0.2). The JEAT paper
does not say which WRN-28-10 it trains (docs/TRAINING.md).
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


def _act(leak: float, inplace: bool = False) -> nn.Module:
    # In place only where the input is a fresh tensor that no backward needs (a norm's or a conv's
    # output): it saves an allocation and a memory pass per activation, and the backward reads the
    # result's sign instead of the input's (slope > 0), so gradients are unchanged.
    return nn.LeakyReLU(leak, inplace) if leak > 0 else nn.ReLU(inplace)


class WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, leak: float, dropout: float):
        super().__init__()
        # act1 in place only behind a norm: without one its input is the block input x, which the
        # identity shortcut still reads.
        self.bn1, self.act1 = _norm(norm, c_in), _act(leak, inplace=norm != "none")
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=norm == "none")
        self.bn2, self.act2 = _norm(norm, c_out), _act(leak, inplace=True)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=norm == "none")
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=norm == "none") if stride != 1 or c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.drop(self.act2(self.bn2(out))))
        return out + skip


class JEMBlock(nn.Module):
    """JEM's ``wide_basic``: out = conv2(act(bn2(conv1(act(bn1(x)))))) + shortcut(x)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, leak: float, dropout: float):
        super().__init__()
        # The first act in place only behind a norm: without one its input is the block input x,
        # which the shortcut reads. The second acts on a fresh conv / norm output.
        self.act, self.act2 = _act(leak, inplace=norm != "none"), _act(leak, inplace=True)
        self.bn1 = _norm(norm, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=True)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bn2 = _norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride, 1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        out = self.drop(self.conv1(self.act(self.bn1(x))))
        out = self.conv2(self.act2(self.bn2(out)))
        return out + self.shortcut(x)


BLOCKS = {"preact": WideBlock, "jem": JEMBlock}


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
        block: str = "preact",
    ):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        if block not in BLOCKS:
            raise ValueError(f"unknown WRN block {block!r}; choose {', '.join(BLOCKS)}")
        self.depth = depth
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        bias = norm == "none" or block == "jem"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=bias)]
        c_in = widths[0]
        for group, stride in zip(widths[1:], (1, 2, 2), strict=True):
            for i in range(n):
                layers.append(BLOCKS[block](c_in, group, stride if i == 0 else 1, norm, leak, dropout))
                c_in = group
        # The last act's input is a norm's output or the last block's sum: fresh either way.
        layers += [_norm(norm, c_in), _act(leak, inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def from_jem_state_dict(state: dict[str, Tensor], depth: int = 28, prefix: str = "backbone.") -> dict[str, Tensor]:
    """Keys of JEM's / JEM++'s ``F`` model (``f.conv1``, ``f.layerG.I.*``, ``f.bn1``,
    ``class_output``) renamed to a ``jem`` WideResNet inside a :class:`Classifier`. JEM's unused
    heads (``energy_output``, ``f.linear``) are dropped. Raises ``KeyError`` naming a key it
    cannot place."""
    n = (depth - 4) // 6
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        k = key[len("module.") :] if key.startswith("module.") else key
        # JEM's unused heads; JEM++'s YOPO model registers conv1 again as layer_one and its stages
        # again in other_layers, so its state dict holds those tensors twice under alias names.
        if k.startswith(("energy_output.", "f.linear.", "f.layer_one.", "f.other_layers.")):
            continue
        parts = k.split(".")
        if k.startswith("class_output."):
            new = "fc." + ".".join(parts[1:])
        elif parts[:2] == ["f", "conv1"]:
            new = "features.0." + ".".join(parts[2:])
        elif parts[0] == "f" and parts[1].startswith("layer") and parts[1][5:].isdigit():
            index = 1 + (int(parts[1][5:]) - 1) * n + int(parts[2])
            new = f"features.{index}." + ".".join(parts[3:])
        elif parts[:2] == ["f", "bn1"]:
            new = f"features.{1 + 3 * n}." + ".".join(parts[2:])
        else:
            raise KeyError(f"JEM checkpoint key {key!r} has no place in a WRN-{depth} (jem block)")
        out[prefix + new] = value
    return out
