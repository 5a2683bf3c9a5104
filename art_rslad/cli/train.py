"""``art-rslad train``: train one student with one method into a run folder; best and last checkpoints evaluated.

Examples::

    art-rslad train --method rslad --preset fashion-mnist --out runs/rslad
    art-rslad train --method sat --config my.toml --set nb_epochs=20 --set method_lr.sat=0.1 --out runs/sat
    art-rslad train --method rslad --preset fashion-mnist --out runs/rslad --resume   # after an interruption
    torchrun --standalone --nproc-per-node 8 -m art_rslad train --method rslad --preset cifar10-resnet18 \\
        --set batch_size=16 --out runs/rslad   # 8 GPUs; global batch 8 x 16 = 128, the paper's

Under torchrun each rank trains on its shard of every epoch (the config's batch_size is per rank: the global batch
is N x batch_size) and attacks its block of the test inputs; rank 0 alone writes the run folder. See
docs/distributed.md.

The folder gets run.json, config.toml, run.log, metrics.jsonl, last.pt, best.pt (best = highest PGD-10 accuracy on
a validation split of the training set), eval_best.json, eval_last.json, results.md, student.pt with its model
card student.json, and figures/. Ctrl-C saves last.pt; --resume continues to the same weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from art_rslad.config import Config, get_preset, preset_names
from art_rslad.distributed import command_world
from art_rslad.evaluation import ATTACKS, DEFAULT_ATTACKS
from art_rslad.runs import apply_overrides, parse_assignment, train_run
from art_rslad.trainers.registry import METHODS as TRAINERS


def assignment(text: str) -> tuple[str, Any]:
    """argparse type of KEY=VALUE options (:func:`~art_rslad.runs.parse_assignment`)."""
    try:
        return parse_assignment(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options ``train`` and ``compare`` share: config, overrides, data sizes, evaluation, folder handling."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=preset_names(), default="fashion-mnist",
                        help="Settings to start from (default: fashion-mnist).")
    source.add_argument("--config", type=Path, help="A .toml or .json config file instead of a preset.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a config key, repeatable; dotted keys reach tables (e.g. nb_epochs=2, "
                             "method_lr.rslad=0.1, teacher.source=zoo:fashion-mnist-cnn-large).")
    parser.add_argument("--out", type=Path, required=True, help="Output folder.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="Continue the run in --out after an interruption.")
    mode.add_argument("--overwrite", action="store_true", help="Replace a run already in --out.")
    parser.add_argument("--train-size", type=int, help="Train on the first N training images (default: all).")
    parser.add_argument("--val-size", type=int, default=1000,
                        help="Validation images attacked after each epoch to pick the best epoch (default: 1000).")
    parser.add_argument("--test-size", type=int, default=1000, help="Test images evaluated (default: 1000).")
    parser.add_argument("--attacks", nargs="+", choices=list(ATTACKS), default=list(DEFAULT_ATTACKS),
                        metavar="ATTACK", help=f"Evaluation attacks (default: {' '.join(DEFAULT_ATTACKS)}).")
    parser.add_argument("--student-option", type=assignment, action="append", default=[], metavar="KEY=VALUE",
                        help="Option of the student architecture, repeatable (e.g. width=32).")
    parser.add_argument("--checkpoint-interval", type=int, default=50,
                        help="Also write last.pt every N batches (default: 50; 0: only at epoch ends).")
    parser.add_argument("--data-root", type=Path, help="Dataset folder (default: automatic lookup).")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="Device (default: cuda when available, else cpu).")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset or config file with the ``--set`` overrides applied."""
    config = Config.from_file(args.config) if args.config is not None else get_preset(args.preset)
    return apply_overrides(config, args.overrides)


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`~art_rslad.runs.train_run` and :func:`~art_rslad.runs.compare` from the options."""
    return {"resume": args.resume, "overwrite": args.overwrite, "train_size": args.train_size,
            "val_size": args.val_size, "test_size": args.test_size, "attacks": args.attacks,
            "student_options": dict(args.student_option), "checkpoint_interval": args.checkpoint_interval,
            "device": args.device, "data_root": args.data_root, "verbose": not args.quiet}


def guarded(command: str, body: Callable[[], int]) -> int:
    """Run ``body``; turn an interruption or a failed write into a message and an exit status."""
    try:
        return body()
    except KeyboardInterrupt:
        print(f"\nart-rslad {command}: interrupted. The last checkpoint is saved; run the same command with "
              "--resume to continue.", file=sys.stderr)
        return 130
    except OSError as error:
        if isinstance(error, FileNotFoundError | FileExistsError):
            raise
        print(f"art-rslad {command}: error: {error}", file=sys.stderr)
        return 2


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train", help="Train a student with one method (rslad, sat, trades, ...); checkpoints, evaluation, card.",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--method", default="rslad", choices=sorted(TRAINERS), metavar="METHOD",
                        help=f"Training method: {', '.join(sorted(TRAINERS))} (default: rslad).")
    parser.add_argument("--teacher", help="Teacher source, overriding the config's teacher.source "
                                          "('zoo:<name>', 'robustbench:<name>' or a state-dict path).")
    add_run_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.teacher is not None:
        config = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, source=args.teacher))

    def body() -> int:
        with command_world() as world:  # torchrun's process group, or one process
            result = train_run(config, args.out, method=args.method, **run_options(args))
        if world.is_main:
            print((result.out_dir / "results.md").read_text(encoding="utf-8"))
            print(f"Run folder: {result.out_dir} (student.pt + student.json, figures/, run.log)")
        return 0

    return guarded("train", body)
