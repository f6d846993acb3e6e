"""ResNet-18s for CIFAR. Pre-activation ResNet-18 (He et al. 2016, "Identity mappings"): 3x3 stem,
four stages of two blocks (64, 128, 256, 512 channels; stride 2 from the second stage), BN and
ReLU before each conv, a 1x1 projection on the pre-activated input where the shape changes,
final BN-ReLU, global average pool, linear (WEAT's paper names it). :class:`ResNet18`, the standard
post-activation one, is what WEAT's code trains by default (``paper-weat``).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class PreActBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.act = nn.ReLU(inplace=True)  # every input is a BN output, which no backward reads
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(self.act(self.bn2(self.conv1(out))))
        return out + skip


class PreActResNet18(nn.Module):
    # on a CPU the 8x8 and 4x4 stages run faster in NCHW (models/layout.py)
    cpu_nchw_stages = ("features.5", "features.6", "features.7", "features.8")

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)]
        c_in = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [PreActBlock(c_in, c_out, stride), PreActBlock(c_out, c_out, 1)]
            c_in = c_out
        layers += [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


class BasicBlock(nn.Module):
    """Post-activation block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), the shortcut a
    1x1 conv + BN where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU(inplace=True)  # on a BN output or the block's fresh sum
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """The standard (post-activation) CIFAR ResNet-18: 3x3 stem conv-BN-ReLU, four stages of two
    :class:`BasicBlock` (64-512 channels), global average pool, linear. WEAT's reference trains
    this one by default (``--architecture Resnet18``). Parameter names follow the common CIFAR
    ResNet layout (``conv1, bn1, layer1..4, linear``), so such a state dict loads under ``backbone.``."""

    cpu_nchw_stages = ("layer3", "layer4")  # on a CPU the 8x8 and 4x4 stages run faster in NCHW (models/layout.py)

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act = nn.ReLU(inplace=True)
        c_in, stages = 64, []
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)))
            c_in = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        # The reference's F.avg_pool2d over the whole map: the mean AdaptiveAvgPool2d(1) computes, summed in
        # the reference's order (the two differ by a float32 ulp in the default layout, not in channels_last).
        return self.linear(F.avg_pool2d(out, out.shape[-2:]).flatten(1))
