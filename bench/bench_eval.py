"""Standard AutoAttack through our report against pyautoattack called directly (same model, data, seed).

Run from the repository root, e.g.::

    .venv/bin/python bench/bench_eval.py --nb-images 64 --repeats 3

Variants, interleaved in one process (medians over ``--repeats`` rounds after one warm-up round):

* ``a_report_autoattack``: ``art_rslad.evaluate_robustness(classifier, x, y, eps=..., attacks=("autoattack",))``,
  which also runs the report's model checks and bookkeeping.
* ``b_pyautoattack``: ``pyautoattack.AutoAttack(model, eps=..., version="standard", seed=...)``
  ``.run_standard_evaluation(x, y, batch_size=...)`` on the bare torch model in eval mode.
* ``c_pyautoattack_logits_module``: the same on the report's ``LogitsModule(classifier)`` (the ART classifier's
  preprocessing, then the model), which isolates the wrapper's cost from the report's other work.

The model is the Fashion-MNIST ``cnn-small`` student, trained naturally for ``--train-epochs`` epochs on
``--train-images`` images unless ``--weights`` gives a state dict (e.g. a robust model, which makes AutoAttack
run all four attacks on most inputs).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

import torch
from art.estimators.classification import PyTorchClassifier
from common import format_table, run_interleaved
from pyautoattack import AutoAttack

from art_rslad import evaluate_robustness
from art_rslad.data import load_dataset
from art_rslad.evaluation.registry import LogitsModule
from art_rslad.models import create_model, load_weights


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nb-images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--model", default="cnn-small")
    parser.add_argument("--weights", default=None, help="State dict for --model; else a short natural training.")
    parser.add_argument("--train-images", type=int, default=4096)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = create_model(args.model).to(device)
    if args.weights is not None:
        load_weights(model, args.weights)
    else:
        x_train, y_train = load_dataset("fashion-mnist", "train")
        train_naturally(model, torch.from_numpy(x_train[:args.train_images]).to(device),
                        torch.from_numpy(y_train[:args.train_images]).to(device), args.train_epochs)
    model.eval()
    x_test, y_test = load_dataset("fashion-mnist", "test")
    x, y = x_test[:args.nb_images], y_test[:args.nb_images]
    classifier = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=x.shape[1:],
                                   nb_classes=10, clip_values=(0.0, 1.0),
                                   device_type="cpu" if device.type == "cpu" else "gpu")
    x_t, y_t = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    accuracies: dict[str, float] = {}

    def ours() -> None:
        report = evaluate_robustness(classifier, x, y, eps=args.eps, attacks=("autoattack",),
                                     batch_size=args.batch_size, seed=args.seed, verbose=False)
        accuracies["a_report_autoattack"] = report.accuracy["autoattack"]

    def direct(name: str, target: torch.nn.Module) -> Callable[[], None]:
        def run() -> None:
            adversary = AutoAttack(target, eps=args.eps, norm="Linf", version="standard", device=device,
                                   seed=args.seed)
            _, y_adv = adversary.run_standard_evaluation(x_t, y_t, batch_size=args.batch_size)
            accuracies[name] = float((y_adv.to(device) == y_t).float().mean())

        return run

    variants = {"a_report_autoattack": ours, "b_pyautoattack": direct("b_pyautoattack", model),
                "c_pyautoattack_logits_module": direct("c_pyautoattack_logits_module", LogitsModule(classifier))}
    results = run_interleaved(variants, args.repeats, device)
    print(f"standard AutoAttack, {args.model} ({'weights ' + args.weights if args.weights else 'natural training'})"
          f", {args.nb_images} Fashion-MNIST test images, eps {args.eps}, batch {args.batch_size}, device {device}, "
          f"threads {torch.get_num_threads()}, {args.repeats} repeats")
    print(format_table(results, args.nb_images, "images", "b_pyautoattack"))
    print("robust accuracy: " + ", ".join(f"{name} {value:.4f}" for name, value in accuracies.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
