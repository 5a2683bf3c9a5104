"""RSLAD training throughput: our ART trainer against a plain PyTorch loop and against ART as it is.

Run from the repository root, e.g.::

    .venv/bin/python bench/bench_training.py --setting fmnist
    .venv/bin/python bench/bench_training.py --setting cifar-resnet18 --batch-size 32 --nb-batches 2 --repeats 3

Variants, interleaved in one process (medians over ``--repeats`` rounds after one warm-up round):

* ``a_art_rslad``: :meth:`art_rslad.AdversarialTrainerRSLAD.fit` for one epoch over the data.
* ``b_plain_rslad``: the official RSLAD recipe written in plain PyTorch (teacher soft labels per batch under
  no_grad, student in eval mode for PGD-10 with input-only gradients from x + 0.001 N(0, I), then the RSLAD loss
  in train mode and an SGD step).
* ``c_art_trades``: ART's ``AdversarialTrainerTRADESPyTorch`` with ART's ``ProjectedGradientDescentPyTorch``
  (PGD-10, uniform start): not the same method, but the cost of adversarial training with ART as it is.

All variants start from copies of the same student and share the frozen teacher. ``--amp-dtype`` and
``--channels-last`` apply to ``a`` and ``b`` only (ART's trainer has no such options).
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from art.attacks.evasion import ProjectedGradientDescentPyTorch
from art.defences.trainer import AdversarialTrainerTRADESPyTorch
from art.estimators.classification import PyTorchClassifier
from common import format_table, run_interleaved

from art_rslad import AdversarialTrainerRSLAD
from art_rslad.data import load_dataset
from art_rslad.models import create_model

SETTINGS = {
    # student, teacher, input shape, eps, eps_step
    "fmnist": ("cnn-small", "cnn-large", (1, 28, 28), 0.1, 0.025),
    "cifar-resnet18": ("resnet18", "wrn-34-10", (3, 32, 32), 8 / 255, 2 / 255),
}
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def plain_rslad_epoch(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    eps: float,
    eps_step: float,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> None:
    """One epoch of the official RSLAD recipe in plain PyTorch (the reference ``b``)."""
    device = next(student.parameters()).device
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)

    order = torch.randperm(len(x))
    for start in range(0, len(x), batch_size):
        rows = order[start:start + batch_size]
        x_nat = x[rows].to(device).contiguous(memory_format=memory_format)
        teacher.eval()
        with torch.no_grad(), autocast():
            teacher_probs = F.softmax(teacher(x_nat).float(), dim=1)
        student.eval()
        x_adv = x_nat + 0.001 * torch.randn_like(x_nat)
        for _ in range(10):
            x_adv.requires_grad_(True)
            with autocast():
                logits = student(x_adv).float()
            loss = F.kl_div(F.log_softmax(logits, dim=1), teacher_probs, reduction="sum")
            (grad,) = torch.autograd.grad(loss, [x_adv])
            x_adv = x_adv.detach() + eps_step * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x_nat - eps), x_nat + eps).clamp(0.0, 1.0)
        student.train()
        with autocast():
            adv_logits = student(x_adv).float()
            nat_logits = student(x_nat).float()
        kl_adv = F.kl_div(F.log_softmax(adv_logits, dim=1), teacher_probs, reduction="none").mean()
        kl_nat = F.kl_div(F.log_softmax(nat_logits, dim=1), teacher_probs, reduction="none").mean()
        loss = 5 / 6 * kl_adv + 1 / 6 * kl_nat
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def make_classifier(model: torch.nn.Module, shape: tuple[int, int, int], device: torch.device) -> PyTorchClassifier:
    return PyTorchClassifier(
        model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=shape, nb_classes=10,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4),
        clip_values=(0.0, 1.0), device_type=device.type if device.type == "cpu" else "gpu",
    )


def load_data(setting: str, shape: tuple[int, int, int], nb_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if setting == "fmnist":
        x, y = load_dataset("fashion-mnist", "train")
        return x[:nb_samples], y[:nb_samples]
    rng = np.random.default_rng(seed)
    return rng.random((nb_samples, *shape), dtype=np.float32), rng.integers(0, 10, nb_samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="fmnist")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--nb-batches", type=int, default=8, help="Batches per epoch.")
    parser.add_argument("--nb-epochs", type=int, default=1, help="Epochs per timed run (a: one fit call).")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    parser.add_argument("--amp-dtype", choices=sorted(AMP_DTYPES), default="none")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--variants", default="a,b,c", help="Comma-separated subset of a, b, c.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    student_name, teacher_name, shape, eps, eps_step = SETTINGS[args.setting]
    amp_dtype = AMP_DTYPES[args.amp_dtype]
    nb_samples = args.batch_size * args.nb_batches
    x, y = load_data(args.setting, shape, nb_samples, args.seed)
    in_channels = {"in_channels": shape[0]}
    student = create_model(student_name, **in_channels).to(device)
    teacher = create_model(teacher_name, **in_channels).to(device).eval()
    if args.channels_last:
        student = student.to(memory_format=torch.channels_last)
        teacher = teacher.to(memory_format=torch.channels_last)
    teacher_classifier = make_classifier(teacher, shape, device)

    variants: dict[str, Callable[[], None]] = {}
    chosen = set(args.variants.split(","))
    if "a" in chosen:
        trainer_options = {}
        if amp_dtype is not None or args.channels_last:
            trainer_options = {"amp_dtype": amp_dtype, "channels_last": args.channels_last}
        trainer = AdversarialTrainerRSLAD(
            make_classifier(copy.deepcopy(student), shape, device), teacher_classifier, eps=eps, eps_step=eps_step,
            verbose=False, **trainer_options,
        )
        variants["a_art_rslad"] = lambda: trainer.fit(x, y, batch_size=args.batch_size, nb_epochs=args.nb_epochs)
    if "b" in chosen:
        plain_student = copy.deepcopy(student)
        plain_optimizer = torch.optim.SGD(plain_student.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
        x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)

        def plain() -> None:
            for _ in range(args.nb_epochs):
                plain_rslad_epoch(plain_student, teacher, plain_optimizer, x_t, y_t, args.batch_size, eps, eps_step,
                                  amp_dtype, args.channels_last)

        variants["b_plain_rslad"] = plain
    if "c" in chosen:
        art_classifier = make_classifier(copy.deepcopy(student), shape, device)
        art_attack = ProjectedGradientDescentPyTorch(
            art_classifier, eps=eps, eps_step=eps_step, max_iter=10, num_random_init=1, batch_size=args.batch_size,
            verbose=False,
        )
        art_trainer = AdversarialTrainerTRADESPyTorch(art_classifier, art_attack, beta=6.0)
        variants["c_art_trades"] = lambda: art_trainer.fit(x, y, batch_size=args.batch_size, nb_epochs=args.nb_epochs)

    results = run_interleaved(variants, args.repeats, device)
    reference = "b_plain_rslad" if "b_plain_rslad" in results else next(iter(results))
    print(f"setting {args.setting} ({student_name} student, {teacher_name} teacher), device {device}, "
          f"threads {torch.get_num_threads()}, batch {args.batch_size} x {args.nb_batches} x {args.nb_epochs} epochs, "
          f"amp {args.amp_dtype}, channels_last {args.channels_last}, {args.repeats} repeats")
    print(format_table(results, nb_samples * args.nb_epochs, "images", reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
