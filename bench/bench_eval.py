"""Standard AutoAttack through our report against pyautoattack called directly (same model, data, seed).

Run from the repository root, e.g.::

    PYTHONPATH=. python3 -m bench.bench_eval --nb-images 64 --repeats 3
    PYTHONPATH=. python3 -m bench.bench_eval --setting cifar --model resnet18 --nb-images 500 --device cuda

Variants, interleaved in one process (medians over ``--repeats`` rounds after one warm-up round):

* ``a_report_autoattack``: ``art_rslad.evaluate_robustness(classifier, x, y, eps=..., attacks=("autoattack",))``,
  which also runs the report's model checks and bookkeeping.
* ``b_pyautoattack``: ``pyautoattack.AutoAttack(model, eps=..., version="standard", seed=...)``
  ``.run_standard_evaluation(x, y, batch_size=...)`` on the bare torch model in eval mode.
* ``c_pyautoattack_logits_module``: the same on the report's ``LogitsModule(classifier)`` (the ART classifier's
  preprocessing, then the model), which isolates the wrapper's cost from the report's other work.

With ``--setting fmnist`` the model is the Fashion-MNIST ``cnn-small`` student, trained naturally for
``--train-epochs`` epochs on ``--train-images`` images unless ``--weights`` gives a state dict (e.g. a robust
model, which makes AutoAttack run all four attacks on most inputs). With ``--setting cifar`` the inputs are random
32x32x3 images labelled with the model's own predictions (so AutoAttack attacks every one), the model ``--model``
with ``--weights`` (pyautoattack's shipped CIFAR-10 ResNet-18 ``examples/model_test.pt`` when it is installed and
``--model`` is ``resnet18``) or its random initialisation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyautoattack
import torch
from art.estimators.classification import PyTorchClassifier
from pyautoattack import AutoAttack

from art_rslad import evaluate_robustness
from art_rslad.data import load_dataset
from art_rslad.evaluation.registry import LogitsModule
from art_rslad.models import create_model, load_weights
from bench.common import environment, format_table, run_interleaved, start_benchmark, write_json

SHIPPED_RESNET18 = Path(pyautoattack.__file__).parent / "examples" / "model_test.pt"


def train_naturally(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, nb_epochs: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(nb_epochs):
        for start in range(0, len(x), 128):
            loss = torch.nn.functional.cross_entropy(model(x[start:start + 128]), y[start:start + 128])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", choices=("fmnist", "cifar"), default="fmnist")
    parser.add_argument("--nb-images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eps", type=float, default=None, help="L-inf budget (default 0.1 fmnist, 8/255 cifar).")
    parser.add_argument("--model", default="cnn-small")
    parser.add_argument("--weights", default=None, help="State dict for --model; else a short natural training.")
    parser.add_argument("--train-images", type=int, default=4096)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="Also write the raw measurements to this JSON file.")
    return parser.parse_args(argv)


def model_and_data(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    """The model in eval mode on ``device`` and the evaluation inputs and labels (numpy)."""
    shape = (1, 28, 28) if args.setting == "fmnist" else (3, 32, 32)
    model = create_model(args.model, 10, input_shape=shape).to(device)
    weights = args.weights
    if weights is None and args.setting == "cifar" and args.model == "resnet18" and SHIPPED_RESNET18.is_file():
        weights = str(SHIPPED_RESNET18)
    if weights is not None:
        load_weights(model, weights)
        args.weights = weights
    elif args.setting == "fmnist":
        x_train, y_train = load_dataset("fashion-mnist", "train")
        train_naturally(model, torch.from_numpy(x_train[:args.train_images]).to(device),
                        torch.from_numpy(y_train[:args.train_images]).to(device), args.train_epochs)
    model.eval()
    if args.setting == "fmnist":
        x_test, y_test = load_dataset("fashion-mnist", "test")
        return model, x_test[:args.nb_images], y_test[:args.nb_images]
    x = np.random.default_rng(args.seed).random((args.nb_images, *shape), dtype=np.float32)
    with torch.no_grad():
        y = torch.cat([model(torch.from_numpy(x[i:i + args.batch_size]).to(device)).argmax(1).cpu()
                       for i in range(0, len(x), args.batch_size)]).numpy()
    return model, x, y


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = start_benchmark(args.threads, args.seed, args.device)
    eps = args.eps if args.eps is not None else (0.1 if args.setting == "fmnist" else 8 / 255)
    model, x, y = model_and_data(args, device)
    classifier = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=x.shape[1:],
                                   nb_classes=10, clip_values=(0.0, 1.0),
                                   device_type="cpu" if device.type == "cpu" else "gpu")
    x_t, y_t = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    accuracies: dict[str, float] = {}

    def ours() -> None:
        report = evaluate_robustness(classifier, x, y, eps=eps, attacks=("autoattack",),
                                     batch_size=args.batch_size, seed=args.seed, verbose=False)
        accuracies["a_report_autoattack"] = report.accuracy["autoattack"]

    def direct(name: str, target: torch.nn.Module) -> Callable[[], None]:
        def run() -> None:
            adversary = AutoAttack(target, eps=eps, norm="Linf", version="standard", device=device, seed=args.seed)
            _, y_adv = adversary.run_standard_evaluation(x_t, y_t, batch_size=args.batch_size)
            accuracies[name] = float((y_adv.to(device) == y_t).float().mean())

        return run

    variants = {"a_report_autoattack": ours, "b_pyautoattack": direct("b_pyautoattack", model),
                "c_pyautoattack_logits_module": direct("c_pyautoattack_logits_module", LogitsModule(classifier))}
    results = run_interleaved(variants, args.repeats, device)
    weights = f"weights {args.weights}" if args.weights else "no weights"
    print(f"standard AutoAttack, {args.setting}, {args.model} ({weights}), {args.nb_images} inputs, eps {eps:.4g}, "
          f"batch {args.batch_size}, device {device}, threads "
          f"{torch.get_num_threads()}, {args.repeats} repeats")
    print(format_table(results, args.nb_images, "images", "b_pyautoattack"))
    print("robust accuracy: " + ", ".join(f"{name} {value:.4f}" for name, value in accuracies.items()))
    if args.json:
        write_json(args.json, {"benchmark": "autoattack", **vars(args), "eps": eps, **environment(device)}, results,
                   args.nb_images, robust_accuracy=accuracies,
                   table=format_table(results, args.nb_images, "images", "b_pyautoattack"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
