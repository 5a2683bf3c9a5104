"""``art-rslad teacher``: train a robust teacher (TRADES or SAT) or a clean one (natural training), or import a
state dict; evaluate it and write its card.

Examples (the shipped Fashion-MNIST teachers, robust and clean)::

    art-rslad teacher --preset fashion-mnist --out art_rslad/zoo --name fashion-mnist-cnn-large
    art-rslad teacher --preset fashion-mnist --method natural --out art_rslad/zoo --name fashion-mnist-cnn-large-clean
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from pathlib import Path

from art_rslad.cli.options import add_runtime_options, subcommand
from art_rslad.data import dataset_info
from art_rslad.experiments.config import Config, get_preset, preset_names
from art_rslad.experiments.lock import FolderLock
from art_rslad.experiments.teachers import (
    TEACHER_METHODS,
    evaluate_teacher,
    load_teacher,
    save_teacher,
    train_teacher,
)
from art_rslad.models import list_models, resolve_device


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subcommand(subparsers, "teacher",
                        "Train a robust (TRADES/SAT) or clean (natural) teacher, or import one; write its card.",
                        __doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=preset_names(), default="fashion-mnist",
                        help="Settings to start from (default: fashion-mnist).")
    source.add_argument("--config", type=Path, help="A .toml or .json config file instead of a preset.")
    parser.add_argument("--import", dest="import_path", type=Path,
                        help="Import this state dict instead of training (evaluated and carded as is).")
    parser.add_argument("--model", choices=list_models(), help="Teacher architecture (default: the config's).")
    parser.add_argument("--method", choices=TEACHER_METHODS,
                        help="Training method: trades or sat (robust), natural (clean; keeps its last epoch) "
                             "(default: the config's).")
    parser.add_argument("--nb-epochs", type=int, help="Training epochs (default: the config's teacher.nb_epochs).")
    parser.add_argument("--lr", type=float, help="SGD learning rate (default: the config's teacher.lr).")
    parser.add_argument("--beta", type=float, help="TRADES beta (default: the config's teacher.beta).")
    parser.add_argument("--seed", type=int, help="Seed (default: the config's).")
    parser.add_argument("--out", type=Path, required=True, help="Folder for <name>.pt and <name>.json.")
    parser.add_argument("--name", help="Model name (default: <dataset>-<model>).")
    parser.add_argument("--run-dir", type=Path, help="Checkpoint folder of training (default: <out>/<name>-run).")
    parser.add_argument("--resume", action="store_true", help="Continue an interrupted run from its last.pt.")
    parser.add_argument("--nb-val", type=int, default=1000,
                        help="Held-out validation images attacked after each epoch (default: 1000).")
    parser.add_argument("--nb-eval", type=int, default=1000,
                        help="Test images for the clean and PGD accuracy in the card (default: 1000).")
    parser.add_argument("--nb-eval-autoattack", type=int, default=200,
                        help="Test images for standard AutoAttack in the card; 0 skips it (default: 200).")
    add_runtime_options(parser)
    return parser


def _config(args: argparse.Namespace) -> Config:
    config = Config.from_file(args.config) if args.config is not None else get_preset(args.preset)
    teacher = dataclasses.replace(
        config.teacher,
        **{key: value for key, value in (("model", args.model), ("method", args.method),
                                         ("nb_epochs", args.nb_epochs), ("lr", args.lr), ("beta", args.beta))
           if value is not None},
    )
    return dataclasses.replace(config, teacher=teacher, seed=config.seed if args.seed is None else args.seed)


# (option, attribute) pairs in the order the recorded command lists them.
_RECORDED = (("--preset", "preset"), ("--config", "config"), ("--import", "import_path"), ("--model", "model"),
             ("--method", "method"), ("--nb-epochs", "nb_epochs"), ("--lr", "lr"), ("--beta", "beta"),
             ("--seed", "seed"), ("--out", "out"), ("--name", "name"), ("--run-dir", "run_dir"),
             ("--nb-val", "nb_val"), ("--nb-eval", "nb_eval"), ("--nb-eval-autoattack", "nb_eval_autoattack"),
             ("--data-root", "data_root"), ("--device", "device"))


def recorded_command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, every option spelled out (written into the model card)."""
    words = ["art-rslad", "teacher"]
    for option, attribute in _RECORDED:
        value = getattr(args, attribute)
        if value is not None and not (attribute == "preset" and args.config is not None):
            words += [option, str(value)]
    return shlex.join(words + (["--resume"] if args.resume else []))


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    device = resolve_device(args.device)
    name = args.name or f"{dataset_info(config.dataset).name}-{config.teacher.model}"
    command = recorded_command(args)
    with FolderLock(args.out, "out_dir"):  # one process writes <out> (and its default run folder) at a time
        if args.import_path is not None:
            classifier = load_teacher(str(args.import_path), config.dataset, model=config.teacher.model, device=device)
            training = {"imported_from": str(args.import_path), "command": command}
        else:
            run_dir = args.run_dir or args.out / f"{name}-run"
            classifier, training = train_teacher(config, device=device, run_dir=run_dir, resume=args.resume,
                                                 nb_val=args.nb_val, data_root=args.data_root, verbose=not args.quiet)
            training["command"] = command
        metrics = evaluate_teacher(classifier, config.dataset, nb_images=args.nb_eval,
                                   nb_images_autoattack=args.nb_eval_autoattack, eps=config.eps, seed=config.seed,
                                   data_root=args.data_root)
        for entry in metrics.values():
            entry["command"] = command
        card = save_teacher(classifier, args.out, name, architecture=config.teacher.model, dataset=config.dataset,
                            eps=config.eps, metrics=metrics, training=training, seed=config.seed)
    print(f"{args.out / card.weights}  sha256 {card.sha256}")
    for attack, entry in metrics.items():
        print(f"  {attack:>12}: {100 * entry['accuracy']:.2f}% on {entry['nb_images']} test images")
    return 0
