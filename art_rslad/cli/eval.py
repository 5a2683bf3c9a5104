"""``art-rslad eval``: the paper's robustness table for one model; printed, and saved as <out>.md and <out>.json.

Examples::

    art-rslad eval runs/rslad/best.pt --model cnn-small --dataset fashion-mnist --attacks clean pgd_sat autoattack
    art-rslad eval zoo:fashion-mnist-cnn-large --dataset fashion-mnist --nb-images 200
    art-rslad eval student.pt --model resnet18 --dataset cifar10 --attacks clean transfer_pgd transfer_cw \\
        --surrogate robustbench:Zhang2019Theoretically

The JSON file is updated after each attack; ``--resume`` continues an interrupted evaluation from it.
Under ``torchrun --nproc-per-node N -m art_rslad eval ...`` each rank attacks its own block of the inputs and
rank 0 writes the merged report (docs/distributed.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from art_rslad.cli.options import add_process_group_option, add_runtime_options, args_world, assignment, subcommand
from art_rslad.data import dataset_info, dataset_names, load_dataset
from art_rslad.distributed import World
from art_rslad.evaluation import (
    ATTACKS,
    DEFAULT_ATTACKS,
    DEFENCE_VIEWS,
    PREPROCESSING_DEFENCES,
    RobustnessReport,
    evaluate_preprocessing_defence,
    evaluate_robustness_distributed,
    view_state_path,
)
from art_rslad.experiments.folders import held
from art_rslad.experiments.teachers import load_teacher
from art_rslad.models import list_models, resolve_device


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subcommand(subparsers, "eval",
                        "Evaluate a model under the paper's white-box and black-box attacks.",
                        __doc__)
    parser.add_argument("checkpoint", help="State dict or checkpoint file, 'zoo:<name>' or 'robustbench:<name>'.")
    parser.add_argument("--model", choices=list_models(),
                        help="Architecture of a file checkpoint (not needed when a model card lies beside it).")
    parser.add_argument("--model-option", type=assignment, action="append", default=[], metavar="KEY=VALUE",
                        help="Architecture option, repeatable (e.g. width=32, image_size=8).")
    parser.add_argument("--dataset", choices=dataset_names(), required=True, help="Dataset of the test images.")
    parser.add_argument("--split", choices=("test", "train"), default="test", help="Split (default: test).")
    parser.add_argument("--nb-images", type=int, default=1000,
                        help="Evaluate the first N images of the split (default: 1000).")
    parser.add_argument("--eps", type=float, help="L-inf budget in [0, 1] pixels (default: the dataset's, "
                                                  "8/255 for CIFAR and SVHN, 0.1 for the 28x28 sets).")
    parser.add_argument("--attacks", nargs="+", choices=list(ATTACKS), default=list(DEFAULT_ATTACKS),
                        metavar="ATTACK", help=f"Attacks in order, from {', '.join(ATTACKS)} "
                                               f"(default: {' '.join(DEFAULT_ATTACKS)}).")
    parser.add_argument("--surrogate", help="Model the transfer attacks are crafted on (same forms as checkpoint).")
    parser.add_argument("--surrogate-model", choices=list_models(), help="Architecture of a file surrogate.")
    parser.add_argument("--surrogate-option", type=assignment, action="append", default=[], metavar="KEY=VALUE",
                        help="Architecture option of the surrogate, repeatable.")
    parser.add_argument("--defence", choices=list(PREPROCESSING_DEFENCES),
                        help="Evaluate the model behind this ART preprocessing defence, through the defence's exact "
                             "gradient and by BPDA side by side (docs/art-defences.md); each view resumes from "
                             "<out>.exact.json / <out>.bpda.json.")
    parser.add_argument("--n-queries", type=int, default=5000, help="Query budget of square (default: 5000).")
    parser.add_argument("--batch-size", type=int, default=128, help="Batch size (default: 128).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the attacks' random starts (default: 0).")
    parser.add_argument("--out", type=Path, default=Path("eval"),
                        help="Write <out>.md and <out>.json (default: ./eval).")
    parser.add_argument("--resume", action="store_true", help="Continue the evaluation saved in <out>.json.")
    add_runtime_options(parser)
    add_process_group_option(parser)
    return parser


def _evaluate(args: argparse.Namespace, world: World, json_path: Path) -> RobustnessReport:
    """Load the model(s) and the data, run the attacks (resuming from ``json_path``), and write the report there."""
    device = resolve_device(args.device)
    classifier = load_teacher(args.checkpoint, args.dataset, model=args.model, model_options=dict(args.model_option),
                              device=device)
    surrogate = None if args.surrogate is None else load_teacher(
        args.surrogate, args.dataset, model=args.surrogate_model, model_options=dict(args.surrogate_option),
        device=device)
    x, y = load_dataset(args.dataset, args.split, root=args.data_root)
    eps = dataset_info(args.dataset).eps if args.eps is None else args.eps
    options = {"eps": eps, "attacks": args.attacks, "batch_size": args.batch_size, "surrogate": surrogate,
               "n_queries": args.n_queries, "seed": args.seed, "verbose": not args.quiet}
    if args.defence is not None:
        report = evaluate_preprocessing_defence(classifier, args.defence, x[:args.nb_images], y[:args.nb_images],
                                                state_path=json_path, **options)
        if world.is_main:
            report.to_json(json_path)
    else:
        report = evaluate_robustness_distributed(classifier, x[:args.nb_images], y[:args.nb_images],
                                                 state_path=json_path, **options)
        if world.is_distributed and world.is_main:
            report.to_json(json_path)  # the merged report; each rank resumes from its own shard's file
    return report


def run(args: argparse.Namespace) -> int:
    if args.nb_images < 1:
        raise ValueError(f"--nb-images must be >= 1, got {args.nb_images}.")
    json_path, markdown_path = (args.out.with_name(f"{args.out.name}.{suffix}") for suffix in ("json", "md"))
    views = () if args.defence is None else DEFENCE_VIEWS
    existing = [path for path in (json_path, *(view_state_path(json_path, view) for view in views)) if path.exists()]
    if existing and not args.resume:
        raise FileExistsError(f"{existing[0]} exists; pass --resume to continue that evaluation or choose another "
                              "--out.")
    # Joined before any classifier is built (under torchrun on CUDA each rank takes its own GPU); left at the end.
    # The output folder is checked and held (rank 0) before anything is loaded or attacked.
    with args_world(args) as world, held(world, args.out.parent, "out_dir"):
        report = _evaluate(args, world, json_path)
        if not world.is_main:
            return 0
        table = f"{args.checkpoint} on {args.dataset} ({args.split})\n\n{report.to_markdown()}"
        markdown_path.write_text(table)
    print(table)
    print(f"Saved {markdown_path} and {json_path}")
    return 0
