"""``art-rslad tune``: choose each method's learning rate by one rule on the validation split.

Example::

    art-rslad tune --preset fashion-mnist --methods sat trades ard iad adaad rslad --out runs/tune
    art-rslad tune --preset fashion-mnist --methods adaiad peeraid rslad+igdm sat+ema --out runs/tune-new

Prints the validation PGD-10 accuracy of every (method, lr) and the chosen lr per method, as ``--set`` options
to paste into ``art-rslad train`` / ``compare``; everything is also in ``<out>/tuning.json``. Interrupted tunings
continue where they stopped when run again with the same options. Why one rule for every method: see
docs/decisions.md, "Learning rate per method".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from art_rslad.cli.options import add_config_options, add_runtime_options, assignment, config_from_args, subcommand
from art_rslad.experiments.tune import DEFAULT_GRID, RULE, select_learning_rates


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subcommand(subparsers, "tune", "Choose each method's learning rate on the validation split.",
                        f"{__doc__.splitlines()[0]} Rule: {RULE}")
    add_config_options(parser, preset_help="Settings to tune")
    parser.add_argument("--methods", nargs="+", required=True, metavar="METHOD",
                        help="Methods to tune, written NAME[+igdm][+ema|+swa] (e.g. rslad, rslad+igdm, sat+ema).")
    parser.add_argument("--grid", nargs="+", type=float, default=list(DEFAULT_GRID), metavar="LR",
                        help=f"Learning rates tried (default: {' '.join(map(str, DEFAULT_GRID))}).")
    parser.add_argument("--epochs", type=int, default=2, help="Epochs of each short run (default: 2).")
    parser.add_argument("--train-size", type=int, default=10_000,
                        help="Training images of each short run (default: 10000).")
    parser.add_argument("--val-size", type=int, default=1000, help="Validation images (default: 1000).")
    parser.add_argument("--student-option", type=assignment, action="append", default=[], metavar="KEY=VALUE",
                        help="Option of the student architecture, repeatable (e.g. width=4).")
    parser.add_argument("--out", type=Path, required=True, help="Folder of the short runs and tuning.json.")
    add_runtime_options(parser, data_root=False)
    return parser


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = select_learning_rates(config, args.methods, args.out, grid=args.grid, nb_epochs=args.epochs,
                                   train_size=args.train_size, val_size=args.val_size,
                                   student_options=dict(args.student_option), device=args.device,
                                   verbose=not args.quiet)
    lrs = [f"{lr:g}" for lr in result["settings"]["grid"]]
    print("| method | " + " | ".join(f"lr {lr}" for lr in lrs) + " | chosen |")
    print("|---|" + "---|" * (len(lrs) + 1))
    for method, scores in result["val_pgd"].items():
        cells = " | ".join(f"{100 * scores[lr]:.2f}" for lr in lrs)
        print(f"| {method} | {cells} | {result['chosen'][method]:g} |")
    print(" ".join(f"--set method_lr.{method}={lr:g}" for method, lr in result["chosen"].items()))
    return 0
