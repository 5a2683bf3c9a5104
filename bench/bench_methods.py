"""Cost of one seeded training epoch of the methods since RSLAD, against RSLAD, on the CPU.

Run from the repository root, e.g.::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_methods.py --nb-samples 2048 --repeats 3

Variants, interleaved in one process (medians over ``--repeats`` rounds after one warm-up round), each one epoch of
``fit`` on the first ``--nb-samples`` Fashion-MNIST training images (batch 128, eps 0.1, PGD-10 of step 0.025),
a fresh ``cnn-small`` student from the same initial weights, the shipped teacher ``zoo:fashion-mnist-cnn-large``:

* ``a_rslad``: RSLAD (the reference).
* ``b_rslad_igdm``: RSLAD with IGDM (``igdm_alpha=1``): two more teacher forwards and one student forward per batch.
* ``c_adaad``: AdaAD (the teacher inside every attack step).
* ``d_adaiad``: AdaIAD (AdaAD's attack; introspection on from the first epoch of a one-epoch run).
* ``e_peeraid``: PeerAiD with a ``cnn-small`` peer (no teacher; the peer trains too).
* ``f_rslad_ema`` / ``g_rslad_swa``: RSLAD with weight averaging (SWA recomputes BatchNorm by a clean pass).
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from collections.abc import Callable

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from common import format_table, run_interleaved

from art_rslad import (
    AdversarialTrainerAdaAD,
    AdversarialTrainerAdaIAD,
    AdversarialTrainerPeerAiD,
    AdversarialTrainerRSLAD,
)
from art_rslad.data import load_dataset
from art_rslad.experiments.teachers import load_teacher
from art_rslad.models import create_model
from art_rslad.trainers import AdversarialTrainerBase

SHAPE = (1, 28, 28)
SETTINGS = {"eps": 0.1, "eps_step": 0.025, "max_iter": 10, "seed": 0, "verbose": False}


def classifier(model: torch.nn.Module) -> PyTorchClassifier:
    """An ART classifier around ``model`` with SGD (lr 0.05, momentum 0.9, weight decay 2e-4)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=2e-4)
    return PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), SHAPE, 10, optimizer=optimizer,
                             clip_values=(0.0, 1.0))


def variants(x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, Callable[[], None]]:
    """One epoch of ``fit`` per variant, each from the same initial student (and peer)."""
    teacher = load_teacher("zoo:fashion-mnist-cnn-large", "fashion-mnist", device="cpu")
    torch.manual_seed(0)
    initial = create_model("cnn-small", 10, input_shape=SHAPE)
    peer_initial = create_model("cnn-small", 10, input_shape=SHAPE)

    def epoch(build: Callable[[PyTorchClassifier], AdversarialTrainerBase]) -> Callable[[], None]:
        def run() -> None:
            torch.manual_seed(0)
            build(classifier(copy.deepcopy(initial))).fit(x, y, batch_size=batch_size, nb_epochs=1)
        return run

    return {
        "a_rslad": epoch(lambda student: AdversarialTrainerRSLAD(student, teacher, **SETTINGS)),
        "b_rslad_igdm": epoch(lambda student: AdversarialTrainerRSLAD(student, teacher, igdm_alpha=1.0, **SETTINGS)),
        "c_adaad": epoch(lambda student: AdversarialTrainerAdaAD(student, teacher, **SETTINGS)),
        "d_adaiad": epoch(lambda student: AdversarialTrainerAdaIAD(student, teacher, **SETTINGS)),
        "e_peeraid": epoch(lambda student: AdversarialTrainerPeerAiD(
            student, classifier(copy.deepcopy(peer_initial)), **SETTINGS)),
        "f_rslad_ema": epoch(lambda student: AdversarialTrainerRSLAD(student, teacher, weight_averaging="ema",
                                                                     **SETTINGS)),
        "g_rslad_swa": epoch(lambda student: AdversarialTrainerRSLAD(student, teacher, weight_averaging="swa",
                                                                     **SETTINGS)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nb-samples", type=int, default=2048, help="Training images (default 2048).")
    parser.add_argument("--batch-size", type=int, default=128, help="Batch size (default 128).")
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds (default 3).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    x, y = load_dataset("fashion-mnist", "train")
    x, y = x[:args.nb_samples].copy(), y[:args.nb_samples].copy()
    results = run_interleaved(variants(x, y, args.batch_size), args.repeats, torch.device("cpu"))
    print(f"One epoch of {args.nb_samples} Fashion-MNIST images, cnn-small student, batch {args.batch_size}, "
          f"PGD-10, one thread, torch {torch.__version__}")
    print(format_table(results, args.nb_samples, "images", "a_rslad"))


if __name__ == "__main__":
    main(sys.argv[1:])
