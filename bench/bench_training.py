"""RSLAD training throughput: our ART trainer against the plain PyTorch loop, ART as it is, and a compiled loop.

Run from the repository root, e.g.::

    PYTHONPATH=. python3 -m bench.bench_training --setting fmnist --threads 1
    PYTHONPATH=. python3 -m bench.bench_training --setting cifar-resnet18 --device cuda --amp-dtype bf16 \\
        --channels-last --nb-batches 10 --repeats 3 --json out.json

Variants, interleaved in one process (medians over ``--repeats`` rounds after one warm-up round):

* ``a_art_rslad``: :meth:`art_rslad.AdversarialTrainerRSLAD.fit` for ``--nb-epochs`` epochs over the data.
* ``b_plain_rslad``: the plain PyTorch loop of ``bench/plain_loops.py`` (RSLAD's recipe: teacher soft labels per
  batch, PGD-10 with input-only gradients from x + 0.001 N(0, I), student in eval mode for the attack and train
  mode for the loss, an SGD step).
* ``c_art_trades``: ART's ``AdversarialTrainerTRADESPyTorch`` with ART's ``ProjectedGradientDescentPyTorch``
  (PGD-10, uniform start): not the same method, but the cost of adversarial training with ART as it is.
* ``d_plain_compiled``: ``b`` with ``torch.compile(student)`` (``--compile-backend``). Our trainer has no compile
  option; this measures whether one would pay.

All variants start from copies of the same student and share the frozen teacher. ``--amp-dtype`` and
``--channels-last`` apply to ``a``, ``b`` and ``d`` (ART's trainer has no such options).
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescentPyTorch
from art.defences.trainer import AdversarialTrainerTRADESPyTorch
from art.estimators.classification import PyTorchClassifier

from art_rslad import AdversarialTrainerRSLAD
from art_rslad.data import load_dataset
from art_rslad.models import create_model
from bench.common import (
    environment,
    format_ratio_table,
    format_table,
    ratio_rows,
    run_interleaved,
    start_benchmark,
    write_json,
)
from bench.plain_loops import PlainSetup, batch_order, plain_epoch
from bench.plain_methods import PLAIN_METHODS

SETTINGS = {
    # student, teacher, input shape, eps, eps_step
    "fmnist": ("cnn-small", "cnn-large", (1, 28, 28), 0.1, 0.025),
    "cifar-resnet18": ("resnet18", "wrn-34-10", (3, 32, 32), 8 / 255, 2 / 255),
    # CIFAR shapes with the small CNNs: the same code paths in seconds on a CPU (the GPU check's dry run)
    "cifar-tiny": ("cnn-small", "cnn-large", (3, 32, 32), 8 / 255, 2 / 255),
}
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16}
VARIANTS = {"a": "a_art_rslad", "b": "b_plain_rslad", "c": "c_art_trades", "d": "d_plain_compiled"}


def make_classifier(model: torch.nn.Module, shape: tuple[int, int, int], device: torch.device) -> PyTorchClassifier:
    return PyTorchClassifier(
        model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=shape, nb_classes=10,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4),
        clip_values=(0.0, 1.0), device_type=device.type if device.type == "cpu" else "gpu",
    )


def load_data(setting: str, shape: tuple[int, int, int], nb_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if setting == "fmnist":
        x, y = load_dataset("fashion-mnist", "train")
        return x[:nb_samples].copy(), y[:nb_samples].copy()
    rng = np.random.default_rng(seed)
    return rng.random((nb_samples, *shape), dtype=np.float32), rng.integers(0, 10, nb_samples)


def plain_rslad(setup: PlainSetup, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                nb_epochs: int) -> Callable[[], None]:
    """``nb_epochs`` epochs of the plain RSLAD loop, in our trainer's batch order."""
    def run() -> None:
        for epoch in range(nb_epochs):
            plain_epoch(setup, PLAIN_METHODS["rslad"], x, y, batch_size, batch_order(len(x), 0, epoch), epoch=epoch,
                        nb_epochs=nb_epochs)

    return run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="fmnist")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--nb-batches", type=int, default=8, help="Batches per epoch.")
    parser.add_argument("--nb-epochs", type=int, default=1, help="Epochs per timed run (a: one fit call).")
    parser.add_argument("--max-iter", type=int, default=10, help="PGD steps (default 10).")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    parser.add_argument("--amp-dtype", choices=sorted(AMP_DTYPES), default="none")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend of variant d.")
    parser.add_argument("--variants", default="a,b,c", help="Comma-separated subset of a, b, c, d.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="Also write the raw measurements to this JSON file.")
    return parser.parse_args(argv)


def build_variants(args: argparse.Namespace, device: torch.device) -> dict[str, Callable[[], None]]:
    student_name, teacher_name, shape, eps, eps_step = SETTINGS[args.setting]
    amp_dtype = AMP_DTYPES[args.amp_dtype]
    x, y = load_data(args.setting, shape, args.batch_size * args.nb_batches, args.seed)
    student = create_model(student_name, 10, input_shape=shape).to(device)
    teacher = create_model(teacher_name, 10, input_shape=shape).to(device).eval()
    if args.channels_last:
        student, teacher = student.to(memory_format=torch.channels_last), teacher.to(memory_format=torch.channels_last)
    chosen = set(args.variants.split(","))
    runs: dict[str, Callable[[], None]] = {}
    if "a" in chosen:
        options = {"amp_dtype": amp_dtype, "channels_last": args.channels_last}
        trainer = AdversarialTrainerRSLAD(make_classifier(copy.deepcopy(student), shape, device),
                                          make_classifier(teacher, shape, device), eps=eps, eps_step=eps_step,
                                          max_iter=args.max_iter, verbose=False, **options)
        runs["a_art_rslad"] = lambda: trainer.fit(x, y, batch_size=args.batch_size, nb_epochs=args.nb_epochs)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    for key, compiled in (("b", False), ("d", True)):
        if key in chosen:
            model = copy.deepcopy(student)
            setup = PlainSetup(torch.compile(model, backend=args.compile_backend) if compiled else model,
                               torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4),
                               teacher=teacher, eps=eps, eps_step=eps_step, steps=args.max_iter,
                               amp_dtype=amp_dtype, channels_last=args.channels_last)
            runs[VARIANTS[key]] = plain_rslad(setup, x_t, y_t, args.batch_size, args.nb_epochs)
    if "c" in chosen:
        art_classifier = make_classifier(copy.deepcopy(student), shape, device)
        art_attack = ProjectedGradientDescentPyTorch(art_classifier, eps=eps, eps_step=eps_step,
                                                     max_iter=args.max_iter, num_random_init=1,
                                                     batch_size=args.batch_size, verbose=False)
        art_trainer = AdversarialTrainerTRADESPyTorch(art_classifier, art_attack, beta=6.0)
        runs["c_art_trades"] = lambda: art_trainer.fit(x, y, batch_size=args.batch_size, nb_epochs=args.nb_epochs)
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = start_benchmark(args.threads, args.seed, args.device)
    results = run_interleaved(build_variants(args, device), args.repeats, device)
    nb_images = args.batch_size * args.nb_batches * args.nb_epochs
    reference = "b_plain_rslad" if "b_plain_rslad" in results else next(iter(results))
    student_name, teacher_name = SETTINGS[args.setting][:2]
    print(f"setting {args.setting} ({student_name} student, {teacher_name} teacher), device {device}, threads "
          f"{torch.get_num_threads()}, batch {args.batch_size} x {args.nb_batches} x {args.nb_epochs} epochs, "
          f"PGD-{args.max_iter}, amp {args.amp_dtype}, channels_last {args.channels_last}, {args.repeats} repeats")
    print(format_table(results, nb_images, "images", reference))
    if args.json:
        pairs = {name: (name, reference) for name in results if name != reference}
        images_per_s = {name: nb_images / measured.median_seconds() for name, measured in results.items()}
        write_json(args.json, {"benchmark": "training", **vars(args), **environment(device)}, results, nb_images,
                   rows=ratio_rows(results, pairs), images_per_s=images_per_s,
                   table=format_ratio_table(ratio_rows(results, pairs), "MiB"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
