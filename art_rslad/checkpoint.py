"""Atomic checkpoint files that load without unpickling arbitrary objects.

:func:`save_atomic`, :func:`write_text_atomic` and :func:`write_bytes_atomic` write to a uniquely named temporary
file in the target folder, flush it to disk and rename it over the target, so an interrupted or failed write (disk
full, a kill) leaves the previous file intact, and two processes writing one file never collide.
:func:`load_file` reads with ``torch.load(..., weights_only=True)`` and turns every failure into a ValueError
that says what is wrong with the file.
"""

from __future__ import annotations

import errno
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

CHECKPOINT_FORMAT = "art-rslad-checkpoint"
CHECKPOINT_VERSION = 1
#: The advice that ends the error of a failed atomic write (a caller that can say better replaces it).
RETRY_ADVICE = "Free disk space (or choose another folder) and try again."


def _umask() -> int:
    """The process's umask (read by setting it, then set back)."""
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` on a uniquely named temporary file beside ``path``, fsync it and rename it over ``path``.

    The unique name lets several processes write the same target at once: the last rename wins, whole.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp's 0600 -> the mode open() gives any other file
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except (OSError, RuntimeError) as error:  # torch's writer reports a full disk as a RuntimeError
        Path(temporary).unlink(missing_ok=True)
        kept = f"the previous {target.name} is intact" if target.exists() else f"no {target.name} was written"
        code = error.errno if isinstance(error, OSError) and error.errno else errno.EIO
        # torch's writer says only where in its C++ it failed: the likely cause, in the user's words
        reason = error.strerror if isinstance(error, OSError) and error.strerror \
            else "the write failed; is the disk full?"
        raise OSError(code, f"Could not write {target} ({reason}); {kept}. {RETRY_ADVICE}") from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def save_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (temporary file, fsync, rename)."""
    return _write_atomic(path, lambda stream: torch.save(obj, stream))


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, like :func:`save_atomic`."""
    return _write_atomic(path, lambda stream: stream.write(text.encode("utf-8")))


def write_bytes_atomic(data: bytes, path: str | os.PathLike[str]) -> Path:
    """Write ``data`` to ``path`` atomically, like :func:`save_atomic`."""
    return _write_atomic(path, lambda stream: stream.write(data))


def load_file(path: str | os.PathLike[str], map_location: str | torch.device | None = "cpu") -> Any:
    """Load a torch file with ``weights_only=True``; a clear ValueError for missing, corrupt or unsafe files."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"No checkpoint or weights file at {source}.")
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{source} was refused without being unpickled (weights_only=True): it is corrupt, or it holds objects "
            "other than tensors and plain containers. Save a plain state dict: torch.save(model.state_dict(), "
            "path)."
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, AttributeError, TypeError, KeyError,
            ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{source} is corrupt or truncated and cannot be read as a torch file ({reason}).") from error


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by an art-rslad trainer; refuse files of any other kind."""
    payload = load_file(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not an art-rslad training checkpoint (a plain state dict loads with "
            "art_rslad.models.load_weights instead)."
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {payload.get('version')}; this art-rslad reads "
                         f"version {CHECKPOINT_VERSION}.")
    return payload
