"""``art-rslad compare``: several methods, same teacher, student, data and budget -> the paper's table and figures.

Examples::

    art-rslad compare --methods sat trades rslad --seeds 0 1 2 --preset fashion-mnist --out runs/study
    art-rslad compare --methods sat trades rslad --seeds 0 1 2 --preset fashion-mnist --out runs/study --resume
    torchrun --standalone --nproc-per-node 8 -m art_rslad compare --methods sat rslad \\
        --preset cifar10-resnet18 --set batch_size=16 --out runs/study   # 8 GPUs, global batch 128

Each (method, seed) is a run folder under <out>/runs/<method>/seed-<seed> trained with the method's learning rate
from the preset. The table (best and last checkpoint x Clean, FGSM, PGD_SAT, PGD_TRADES, CW_inf, AA, mean ± std
over seeds) goes to <out>/comparison.md and .json, the figures to <out>/figures/. --resume continues a compare whose
process died: finished runs and evaluations are reused, methods and seeds may be added. Under torchrun every run
is trained and evaluated by all ranks (batch_size per rank) and rank 0 alone writes the folders
(docs/distributed.md).
"""

from __future__ import annotations

import argparse

from art_rslad.cli.train import add_run_options, config_from_args, guarded, run_options
from art_rslad.distributed import command_world
from art_rslad.runs import compare
from art_rslad.trainers.registry import METHODS as TRAINERS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare", help="Train and evaluate several methods over seeds; the paper's table and figures.",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", nargs="+", required=True, metavar="METHOD",
                        help=f"Training methods, from: {', '.join(sorted(TRAINERS))}.")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED", help="Seeds (default: 0).")
    add_run_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)

    def body() -> int:
        with command_world() as world:  # torchrun's process group, or one process
            result = compare(config, args.methods, args.out, seeds=args.seeds, **run_options(args))
        if world.is_main:
            print(result.table.to_markdown())
            print("Figures: " + ", ".join(str(path) for path in result.figures))
        return 0

    return guarded("compare", body)
