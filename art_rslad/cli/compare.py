"""``art-rslad compare``: several methods, same teacher, student, data and budget -> the paper's table and figures.

Examples::

    art-rslad compare --methods sat trades rslad --seeds 0 1 2 --preset fashion-mnist --out runs/study
    art-rslad compare --methods sat trades rslad --seeds 0 1 2 --preset fashion-mnist --out runs/study --resume
    art-rslad compare --methods sat sat+ema rslad rslad+igdm adaiad peeraid --preset fashion-mnist --out runs/new
    art-rslad compare --methods sat rslad --preset fashion-mnist --black-box --out runs/black-box
    art-rslad compare --methods rslad mtard ciard --teacher runs/my-teacher --clean-teacher runs/my-clean \\
        --preset fashion-mnist --out runs/two-teachers   # teachers from run folders (also zoo:, robustbench:)
    torchrun --standalone --nproc-per-node 8 -m art_rslad compare --methods sat rslad \\
        --preset cifar10-resnet18 --set batch_size=16 --out runs/study   # 8 GPUs, global batch 128

Each (method, seed) is a run folder under <out>/runs/<method>/seed-<seed> (runs/rslad+igdm/seed-0 for a variant)
trained with the method's learning rate and per-method settings from the preset; a method is written
NAME[+igdm][+ema|+swa] (see `art-rslad train --help`). The table (best and last checkpoint x Clean, FGSM,
PGD_SAT, PGD_TRADES, CW_inf, AA, mean ± std over seeds, then each method's worst-class accuracy) goes to
<out>/comparison.md and .json, the figures to <out>/figures/. --black-box adds the paper's black-box columns:
PGD_SAT and CW_inf crafted on the config's transfer_surrogate (loaded once) and the query-based Square attack.
--resume continues a compare whose process died: finished runs and evaluations are reused, methods and seeds may be
added. Under torchrun every run is trained and evaluated by all ranks (batch_size per rank) and rank 0 alone writes
the folders (docs/distributed.md).
"""

from __future__ import annotations

import argparse
import dataclasses

from art_rslad.cli.options import (
    add_run_options,
    args_world,
    config_from_args,
    guarded,
    methods_help,
    run_settings,
    subcommand,
)
from art_rslad.experiments.compare import compare
from art_rslad.report import PAPER_BLACK_BOX_ATTACKS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subcommand(subparsers, "compare",
                        "Train and evaluate several methods over seeds; the paper's table and figures.",
                        __doc__)
    parser.add_argument("--methods", nargs="+", required=True, metavar="METHOD",
                        help=methods_help())
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED", help="Seeds (default: 0).")
    parser.add_argument("--black-box", action="store_true",
                        help=f"Also the paper's black-box attacks: {' '.join(PAPER_BLACK_BOX_ATTACKS)} (the transfer "
                             "attacks are crafted on the config's transfer_surrogate).")
    add_run_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    settings = run_settings(args)
    if args.black_box:
        attacks = tuple(dict.fromkeys([*settings.attacks, *PAPER_BLACK_BOX_ATTACKS]))
        settings = dataclasses.replace(settings, attacks=attacks)

    def body() -> int:
        with args_world(args) as world:  # torchrun's process group, or one process
            result = compare(config, args.out, args.methods, args.seeds, settings)
        if world.is_main:
            print(result.table.to_markdown())
            print("Figures: " + ", ".join(str(path) for path in result.figures))
        return 0

    return guarded("compare", body)
