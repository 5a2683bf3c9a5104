"""An exclusive lock on a run folder, held for a whole train, resume, compare or eval.

Two processes writing into one folder would mix two runs' files while both exit 0. :class:`FolderLock` takes an
advisory ``flock`` on ``<folder>/.art-rslad.lock`` (the kernel releases it when the holder dies, however it dies)
and writes the holder's pid into the file, so that a second process is refused at once with a message naming the
holder, and a lock left by a killed process is taken over with a warning.
"""

from __future__ import annotations

import datetime
import fcntl
import logging
import os
import socket
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

LOCK_NAME = ".art-rslad.lock"
_HELD: dict[Path, int] = {}  # folder -> how often this process entered its lock


class FolderBusyError(RuntimeError):
    """Another live process holds the run folder's lock."""


class FolderLock:
    """``with FolderLock(folder): ...`` holds ``folder`` for this process; re-entrant within one process.

    :param folder: The run or comparison folder (created if missing).
    :param argument: How the folder was given, for the error message (e.g. ``--out``).
    """

    def __init__(self, folder: str | os.PathLike[str], argument: str = "out_dir") -> None:
        self.folder = Path(folder).resolve()
        self.argument = argument
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_NAME

    def __enter__(self) -> FolderLock:
        if _HELD.get(self.folder, 0):
            _HELD[self.folder] += 1
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd) or "another process"
            os.close(fd)
            raise FolderBusyError(
                f"`{self.argument}` {self.folder} is in use by {holder}. Wait for that run to finish (or stop it), "
                "or choose another folder.") from None
        previous = _read(fd)
        if previous:
            logger.warning("Took over the lock of %s left by %s, which is no longer running.", self.folder, previous)
        os.ftruncate(fd, 0)
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()} since {started}".encode(), 0)
        self._fd = fd
        _HELD[self.folder] = 1
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _HELD[self.folder] -= 1
        if _HELD[self.folder] or self._fd is None:
            return
        del _HELD[self.folder]
        # Emptied, not deleted: a process waiting on this inode must not lock a file that no longer has a name.
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _read(fd: int) -> str:
    return os.pread(fd, 512, 0).decode(errors="replace").strip()


__all__ = ["LOCK_NAME", "FolderBusyError", "FolderLock"]
