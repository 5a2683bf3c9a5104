"""Small CNNs for 28x28 grey-scale inputs (Fashion-MNIST, MNIST): the CPU-sized student, teacher and surrogate.

The student and the teacher downsample with stride-2 4x4 convolutions rather than stride-1 convolutions and
pooling: on a CPU the input gradient of a full-resolution convolution with few channels dominates the cost of every
attack step, and the robust accuracy on Fashion-MNIST depends more on the width of the dense layers than on
full-resolution features. No model here is an ``nn.Sequential`` at the top level: ART's TRADES and FBF trainers
read ``model_outputs[0]``, which for a Sequential is the first layer's output (ART returns every layer's output for
an ``nn.Sequential``). The transfer surrogate (``cnn-pool``) is built the other way on purpose, with 3x3 stride-1
convolutions and max-pooling, so that the attacks crafted on it come from an architecture unlike the student's and
the teacher's.
"""

from __future__ import annotations

import torch
from torch import nn

from art_rslad.models.registry import register_model


def _downsample(in_channels: int, out_channels: int, batch_norm: bool) -> list[nn.Module]:
    """A 4x4 stride-2 convolution (halves height and width), optionally BatchNorm, then ReLU."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=not batch_norm)
    return [conv, *([nn.BatchNorm2d(out_channels)] if batch_norm else []), nn.ReLU(inplace=True)]


class StridedCNN(nn.Module):
    """Two stride-2 convolutions (``width`` and ``2 * width`` channels) and a dense head.

    :param nb_classes: Number of output logits.
    :param in_channels: Channels of the input images.
    :param width: Channels of the first convolution.
    :param hidden: Units of the hidden dense layer; 0 for a linear head on the features.
    :param batch_norm: BatchNorm after each convolution.
    :param image_size: Height (= width) of the square input images; must be divisible by 4.
    """

    def __init__(self, nb_classes: int = 10, in_channels: int = 1, width: int = 16, hidden: int = 0,
                 batch_norm: bool = True, image_size: int = 28) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"`image_size` must be divisible by 4, got {image_size}.")
        if width < 1 or hidden < 0:
            raise ValueError(f"`width` must be >= 1 and `hidden` >= 0, got {width} and {hidden}.")
        self.features = nn.Sequential(*_downsample(in_channels, width, batch_norm),
                                      *_downsample(width, 2 * width, batch_norm))
        nb_features = 2 * width * (image_size // 4) ** 2
        head: list[nn.Module] = [nn.Linear(nb_features, hidden), nn.ReLU(inplace=True)] if hidden else []
        self.classifier = nn.Sequential(*head, nn.Linear(hidden or nb_features, nb_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_model("cnn-small", "Small CNN for 28x28 inputs (CPU student, BatchNorm), width configurable", (1, 28, 28))
def cnn_small(nb_classes: int = 10, in_channels: int = 1, width: int = 16, image_size: int = 28) -> StridedCNN:
    """The CPU-sized student for Fashion-MNIST and MNIST: 16/32 channels with BatchNorm, a linear head (24k
    parameters)."""
    return StridedCNN(nb_classes, in_channels, width, hidden=0, batch_norm=True, image_size=image_size)


@register_model("cnn-large", "Wider CNN for 28x28 inputs with a dense layer (CPU teacher)", (1, 28, 28))
def cnn_large(nb_classes: int = 10, in_channels: int = 1, width: int = 24, hidden: int = 128,
              image_size: int = 28) -> StridedCNN:
    """The CPU-sized teacher for Fashion-MNIST and MNIST (the shipped zoo teacher): 24/48 channels, no BatchNorm,
    a 128-unit dense layer (321k parameters)."""
    return StridedCNN(nb_classes, in_channels, width, hidden=hidden, batch_norm=False, image_size=image_size)


class PooledCNN(nn.Module):
    """Two 3x3 convolutions (``width`` and ``2 * width`` channels), each followed by ReLU and 2x2 max-pooling, and a
    dense head with one hidden layer.

    :param nb_classes: Number of output logits.
    :param in_channels: Channels of the input images.
    :param width: Channels of the first convolution.
    :param hidden: Units of the hidden dense layer.
    :param image_size: Height (= width) of the square input images; must be divisible by 4.
    """

    def __init__(self, nb_classes: int = 10, in_channels: int = 1, width: int = 16, hidden: int = 64,
                 image_size: int = 28) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"`image_size` must be divisible by 4, got {image_size}.")
        if width < 1 or hidden < 1:
            raise ValueError(f"`width` and `hidden` must be >= 1, got {width} and {hidden}.")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Linear(2 * width * (image_size // 4) ** 2, hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, nb_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_model("cnn-pool", "CNN for 28x28 inputs with 3x3 convolutions and max-pooling (transfer surrogate)",
                (1, 28, 28))
def cnn_pool(nb_classes: int = 10, in_channels: int = 1, width: int = 16, hidden: int = 64,
             image_size: int = 28) -> PooledCNN:
    """The CPU-sized transfer surrogate for Fashion-MNIST and MNIST (the shipped zoo surrogate): 16/32 channels at
    full and half resolution, max-pooling, a 64-unit dense layer, no BatchNorm (106k parameters)."""
    return PooledCNN(nb_classes, in_channels, width, hidden=hidden, image_size=image_size)
