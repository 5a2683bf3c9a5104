"""The run harness holds its folder's lock: a second process on a run, compare or eval folder is refused at once,
naming the holder, before anything in the folder changes; the lock file never counts as the folder's content."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_cli_runs import train
from test_lock import _holder
from test_runs import run, tiny_config

from art_rslad.cli import eval as eval_cli
from art_rslad.cli import main
from art_rslad.cli.errors import CLI_WORDS, cli_wording
from art_rslad.experiments.folders import check_resumable
from art_rslad.experiments.lock import LOCK_NAME, FolderBusyError
from art_rslad.models import create_model
from art_rslad.trainers.base import AdversarialTrainerBase


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
    assert {"--resume", "--overwrite", "--out"} <= set(CLI_WORDS.values())
    assert all("--" in word for word in CLI_WORDS.values())


def test_eval_into_an_unwritable_out_fails_before_the_first_attack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "student.pt"
    torch.save(create_model("cnn-small", 10, width=4, image_size=8).state_dict(), weights)
    (tmp_path / "a-file").write_text("")  # a parent that is a regular file: refused even as root

    def attacked(*args: object, **kwargs: object) -> None:
        raise AssertionError("an attack ran before the output folder was checked")

    monkeypatch.setattr(eval_cli, "evaluate_robustness_distributed", attacked)
    monkeypatch.setattr(eval_cli, "load_teacher", attacked)
    out = tmp_path / "a-file" / "reports" / "student"
    assert main(["eval", str(weights), "--model", "cnn-small", "--model-option", "width=4", "--model-option",
                 "image_size=8", "--dataset", "digits", "--nb-images", "4", "--out", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"art-rslad eval: error: --out {out.parent} cannot be written" in error and "Traceback" not in error


def test_a_corrupt_last_checkpoint_names_best_pt_as_the_way_on(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "run"
    original, steps = AdversarialTrainerBase._train_step, {"count": 0}

    def dying_step(self: AdversarialTrainerBase, batch: Any) -> Any:
        steps["count"] += 1
        if steps["count"] == 5:  # epoch 2 of 2, second batch: the process "dies"
            raise RuntimeError("killed")
        return original(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(AdversarialTrainerBase, "_train_step", dying_step)
        with pytest.raises(RuntimeError, match="killed"):
            run(folder)
    (folder / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"Cannot resume from .*last\.pt: .*corrupt.*continue from best\.pt") \
            as caught:
        run(folder, resume=True)
    assert "resume=True" in str(caught.value) and "overwrite=True" in str(caught.value)
    assert "--resume" in cli_wording(caught.value) and "--overwrite" in cli_wording(caught.value)
    shutil.copyfile(folder / "best.pt", folder / "last.pt")  # the way the message names
    assert run(folder, resume=True).history[-1]["epoch"] == 2
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"
    (folder / "best.pt").unlink()
    assert "best.pt" not in str(check_resumable_error(folder / "metrics.jsonl"))


def check_resumable_error(path: Path) -> ValueError:
    with pytest.raises(ValueError, match="Start the run again with overwrite=True") as caught:
        check_resumable(path)
    return caught.value
