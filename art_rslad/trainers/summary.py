"""Each epoch's record as TensorBoard scalars, when asked: the trainers' ``summary_writer`` option.

The option follows ART's attacks: ``True`` writes into TensorBoard's default ``runs/`` folder, a path into that
folder, and a ``torch.utils.tensorboard.SummaryWriter`` (or anything with its ``add_scalar``) is used as is.
TensorBoard is an optional dependency (``pip install "art-rslad[tensorboard]"``), imported only when a folder is
asked for.
"""

from __future__ import annotations

import os
from typing import Any, Union

#: The forms the ``summary_writer`` option takes: None or False (off), True, a log folder, or a writer.
SummaryWriterOption = Union[str, "os.PathLike[str]", bool, Any, None]

INSTALL_HINT = 'pip install "art-rslad[tensorboard]"'


class EpochSummary:
    """Writes the epoch records of one run; the writer (and its folder) is made at the first record, so building a
    trainer writes nothing, and only the process that records (rank 0) ever makes one."""

    def __init__(self, option: SummaryWriterOption) -> None:
        if isinstance(option, (str, os.PathLike)) or option is True:
            self._writer_class = _summary_writer_class()
            self._log_dir: str | None = None if option is True else os.fspath(option)
            self.writer: Any = None
        elif callable(getattr(option, "add_scalar", None)):
            self.writer = option
        else:
            raise TypeError("`summary_writer` must be None, a bool, a log folder or a SummaryWriter (an object with "
                            f"add_scalar), got {type(option).__name__}.")

    def write(self, record: dict[str, float]) -> None:
        """Every number of ``record`` but its epoch as a scalar at step ``record["epoch"]``; flushed."""
        if self.writer is None:
            self.writer = self._writer_class(log_dir=self._log_dir)
        for key, value in record.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, int(record["epoch"]))
        self.writer.flush()


def epoch_summary(option: SummaryWriterOption) -> EpochSummary | None:
    """The run's :class:`EpochSummary`, or None when ``option`` is None or False."""
    return None if option is None or option is False else EpochSummary(option)


def _summary_writer_class() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional dependency: only when events are asked for
    except ImportError as error:
        raise ImportError(f"`summary_writer` (--tensorboard) needs TensorBoard, the optional extra: {INSTALL_HINT} "
                          f"({error}).") from error
    return SummaryWriter
