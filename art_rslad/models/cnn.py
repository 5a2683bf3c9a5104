"""Small CNNs for 28x28 grey-scale inputs (Fashion-MNIST, MNIST), the CPU-sized student and teacher.

Neither is an ``nn.Sequential`` at the top level: ART's TRADES and FBF trainers read ``model_outputs[0]``, which for
a Sequential is the first layer's output (art-notes.md).
"""

from __future__ import annotations

import torch
from torch import nn

from art_rslad.models.registry import register_model


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Three 3x3 conv-BN-ReLU layers (``width``, ``2 width``, ``2 width`` channels), two 2x2 max-pools, a linear head.

    About 30k parameters at ``width=16``: small enough that adversarial training alone leaves it well below a
    robust teacher, which is the setting the RSLAD paper is about.

    :param nb_classes: Number of output logits.
    :param in_channels: Channels of the input images.
    :param width: Channels of the first convolution.
    :param image_size: Height (= width) of the input images; must be divisible by 4.
    """

    def __init__(self, nb_classes: int = 10, in_channels: int = 1, width: int = 16, image_size: int = 28) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"`image_size` must be divisible by 4, got {image_size}.")
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, width), *_conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),
            *_conv_bn_relu(2 * width, 2 * width), nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(2 * width * (image_size // 4) ** 2, nb_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class TradesCNN(nn.Module):
    """The ``SmallCNN`` of the TRADES code for MNIST (312k parameters): four 3x3 convolutions, three dense layers.

    :param nb_classes: Number of output logits.
    :param in_channels: Channels of the input images.
    :param drop_rate: Dropout after the first dense layer.
    """

    def __init__(self, nb_classes: int = 10, in_channels: int = 1, drop_rate: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(64 * 4 * 4, 200), nn.ReLU(), nn.Dropout(drop_rate), nn.Linear(200, 200), nn.ReLU(),
            nn.Linear(200, nb_classes),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.classifier[-1].weight)
        nn.init.zeros_(self.classifier[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_model("cnn-small", "Small CNN for 28x28 inputs (CPU student), width configurable", (1, 28, 28))
def cnn_small(nb_classes: int = 10, in_channels: int = 1, width: int = 16, image_size: int = 28) -> SmallCNN:
    """The CPU-sized student for Fashion-MNIST and MNIST."""
    return SmallCNN(nb_classes, in_channels, width, image_size)


@register_model("cnn-large", "TRADES' SmallCNN for 28x28 inputs (CPU teacher)", (1, 28, 28))
def cnn_large(nb_classes: int = 10, in_channels: int = 1, drop_rate: float = 0.5) -> TradesCNN:
    """The CPU-sized teacher for Fashion-MNIST and MNIST (the shipped zoo teacher)."""
    return TradesCNN(nb_classes, in_channels, drop_rate)
