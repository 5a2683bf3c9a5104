"""The ``art-rslad`` command line: a thin layer over the Python API.

Each sub-command lives in its own module ``art_rslad.cli.<name>`` that defines ``add_parser(subparsers)`` (which
registers the sub-command and its options) and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from importlib import import_module

from art_rslad.cli.errors import report_error
from art_rslad.experiments.lock import FolderBusyError
from art_rslad.trainers.interrupt import terminate_as_interrupt

# Sub-commands in the order `art-rslad --help` lists them.
COMMANDS: tuple[str, ...] = ("train", "eval", "compare", "tune", "teacher", "demo", "list")

# reST in the module docstrings used as descriptions: ``x`` and `x`, :func:`x` (and :class:, :meth:, ...), "Examples::"
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")


def plain_text(text: str | None) -> str | None:
    """The text of a reST docstring as plain text for ``--help``: roles and literal markup dropped, ``::`` -> ``:``."""
    if text is None:
        return None
    text = _ROLE.sub(lambda match: match.group(1).rsplit(".", 1)[-1], text)
    text = _LITERAL.sub(lambda match: match.group(1) or match.group(2), text)
    return re.sub(r"::$", ":", text, flags=re.MULTILINE)


def _plain_help(parser: argparse.ArgumentParser) -> None:
    parser.description = plain_text(parser.description)
    for action in parser._actions:
        action.help = plain_text(action.help)


def quiet_art(verbose: bool) -> None:
    """ART logs at INFO on every classifier it builds and every attack it runs ("Inferred 2 hidden layers...",
    "Success rate of FGM attack: ..." against ART's own targets, not our accuracy): its loggers (``art`` and its
    children) are kept at WARNING unless ``verbose``."""
    logging.getLogger("art").setLevel(logging.NOTSET if verbose else logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="art-rslad",
        description="Robust soft label adversarial distillation (RSLAD) and its baselines on ART.",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="Verbosity of the log printed to stderr (default: INFO). ART's own INFO lines "
                             "are shown only with --verbose or DEBUG.")
    parser.add_argument("--verbose", action="store_true",
                        help="Also show ART's INFO log (each classifier built, each attack's success rate).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = import_module(f"art_rslad.cli.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
        _plain_help(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    quiet_art(args.verbose or args.log_level == "DEBUG")
    try:
        with terminate_as_interrupt():  # SIGTERM (a scheduler's stop, torchrun's to each rank) acts as Ctrl-C
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"\nart-rslad {args.command}: interrupted. What was finished is saved; run the same command with "
              "--resume to continue.", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, ImportError, FolderBusyError) as error:
        return report_error(args.command, error)
