"""WideResNet-depth-width (Zagoruyko & Komodakis), in the layout of the TRADES code.

Key names follow TRADES' ``wideresnet.py`` (``conv1``, ``block1.layer.0.bn1``, ..., ``bn1``, ``fc``) so that
TRADES-style checkpoints load. TRADES' WRN-34-10 checkpoint also holds ``sub_block1``, a module its forward never
uses; :func:`art_rslad.models.load_weights` drops those keys (see ``ignored_state_prefixes``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from art_rslad.models.registry import register_model


class WideBasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-BN-ReLU-conv3x3, 1x1 shortcut when the shape changes."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = (  # TRADES' key name
            None if self.equal_in_out
            else nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(activated)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.convShortcut is None else self.convShortcut(activated)
        return shortcut + out


class NetworkBlock(nn.Module):
    """A stage of ``count`` :class:`WideBasicBlock` s; only the first changes stride and width."""

    def __init__(self, count: int, in_planes: int, out_planes: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(in_planes if index == 0 else out_planes, out_planes, stride if index == 0 else 1,
                           drop_rate)
            for index in range(count)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WideResNet-``depth``-``widen_factor`` for 32x32 inputs.

    :param depth: Total depth; ``(depth - 4)`` must be divisible by 6 (e.g. 28, 34, 70).
    :param widen_factor: Width multiplier of the 16/32/64-channel stages (e.g. 10, 16).
    :param nb_classes: Number of output logits.
    :param in_channels: Channels of the input images.
    :param drop_rate: Dropout probability inside each block.
    """

    ignored_state_prefixes: tuple[str, ...] = ("sub_block1.",)

    def __init__(self, depth: int = 34, widen_factor: int = 10, nb_classes: int = 10, in_channels: int = 3,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"`depth` must be 6n + 4 with n >= 1 (e.g. 28, 34, 70), got {depth}.")
        if widen_factor < 1:
            raise ValueError(f"`widen_factor` must be a positive integer, got {widen_factor}.")
        count = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(count, widths[0], widths[1], 1, drop_rate)
        self.block2 = NetworkBlock(count, widths[1], widths[2], 2, drop_rate)
        self.block3 = NetworkBlock(count, widths[2], widths[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], nb_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.adaptive_avg_pool2d(self.relu(self.bn1(out)), 1).flatten(1)
        return self.fc(out)


@register_model("wideresnet", "WideResNet, depth and widen_factor configurable (default 34-10)", (3, 32, 32))
def wideresnet(nb_classes: int = 10, depth: int = 34, widen_factor: int = 10, in_channels: int = 3,
               drop_rate: float = 0.0) -> WideResNet:
    """WideResNet of any valid ``depth`` and ``widen_factor``."""
    return WideResNet(depth, widen_factor, nb_classes, in_channels, drop_rate)


@register_model("wrn-34-10", "WideResNet-34-10 (paper's CIFAR-10 teacher, TRADES)", (3, 32, 32))
def wrn_34_10(nb_classes: int = 10, in_channels: int = 3) -> WideResNet:
    """WideResNet-34-10, the architecture of the paper's CIFAR-10 TRADES teacher."""
    return WideResNet(34, 10, nb_classes, in_channels)


@register_model("wrn-70-16", "WideResNet-70-16 (architecture size of the paper's CIFAR-100 teacher)", (3, 32, 32))
def wrn_70_16(nb_classes: int = 10, in_channels: int = 3) -> WideResNet:
    """WideResNet-70-16 in TRADES' layout (Gowal et al.'s own checkpoint loads through RobustBench instead)."""
    return WideResNet(70, 16, nb_classes, in_channels)
