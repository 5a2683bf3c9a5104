"""Checkpoint files: a failed write (torch reports a full disk as a RuntimeError) says so and keeps the old file."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
import torch

from art_rslad.checkpoint import load_file, save_atomic


def test_a_full_disk_during_torch_save_names_the_file_and_keeps_the_previous_one(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "last.pt"
    save_atomic({"epoch": 1}, path)

    def full_disk(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        stream.write(b"half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=r"Could not write .*last\.pt .*file write failed.*previous last\.pt is intact"
                       r".*Free disk space") as raised:
        save_atomic({"epoch": 2}, path)
    assert raised.value.errno == errno.EIO
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
