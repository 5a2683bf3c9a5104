"""Distil a CIFAR student from a RobustBench teacher loaded by name, as the paper does (RSLAD, eps 8/255).

Needs the extra ``pip install 'art-rslad[robustbench]'`` and, the first time, internet: RobustBench's downloader
fetches the teacher's weights into ``<model-dir>/<dataset>/Linf/<name>.pt`` (default model dir
``$ART_RSLAD_ROBUSTBENCH_DIR``, else ``~/.cache/art-rslad/robustbench``; the paper's CIFAR-10 teacher
``Zhang2019Theoretically``, a TRADES WideResNet-34-10, is about 185 MB) and torchvision downloads CIFAR (about
170 MB) unless ``--data-root`` holds it. Without internet, copy the weights file to that path and pass
``--no-download``. Examples::

    python examples/robustbench_teacher.py --train-size 5000 --epochs 1          # a quick look, minutes on a GPU
    python examples/robustbench_teacher.py --dataset cifar100 --teacher Gowal2020Uncovering --student mobilenetv2

The full 300-epoch recipe, with the paper's schedule and checkpoints, is ``art-rslad train --preset
cifar10-resnet18`` (docs/gpu-recipe.md). This script shows the Python API: the teacher is an ART classifier like
any other, with clip_values (0, 1) and its normalisation inside the model.
"""

from __future__ import annotations

import argparse
import json

import torch

from art_rslad import AdversarialTrainerRSLAD, evaluate_robustness
from art_rslad.data import dataset_info, load_dataset, make_data_generator, train_val_split
from art_rslad.models import create_model, make_classifier
from art_rslad.robustbench import PAPER_TEACHERS, load_robustbench_teacher, robustbench_card, strip_source_prefix

EPS = 8 / 255


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10", choices=sorted(PAPER_TEACHERS), help="default cifar10")
    parser.add_argument("--teacher", default=None,
                        help="RobustBench model name (default: the paper's teacher for the dataset)")
    parser.add_argument("--student", default="resnet18", help="student architecture: resnet18 (default), mobilenetv2")
    parser.add_argument("--model-dir", default=None, help="RobustBench's model folder (default: see above)")
    parser.add_argument("--no-download", action="store_true", help="never download; the file must be there")
    parser.add_argument("--data-root", default=None, help="folder holding CIFAR (default: found or downloaded)")
    parser.add_argument("--train-size", type=int, default=None, help="training images (default: all 50,000)")
    parser.add_argument("--test-size", type=int, default=1000, help="test images evaluated (default 1000)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs (default 1)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128, the paper's)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    name = args.teacher or strip_source_prefix(PAPER_TEACHERS[args.dataset])
    teacher = load_robustbench_teacher(name, dataset=args.dataset, threat_model="Linf", model_dir=args.model_dir,
                                       device=args.device, download=not args.no_download)
    print(json.dumps(robustbench_card(name, args.dataset), indent=1))

    x, y = load_dataset(args.dataset, "train", root=args.data_root)
    x_train, y_train, x_val, y_val = train_val_split(x[: args.train_size], y[: args.train_size], seed=0)
    x_val, y_val = x_val[:1000], y_val[:1000]
    x_test, y_test = load_dataset(args.dataset, "test", root=args.data_root)
    x_test, y_test = x_test[: args.test_size], y_test[: args.test_size]

    info = dataset_info(args.dataset)
    torch.manual_seed(0)
    student = make_classifier(create_model(args.student, nb_classes=info.nb_classes), args.dataset, lr=0.1,
                              momentum=0.9, weight_decay=2e-4, device=args.device)
    trainer = AdversarialTrainerRSLAD(student, teacher, eps=EPS, eps_step=2 / 255, max_iter=10, seed=0)
    # The paper's augmentation on CIFAR: a random crop after 4 pixels of padding, and a horizontal flip.
    generator = make_data_generator(x_train, y_train, args.batch_size, augmentation=info.augmentation, seed=0)
    trainer.fit_generator(generator, nb_epochs=args.epochs, validation_data=(x_val, y_val), restore_best=True)

    for label, classifier in ((f"teacher {name}", teacher), (f"student {args.student} (RSLAD)", student)):
        report = evaluate_robustness(classifier, x_test, y_test, eps=EPS, attacks=("clean", "pgd_sat"), verbose=False)
        print(f"{label}: clean {report.accuracy['clean']:.3f}, PGD_SAT {report.accuracy['pgd_sat']:.3f} "
              f"on {len(x_test)} test images")


if __name__ == "__main__":
    main()
