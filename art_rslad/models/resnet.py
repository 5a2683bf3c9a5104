"""CIFAR ResNet-18 and MobileNetV2, the students of the RSLAD paper, and ResNet-50, its transfer surrogate.

All follow the CIFAR variants of the official RSLAD code (3x3 stem with stride 1, no max-pooling, global average
pooling) and keep their state-dict key names, so third-party CIFAR checkpoints in that layout load directly (e.g.
the ResNet-18 that ``pyautoattack`` ships, or the weights of RobustBench's ``Engstrom2019Robustness`` ResNet-50:
``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``linear``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from art_rslad.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual shortcut (1x1 convolution when the shape changes)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduction, 3x3 convolution, 1x1 expansion to ``4 * planes`` channels, with a residual shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, self.expansion * planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.expansion * planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: stages of 64, 128, 256, 512 ``block`` s (times the block's expansion), average pool, linear.

    :param num_blocks: Blocks per stage; ``(2, 2, 2, 2)`` of :class:`BasicBlock` is ResNet-18, ``(3, 4, 6, 3)``
        of :class:`Bottleneck` ResNet-50.
    :param nb_classes: Number of output logits.
    :param in_channels: Channels of the input images.
    :param block: :class:`BasicBlock` or :class:`Bottleneck`.
    """

    def __init__(self, num_blocks: tuple[int, ...], nb_classes: int = 10, in_channels: int = 3,
                 block: type[BasicBlock | Bottleneck] = BasicBlock) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages = []
        in_planes = 64
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), num_blocks, strict=True)):
            strides = [1 if index == 0 else 2] + [1] * (count - 1)
            blocks = []
            for stride in strides:
                blocks.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512 * block.expansion, nb_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@register_model("resnet18", "CIFAR ResNet-18 (RSLAD student)", (3, 32, 32))
def resnet18(nb_classes: int = 10, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-18 (11.2M parameters for 10 classes)."""
    return ResNet((2, 2, 2, 2), nb_classes=nb_classes, in_channels=in_channels)


@register_model("resnet50", "CIFAR ResNet-50 (the paper's robust transfer surrogate)", (3, 32, 32))
def resnet50(nb_classes: int = 10, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-50, Bottleneck blocks (3, 4, 6, 3) (23.5M parameters for 10 classes), the architecture of
    RobustBench's ``Engstrom2019Robustness``."""
    return ResNet((3, 4, 6, 3), nb_classes=nb_classes, in_channels=in_channels, block=Bottleneck)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion, 3x3 depthwise, 1x1 linear projection, residual when stride is 1."""

    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        planes = expansion * in_planes
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride == 1 and in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False), nn.BatchNorm2d(out_planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


# (expansion, out_planes, num_blocks, stride) per stage; the first strides are 1 for 32x32 inputs.
_MOBILENET_CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                  (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    """MobileNetV2 for 32x32 inputs (stride-1 stem), as in the RSLAD code.

    :param nb_classes: Number of output logits.
    :param in_channels: Channels of the input images.
    """

    def __init__(self, nb_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks = []
        in_planes = 32
        for expansion, out_planes, count, stride in _MOBILENET_CFG:
            for block_stride in [stride] + [1] * (count - 1):
                blocks.append(InvertedResidual(in_planes, out_planes, expansion, block_stride))
                in_planes = out_planes
        self.layers = nn.Sequential(*blocks)
        self.conv2 = nn.Conv2d(320, 1280, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.linear = nn.Linear(1280, nb_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(self.layers(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@register_model("mobilenetv2", "CIFAR MobileNetV2 (RSLAD student)", (3, 32, 32))
def mobilenetv2(nb_classes: int = 10, in_channels: int = 3) -> MobileNetV2:
    """CIFAR MobileNetV2 (2.3M parameters for 10 classes)."""
    return MobileNetV2(nb_classes=nb_classes, in_channels=in_channels)
