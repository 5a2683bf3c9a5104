"""Distil with RSLAD from an augmenting torch DataLoader through ART's ``PyTorchDataGenerator`` and ``fit_generator``.

Run::

    python examples/fit_generator_augmented.py --train-size 12000 --epochs 3

The DataLoader below draws a new random crop and flip of every image in every epoch (torchvision transforms on
tensors), as the paper's CIFAR recipe does. ``fit_generator`` takes any ART ``DataGenerator``; with augmentation
the teacher's soft labels are computed per batch, on the augmented images the student sees. The teacher is the
robust Fashion-MNIST CNN shipped with the package.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from art.data_generators import PyTorchDataGenerator
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from art_rslad import AdversarialTrainerRSLAD, evaluate_robustness
from art_rslad.data import load_dataset, train_val_split
from art_rslad.experiments.teachers import load_teacher
from art_rslad.models import create_model, make_classifier

EPS = 0.1  # the usual L-inf budget on Fashion-MNIST


class AugmentedImages(Dataset):
    """Images in [0, 1] (N, C, H, W) with their labels, augmented anew on every access."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.augment = v2.Compose([v2.RandomCrop(x.shape[-1], padding=2), v2.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.augment(self.x[index]), self.y[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=12000, help="training images used (default 12000)")
    parser.add_argument("--test-size", type=int, default=500, help="test images evaluated (default 500)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args()

    x, y = load_dataset("fashion-mnist", "train")
    x_train, y_train, x_val, y_val = train_val_split(x[: args.train_size], y[: args.train_size], seed=0)
    x_test, y_test = load_dataset("fashion-mnist", "test")
    x_test, y_test = x_test[: args.test_size], y_test[: args.test_size]

    loader = DataLoader(AugmentedImages(x_train, y_train), batch_size=args.batch_size, shuffle=True)
    generator = PyTorchDataGenerator(loader, size=len(x_train), batch_size=args.batch_size)

    teacher = load_teacher("zoo:fashion-mnist-cnn-large", "fashion-mnist", device=args.device)
    torch.manual_seed(0)
    student = make_classifier(create_model("cnn-small"), "fashion-mnist", lr=1.0, device=args.device)
    # lr 1.0 with RSLAD's default scale 0.1: the fashion-mnist preset's choice for RSLAD (`art-rslad tune`).
    trainer = AdversarialTrainerRSLAD(student, teacher, eps=EPS, eps_step=EPS / 4, max_iter=10, seed=0)
    trainer.fit_generator(generator, nb_epochs=args.epochs, validation_data=(x_val, y_val), restore_best=True)
    print(f"best epoch {trainer.best_epoch}: validation PGD-10 accuracy {trainer.best_metric:.3f}")

    report = evaluate_robustness(student, x_test, y_test, eps=EPS, attacks=("clean", "fgsm", "pgd_sat"))
    print(report.to_markdown())


if __name__ == "__main__":
    main()
