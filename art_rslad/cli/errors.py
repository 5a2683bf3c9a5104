"""How the command line prints an error: one line, in the command line's words rather than the Python API's."""

from __future__ import annotations

import sys

#: The Python API's words in its error messages -> the command line's, applied to every error the CLI prints.
CLI_WORDS: dict[str, str] = {"resume=True": "--resume", "overwrite=True": "--overwrite", "`out_dir`": "--out",
                             "e.g. model='resnet18'": "e.g. --model resnet18", "use device='cpu'": "use --device cpu"}


def cli_wording(error: BaseException | str) -> str:
    """The text of ``error`` with the Python names of :data:`CLI_WORDS` replaced by the command line's."""
    text = str(error)
    for python, flag in CLI_WORDS.items():
        text = text.replace(python, flag)
    return text


def report_error(command: str, error: BaseException | str) -> int:
    """Print ``error`` as the CLI's one error line (in the command line's words); return the exit status 2."""
    print(f"art-rslad {command}: error: {cli_wording(error)}", file=sys.stderr)
    return 2


__all__ = ["CLI_WORDS", "cli_wording", "report_error"]
