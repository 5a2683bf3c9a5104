"""The options and helpers that several ``art-rslad`` commands share: the command's parser, the runtime options,
the run options of ``train`` and ``compare``, argparse types for KEY=VALUE and method specs, the config and run
settings built from the options, and the guard that turns an interruption or a failed write into an exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from art_rslad.cli.errors import report_error
from art_rslad.distributed import World, command_world, timeout_of
from art_rslad.evaluation import ATTACKS, DEFAULT_ATTACKS
from art_rslad.experiments.config import Config, get_preset, parse_assignment, preset_names
from art_rslad.experiments.train import RunSettings
from art_rslad.experiments.variants import SPEC_FORM, method_name
from art_rslad.trainers.registry import method_names


def subcommand(subparsers: argparse._SubParsersAction, name: str, summary: str, doc: str) -> argparse.ArgumentParser:
    """The parser of one ``art-rslad`` command: ``summary`` in the command list, ``doc`` (its module docstring,
    examples included) under ``art-rslad NAME --help``."""
    return subparsers.add_parser(name, help=summary, description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def add_runtime_options(parser: argparse.ArgumentParser, *, data_root: bool = True) -> None:
    """Where the data are, which device, whether progress bars show: the options every command that trains or
    attacks takes."""
    if data_root:
        parser.add_argument("--data-root", type=Path, help="Dataset folder (default: automatic lookup).")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="Device (default: cuda when available, else cpu).")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")


def add_process_group_option(parser: argparse.ArgumentParser) -> None:
    """The process group's timeout, for the commands that run under torchrun (``train``, ``compare``, ``eval``)."""
    parser.add_argument("--dist-timeout", type=float, default=None, metavar="MINUTES",
                        help="Under torchrun: how long a rank waits in a collective before the run fails (default: "
                             "torch's, 10 minutes with NCCL); raise it when one rank's evaluation may take longer.")


def args_world(args: argparse.Namespace) -> contextlib.AbstractContextManager[World]:
    """The command's process group (:func:`~art_rslad.distributed.command_world`): its backend follows ``--device``
    (gloo for ``--device cpu`` even where CUDA is available), its timeout ``--dist-timeout``."""
    return command_world(args.device, timeout_of(args.dist_timeout))


def assignment(text: str) -> tuple[str, Any]:
    """argparse type of KEY=VALUE options (:func:`~art_rslad.experiments.config.parse_assignment`)."""
    try:
        return parse_assignment(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def method_spec(text: str) -> str:
    """argparse type of a method spec ``NAME[+igdm][+ema|+swa]``
    (:func:`~art_rslad.experiments.variants.method_name`)."""
    try:
        return method_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def methods_help(default: str | None = None) -> str:
    """The help text of a method option: the registered names and how a variant is written."""
    return (f"Training method{'' if default else 's'}: {', '.join(method_names())}, written {SPEC_FORM} (e.g. "
            f"rslad+igdm, sat+ema)" + (f" (default: {default})." if default else "."))


def add_config_options(parser: argparse.ArgumentParser, *, preset_help: str = "Settings to start from") -> None:
    """The options that give a command its config: a preset or a file, ``--set`` overrides, and the teachers."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=preset_names(), default="fashion-mnist",
                        help=f"{preset_help} (default: fashion-mnist).")
    source.add_argument("--config", type=Path, help="A .toml or .json config file instead of a preset.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a config key, repeatable; dotted keys reach tables (e.g. nb_epochs=2, "
                             "method_lr.rslad=0.1, teacher.source=zoo:fashion-mnist-cnn-large, igdm_alpha=1, "
                             "weight_averaging=ema, method_overrides.adaad.nb_epochs=200).")
    parser.add_argument("--teacher", help="Teacher source, overriding the config's teacher.source "
                                          "('zoo:<name>', 'robustbench:<name>', a run folder or a state-dict path).")
    parser.add_argument("--clean-teacher", help="Clean (naturally trained) teacher source of the methods that distil "
                                                "a clean and a robust teacher (mtard, ciard), overriding the config's "
                                                "clean_teacher; the same kinds of source as --teacher.")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options ``train`` and ``compare`` share: config, overrides, teachers, data sizes, evaluation, folder
    handling."""
    add_config_options(parser)
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
    add_runtime_options(parser)
    add_process_group_option(parser)
    parser.add_argument("--tensorboard", type=Path, metavar="DIR",
                        help="Also write each epoch's metrics as TensorBoard events, one subfolder per run "
                             "(DIR/<method>-seed-<seed>); needs pip install 'art-rslad[tensorboard]'.")


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset or config file with the ``--set`` overrides, then ``--teacher`` and ``--clean-teacher``,
    applied."""
    config = Config.from_file(args.config) if args.config is not None else get_preset(args.preset)
    config = config.with_overrides(args.overrides)
    if args.teacher is not None:
        config = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, source=args.teacher))
    if args.clean_teacher is not None:
        config = dataclasses.replace(config, clean_teacher=args.clean_teacher)
    return config


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The :class:`~art_rslad.experiments.train.RunSettings` of ``train`` and ``compare`` from the options."""
    return RunSettings(train_size=args.train_size, val_size=args.val_size, test_size=args.test_size,
                       attacks=tuple(args.attacks), student_options=dict(args.student_option),
                       checkpoint_interval=args.checkpoint_interval, device=args.device, data_root=args.data_root,
                       resume=args.resume, overwrite=args.overwrite, verbose=not args.quiet,
                       tensorboard=args.tensorboard)


def guarded(command: str, body: Callable[[], int]) -> int:
    """Run ``body``; turn a failed write into a message and an exit status (an interruption: :func:`main`)."""
    try:
        return body()
    except OSError as error:
        if isinstance(error, FileNotFoundError | FileExistsError):
            raise
        return report_error(command, error.strerror or str(error))  # the message, without "[Errno 28]"


__all__ = ["add_process_group_option", "add_run_options", "add_runtime_options", "args_world", "assignment",
           "config_from_args", "guarded", "method_spec", "methods_help", "run_settings", "subcommand"]
