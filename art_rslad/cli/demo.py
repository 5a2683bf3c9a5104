"""``art-rslad demo``: RSLAD against SAT on Fashion-MNIST in minutes on a CPU, with the paper's full white-box table.

Example::

    art-rslad demo --out art-rslad-demo

Distils an RSLAD student from the shipped robust teacher (or, where none is shipped, a quick teacher trained
first) and trains a SAT student with the same budget, then evaluates the best and last checkpoint of each under
Clean, FGSM, PGD_SAT, PGD_TRADES, CW_inf and standard AutoAttack. Prints the table; the figures and every run
folder are under <out>/compare. Ctrl-C, then the same command with --resume, continues where it stopped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from art_rslad.cli.options import add_runtime_options, guarded, subcommand
from art_rslad.experiments.demo import demo


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subcommand(subparsers, "demo",
                        "RSLAD vs SAT on Fashion-MNIST with the shipped teacher: table and figures in minutes.",
                        __doc__)
    parser.add_argument("--out", type=Path, default=Path("art-rslad-demo"),
                        help="Output folder (default: ./art-rslad-demo).")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="Continue an interrupted demo in --out.")
    mode.add_argument("--overwrite", action="store_true", help="Replace a demo already in --out.")
    parser.add_argument("--train-size", type=int, default=10_000,
                        help="Training images per student (default: 10000).")
    parser.add_argument("--nb-epochs", type=int, default=5, help="Epochs per student (default: 5).")
    parser.add_argument("--test-size", type=int, default=200,
                        help="Test images evaluated, AutoAttack included (default: 200).")
    parser.add_argument("--black-box", action="store_true",
                        help="Also the paper's black-box columns: PGD_SAT and CW_inf transferred from the shipped "
                             "surrogate, and Square (a few minutes more).")
    add_runtime_options(parser, data_root=False)
    return parser


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        started = time.perf_counter()
        result = demo(args.out, train_size=args.train_size, nb_epochs=args.nb_epochs, test_size=args.test_size,
                      resume=args.resume, overwrite=args.overwrite, device=args.device, verbose=not args.quiet,
                      black_box=args.black_box)
        print(result.table.to_markdown())
        print("Figures: " + ", ".join(str(path) for path in result.figures))
        print(f"Run folders: {result.out_dir / 'runs'}; finished in {time.perf_counter() - started:.0f} s.")
        return 0

    return guarded("demo", body)
