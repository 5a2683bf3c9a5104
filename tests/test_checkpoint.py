"""Checkpoint files: a failed write (torch reports a full disk as a RuntimeError) says so and keeps the old file."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import torch

from art_rslad.checkpoint import load_file, save_atomic, write_text_atomic


def test_a_full_disk_during_torch_save_names_the_file_and_keeps_the_previous_one(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "last.pt"
    save_atomic({"epoch": 1}, path)

    def full_disk(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        stream.write(b"half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=r"Could not write .*last\.pt \(the write failed; is the disk full\?\); the "
                       r"previous last\.pt is intact.*Free disk space") as raised:
        save_atomic({"epoch": 2}, path)
    assert raised.value.errno == errno.EIO and "enforce fail" not in str(raised.value)
    monkeypatch.undo()
    assert load_file(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_a_first_write_that_fails_says_nothing_was_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def no_space(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(OSError, match=r"no best\.pt was written") as raised:
        save_atomic({}, tmp_path / "best.pt")
    assert raised.value.errno == errno.ENOSPC


@pytest.mark.parametrize("content", [b"not a torch file at all", b"PK\x03\x04 truncated zip"])
def test_a_corrupt_file_is_refused_without_advice_to_unpickle_it(tmp_path: Path, content: bytes):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="corrupt") as raised:
        load_file(path)
    assert "weights_only=False" not in str(raised.value)


def test_an_unsafe_pickle_is_refused_without_advice_to_unpickle_it(tmp_path: Path):
    path = tmp_path / "evil.pt"
    torch.save({"payload": Path("x")}, path)  # an arbitrary object: weights_only refuses it
    with pytest.raises(ValueError, match="refused without being unpickled") as raised:
        load_file(path)
    assert "weights_only=False" not in str(raised.value)


def test_atomic_files_get_the_mode_of_any_other_file(tmp_path: Path):
    """mkstemp creates 0600; an atomic write gives the file the mode open() would (0666 less the umask)."""
    mask = os.umask(0o022)
    try:
        save_atomic({"a": 1}, tmp_path / "last.pt")
        write_text_atomic("{}", tmp_path / "run.json")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(mask)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    assert modes == {"last.pt": 0o644, "run.json": 0o644, "plain.txt": 0o644}
