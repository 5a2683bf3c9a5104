"""Distil with RSLAD on several GPUs (or CPU processes) under torchrun, then evaluate sharded over the same processes.

Run on one machine with 8 GPUs, or with CPU processes (gloo) to try it::

    torchrun --standalone --nproc-per-node 8 examples/torchrun_distil.py --global-batch-size 128
    torchrun --standalone --nproc-per-node 2 examples/torchrun_distil.py --train-size 2048 --epochs 1

Every rank runs this same script. ``init_distributed()`` comes first: on CUDA it selects the GPU ``LOCAL_RANK`` so
that the classifiers built after it land on that process's GPU. Each rank trains on its shard of every epoch and
DDP averages the gradients; ``batch_size`` is per rank, so the script divides the global batch by the number of
processes. Rank 0 alone writes files. See docs/distributed.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from art_rslad import AdversarialTrainerRSLAD, distributed
from art_rslad.data import load_dataset, train_val_split
from art_rslad.evaluation import evaluate_robustness_distributed
from art_rslad.experiments.teachers import load_teacher
from art_rslad.models import create_model, make_classifier

EPS = 0.1  # the usual L-inf budget on Fashion-MNIST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=None, help="training images (default: all 60,000)")
    parser.add_argument("--test-size", type=int, default=1000, help="test images evaluated (default 1000)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs (default 8)")
    parser.add_argument("--global-batch-size", type=int, default=128,
                        help="batch size summed over the processes (default 128)")
    parser.add_argument("--out", default="runs/torchrun-rslad", help="folder for checkpoints and the student")
    args = parser.parse_args()

    world = distributed.init_distributed()  # nccl on CUDA, gloo on CPU; the one-process world without torchrun
    if args.global_batch_size % world.size:
        raise SystemExit(f"--global-batch-size {args.global_batch_size} is not divisible by the {world.size} "
                         "processes of this run.")
    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    x, y = load_dataset("fashion-mnist", "train")
    x_train, y_train, x_val, y_val = train_val_split(x[: args.train_size], y[: args.train_size], seed=0)
    x_test, y_test = load_dataset("fashion-mnist", "test")
    x_test, y_test = x_test[: args.test_size], y_test[: args.test_size]

    teacher = load_teacher("zoo:fashion-mnist-cnn-large", "fashion-mnist", device=device)
    torch.manual_seed(0)  # the same initial student on every rank
    student = make_classifier(create_model("cnn-small"), "fashion-mnist", lr=1.0, device=device)
    trainer = AdversarialTrainerRSLAD(student, teacher, eps=EPS, eps_step=EPS / 4, max_iter=10, seed=0,
                                      verbose=world.is_main)
    out = Path(args.out)
    trainer.fit(x_train, y_train, validation_data=(x_val[:1000], y_val[:1000]),
                batch_size=args.global_batch_size // world.size, nb_epochs=args.epochs, checkpoint_dir=out,
                restore_best=True)  # the student ends with the best epoch's weights, on every rank
    report = evaluate_robustness_distributed(student, x_test, y_test, eps=EPS, attacks=("clean", "fgsm", "pgd_sat"),
                                             verbose=False)
    if world.is_main:
        torch.save(student.model.state_dict(), out / "student.pt")
        print(f"{world.size} processes, batch {args.global_batch_size // world.size} per process; "
              f"best epoch {trainer.best_epoch}; student saved to {out / 'student.pt'}")
        print(report.to_markdown())
    distributed.leave_process_group()  # every rank, last: see docs/distributed.md


if __name__ == "__main__":
    main()
