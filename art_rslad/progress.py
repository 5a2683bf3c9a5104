"""Whether progress bars show: the one rule shared by training loops and evaluation."""

from __future__ import annotations

import sys

from tqdm import autonotebook, std


def show_progress(verbose: bool) -> bool:
    """Progress bars only where they redraw in place: a terminal or a notebook. In a log file or CI they would pile
    up carriage returns; there the log's line per epoch and per attack stands in for them."""
    return verbose and (sys.stderr.isatty() or autonotebook.tqdm is not std.tqdm)  # not std: a notebook's
