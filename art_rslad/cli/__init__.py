"""The ``art-rslad`` command line: a thin layer over the Python API.

Each sub-command lives in its own module ``art_rslad.cli.<name>`` that defines ``add_parser(subparsers)`` (which
registers the sub-command and its options) and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

from art_rslad.experiments.lock import FolderBusyError

# Sub-commands in the order `art-rslad --help` lists them.
COMMANDS: tuple[str, ...] = ("train", "eval", "compare", "tune", "teacher", "demo", "list")
#: The Python API's words in its error messages -> the command line's, applied to every error the CLI prints.
CLI_WORDS: dict[str, str] = {"resume=True": "--resume", "overwrite=True": "--overwrite", "`out_dir`": "--out"}


def cli_wording(error: BaseException) -> str:
    """The text of ``error`` with the Python names of :data:`CLI_WORDS` replaced by the command line's."""
    text = str(error)
    for python, flag in CLI_WORDS.items():
        text = text.replace(python, flag)
    return text


def report_error(command: str, error: BaseException) -> int:
    """Print ``error`` as the CLI's one error line (in the command line's words); return the exit status 2."""
    print(f"art-rslad {command}: error: {cli_wording(error)}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="art-rslad",
        description="Robust soft label adversarial distillation (RSLAD) and its baselines on ART.",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="Verbosity of the log printed to stderr (default: INFO).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = import_module(f"art_rslad.cli.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError, FolderBusyError) as error:
        return report_error(args.command, error)
