"""The run harness holds its folder's lock: a second process on a run, compare or eval folder is refused at once,
naming the holder, before anything in the folder changes; the lock file never counts as the folder's content."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_cli_runs import train
from test_lock import _holder
from test_runs import run, tiny_config

from art_rslad.cli import CLI_WORDS, cli_wording
from art_rslad.experiments.lock import LOCK_NAME, FolderBusyError


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*")
            if path.is_file() and path.name != LOCK_NAME}


def test_a_run_into_a_held_folder_fails_at_once_and_changes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    run(folder, config=tiny_config(nb_epochs=1))
    before = _contents(folder)
    holder = _holder(folder)
    try:
        started = time.perf_counter()
        with pytest.raises(FolderBusyError, match=rf"`out_dir` .* is in use by process {holder.pid} "):
            run(folder, config=tiny_config(nb_epochs=1), overwrite=True)
        assert time.perf_counter() - started < 1.0
        assert _contents(folder) == before
    finally:
        holder.kill()
        holder.wait()


def test_the_cli_reports_a_held_folder_as_its_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tiny_config().save(tmp_path / "tiny.json")
    holder = _holder(tmp_path / "run")
    try:
        assert train(config_file, tmp_path / "run") == 2
    finally:
        holder.kill()
        holder.wait()
    error = capsys.readouterr().err
    assert f"art-rslad train: error: --out {(tmp_path / 'run').resolve()} is in use by process {holder.pid}" in error
    assert "Traceback" not in error and "out_dir" not in error
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [LOCK_NAME]


def test_the_lock_file_is_not_the_folders_content_and_overwrite_keeps_it(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text("")  # left by an earlier, finished holder
    run(folder, config=tiny_config(nb_epochs=1))
    assert (folder / LOCK_NAME).is_file() and (folder / LOCK_NAME).read_text() == ""  # released
    run(folder, config=tiny_config(nb_epochs=1), overwrite=True)
    assert (folder / LOCK_NAME).is_file()


def test_python_names_become_flags_only_on_the_command_line() -> None:
    error = FileExistsError("x already holds a run. Pass resume=True to continue it, overwrite=True to replace it.")
    assert cli_wording(error) == "x already holds a run. Pass --resume to continue it, --overwrite to replace it."
    assert cli_wording(ValueError("`out_dir` /x cannot be written")) == "--out /x cannot be written"
    assert set(CLI_WORDS.values()) == {"--resume", "--overwrite", "--out"}
