"""``preact-resnet18``: pre-activation ResNet-18 (He et al. 2016), the paper's CIFAR-10 model.

Parameter names follow the PreActResNet18 that the sparse-PGD authors train and publish
(``conv1``, ``layerK.B.{bn1,conv1,bn2,conv2,shortcut.0}``, ``bn``, ``linear``; convolutions without
bias), so their state dicts import unchanged. ``activation`` is ``relu`` or ``softplus`` (their
released checkpoints use softplus with beta 1); ``width`` multiplies every layer's channels
(``width=0.125`` gives a tiny model for tests); any number of input channels and classes.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .common import Normalize, activation


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, act: str = "relu"):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.act = activation(act)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x):
        out = self.act(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(self.act(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, mean=None, std=None,
                 activation: str = "relu", width: float = 1.0, image_size: int | None = None):
        super().__init__()
        self.normalize = Normalize(mean, std, in_channels)
        widths = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        in_planes = widths[0]
        for i, (planes, stride) in enumerate(zip(widths, (1, 2, 2, 2)), start=1):
            blocks = [PreActBlock(in_planes, planes, stride, activation), PreActBlock(planes, planes, 1, activation)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            in_planes = planes
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = self.conv1(self.normalize(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)
