"""Attack a trained student with ART's own evasion attacks: white-box FGSM, PGD and APGD, and black-box Square.

Run on the student an ``art-rslad train`` run saved (its folder holds ``student.pt`` beside the card
``student.json``), or on any state dict of one of the package's architectures::

    python examples/art_attack_on_student.py runs/rslad/student.pt --model cnn-small --dataset fashion-mnist

The student is an ordinary ART ``PyTorchClassifier`` (``make_classifier``), so any ART attack applies to it; this
script prints each attack's accuracy and the largest L-inf perturbation it made.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from art.attacks.evasion import (
    AutoProjectedGradientDescent,
    FastGradientMethod,
    ProjectedGradientDescent,
    SquareAttack,
)

from art_rslad.data import dataset_info, load_dataset
from art_rslad.models import create_model, load_weights, make_classifier


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="state dict of the student, e.g. a run folder's student.pt")
    parser.add_argument("--model", default="cnn-small", help="its architecture (`art-rslad list`; default cnn-small)")
    parser.add_argument("--dataset", default="fashion-mnist", help="dataset it was trained on (default fashion-mnist)")
    parser.add_argument("--eps", type=float, default=None, help="L-inf budget (default: the dataset's, 0.1 or 8/255)")
    parser.add_argument("--nb-images", type=int, default=500, help="test images attacked (default 500)")
    parser.add_argument("--max-iter", type=int, default=20, help="iterations of PGD and APGD (default 20)")
    parser.add_argument("--square-queries", type=int, default=1000, help="query budget of Square (default 1000)")
    parser.add_argument("--data-root", default=None, help="folder holding the data (default: found or downloaded)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    info = dataset_info(args.dataset)
    eps = args.eps if args.eps is not None else info.eps
    model = create_model(args.model, nb_classes=info.nb_classes, input_shape=info.input_shape)
    load_weights(model, args.weights)  # torch.load(weights_only=True), keys checked against the architecture
    student = make_classifier(model, args.dataset, device=args.device)
    student.model.eval()
    x, y = load_dataset(args.dataset, "test", root=args.data_root)
    x, y = x[: args.nb_images], y[: args.nb_images]

    attacks = {
        "FGSM": FastGradientMethod(student, eps=eps, batch_size=256),
        f"PGD-{args.max_iter}": ProjectedGradientDescent(student, eps=eps, eps_step=eps / 4, max_iter=args.max_iter,
                                                         num_random_init=1, batch_size=256, verbose=False),
        f"APGD-CE-{args.max_iter}": AutoProjectedGradientDescent(student, eps=eps, eps_step=eps / 4,
                                                                 max_iter=args.max_iter, batch_size=256,
                                                                 loss_type="cross_entropy", verbose=False),
        "Square (black-box)": SquareAttack(student, eps=eps, max_iter=args.square_queries, batch_size=256,
                                           verbose=False),
    }
    clean = float((student.predict(x).argmax(1) == y).mean())
    print(f"{args.model} from {args.weights}: {len(x)} {args.dataset} test images, eps {eps:.4f}")
    print(f"{'attack':22s} accuracy  max |x' - x|  seconds")
    print(f"{'clean':22s} {clean:8.3f}")
    for name, attack in attacks.items():
        start = time.perf_counter()
        x_adv = attack.generate(x, y=y)
        accuracy = float((student.predict(x_adv).argmax(1) == y).mean())
        print(f"{name:22s} {accuracy:8.3f}  {np.abs(x_adv - x).max():12.4f}  {time.perf_counter() - start:7.1f}")


if __name__ == "__main__":
    main()
