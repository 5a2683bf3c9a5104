"""``art-rslad train``: train one student with one method into a run folder; best and last checkpoints evaluated.

Examples::

    art-rslad train --method rslad --preset fashion-mnist --out runs/rslad
    art-rslad train --method sat --config my.toml --set nb_epochs=20 --set method_lr.sat=0.1 --out runs/sat
    art-rslad train --method rslad --preset fashion-mnist --out runs/rslad --resume   # after an interruption
    art-rslad train --method rslad+igdm --preset fashion-mnist --out runs/rslad-igdm   # RSLAD with IGDM's term
    art-rslad train --method sat --set weight_averaging=ema --preset fashion-mnist --out runs/sat-ema
    art-rslad train --method mtard --preset fashion-mnist --out runs/mtard   # a robust and a clean teacher
    art-rslad train --method ciard --preset cifar10-resnet18 --clean-teacher robustbench:Standard --out runs/ciard
    torchrun --standalone --nproc-per-node 8 -m art_rslad train --method rslad --preset cifar10-resnet18 \\
        --set batch_size=16 --out runs/rslad   # 8 GPUs; global batch 8 x 16 = 128, the paper's

A method is written NAME[+igdm][+ema|+swa]: +igdm adds IGDM's term to a distillation method (igdm_alpha, 1 unless
the config sets it), +ema / +swa average the student's weights (methods of the shared loop). The method trains with
its per-method settings from the config (method_overrides: e.g. its official schedule). A method that trains a
network beside the student saves it under its name (PeerAiD: peer.pt, CIARD: teacher.pt); some run in one process
only. MTARD and CIARD also read a clean teacher (the config's clean_teacher, or --clean-teacher).

Under torchrun each rank trains on its shard of every epoch (the config's batch_size is per rank: the global batch
is N x batch_size) and attacks its block of the test inputs; rank 0 alone writes the run folder. See
docs/distributed.md.

The folder gets run.json, config.toml, run.log, metrics.jsonl, last.pt, best.pt (best = highest PGD-10 accuracy on
a validation split of the training set), eval_best.npz, eval_last.npz, results.md, student.pt with its model
card student.json, and figures/. Ctrl-C saves last.pt; --resume continues to the same weights.
"""

from __future__ import annotations

import argparse

from art_rslad.cli.options import (
    add_run_options,
    args_world,
    config_from_args,
    guarded,
    method_spec,
    methods_help,
    run_settings,
    subcommand,
)
from art_rslad.experiments.train import train_run


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subcommand(subparsers, "train",
                        "Train a student with one method (rslad, sat, rslad+igdm, ...); checkpoints, evaluation, card.",
                        __doc__)
    parser.add_argument("--method", default="rslad", type=method_spec, metavar="METHOD",
                        help=methods_help("rslad"))
    add_run_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    settings = run_settings(args)

    def body() -> int:
        with args_world(args) as world:  # torchrun's process group, or one process
            result = train_run(config, args.out, args.method, settings)
        if world.is_main:
            print((result.out_dir / "results.md").read_text(encoding="utf-8"))
            print(f"Run folder: {result.out_dir} (student.pt + student.json, figures/, run.log)")
        return 0

    return guarded("train", body)
