"""The ``art-rslad`` command line: a thin layer over the Python API.

Each sub-command lives in its own module ``art_rslad.cli.<name>`` that defines ``add_parser(subparsers)`` (which
registers the sub-command and its options) and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

from art_rslad.cli.errors import report_error
from art_rslad.experiments.lock import FolderBusyError

# Sub-commands in the order `art-rslad --help` lists them.
COMMANDS: tuple[str, ...] = ("train", "eval", "compare", "tune", "teacher", "demo", "list")


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
