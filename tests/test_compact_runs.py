"""Compacted run folders (studies/compact.py): the reports as .npz, only the best weights kept; a resume of a
finished evaluation, run or compare reads everything back and writes nothing."""

from __future__ import annotations

import gzip
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from art_rslad.checkpoint import load_checkpoint, load_file
from art_rslad.data import load_dataset
from art_rslad.evaluation import RobustnessReport, evaluate_robustness
from art_rslad.evaluation import evaluate as evaluate_module
from art_rslad.evaluation.report import store_finished
from art_rslad.experiments.compare import compare
from art_rslad.experiments.config import Config, TeacherConfig
from art_rslad.experiments.folders import checkpoint_weights, load_run_history, read_json, run_folder, write_json
from art_rslad.experiments.lock import LOCK_NAME
from art_rslad.experiments.train import RunSettings
from art_rslad.models import create_model, make_classifier
from art_rslad.trainers.base import AdversarialTrainerBase

STUDIES = Path(__file__).resolve().parents[1] / "studies"
STUDENT = {"width": 2, "image_size": 8}


def _study_script(name: str) -> ModuleType:
    """A script of studies/ (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(f"studies_{name}", STUDIES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _config(nb_epochs: int) -> Config:
    return Config(name="test", dataset="digits", student="cnn-small", nb_epochs=nb_epochs, batch_size=16, lr=0.05,
                  eps=0.1, eps_step=0.05, max_iter=2, teacher=TeacherConfig(source=""))


def _compare(folder: Path, nb_epochs: int = 3, **changes: Any) -> Any:
    settings = RunSettings(train_size=48, val_size=16, test_size=16, attacks=("clean", "fgsm", "autoattack"),
                           student_options=STUDENT, checkpoint_interval=0, verbose=False, **changes)
    return compare(_config(nb_epochs), folder, ["sat"], [0], settings)


def _files(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file with its mtime and bytes, but the folder locks (taken and released by every process)."""
    return {path.relative_to(folder).as_posix(): (path.stat().st_mtime_ns, path.read_bytes())
            for path in folder.rglob("*") if path.is_file() and path.name != LOCK_NAME}


def _no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AdversarialTrainerBase, "_train_step", lambda *args: pytest.fail("trained again"))
    monkeypatch.setattr(evaluate_module, "_run_attack", lambda *args: pytest.fail("attacked again"))


def test_a_resume_with_nothing_to_run_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    classifier = make_classifier(create_model("cnn-small", 10, **STUDENT), "digits", device="cpu")
    x, y = load_dataset("digits", "test")
    options: dict[str, Any] = {"eps": 0.1, "attacks": ("clean", "fgsm"), "batch_size": 16, "verbose": False}
    state = tmp_path / "full_best.json"
    first = evaluate_robustness(classifier, x[:20], y[:20], state_path=state, **options)
    _no_work(monkeypatch)
    for stored in (state, store_finished(first, state)):  # the JSON state, then its compact form
        before = _files(tmp_path)
        again = evaluate_robustness(classifier, x[:20], y[:20], state_path=state, **options)
        assert again.to_json() == first.to_json() and _files(tmp_path) == before, stored.name


def test_a_compacted_compare_resumes_without_training_or_attacking(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    first = _compare(tmp_path)
    run = run_folder(tmp_path, "sat", 0)
    full_test = _study_script("full_test")
    x, y = load_dataset("digits", "test")
    full = full_test.evaluate_run(run, x[:20], y[:20], ("clean", "fgsm"), verbose=False)
    best_weights, last_weights = load_checkpoint(run / "best.pt")["model_state"], checkpoint_weights(run, "last")

    history, run_log = load_run_history(run), (run / "run.log").read_bytes()
    compare_log = (tmp_path / "compare.log").read_text(encoding="utf-8")
    assert " epoch 1/3" in run_log.decode() and " epoch 1/3" not in compare_log  # each epoch in one log only
    assert "Finished sat" in compare_log and read_json(run / "student.json")["training"]["history"] == "metrics.jsonl"

    _study_script("compact").main([str(tmp_path)])
    names = {path.name for path in run.iterdir()}
    assert {"eval_best.npz", "eval_last.npz", "full_best.npz", "full_last.npz", "student.pt", "metrics.jsonl.gz",
            "run.log.gz"} <= names
    assert not names & {"best.pt", "last.pt", "figures", "metrics.jsonl", "run.log"}
    assert not any(name.endswith("_best.json") for name in names)
    assert load_run_history(run) == history and gzip.decompress((run / "run.log.gz").read_bytes()) == run_log
    assert gzip.decompress((tmp_path / "compare.log.gz").read_bytes()).decode() == compare_log
    assert not (tmp_path / "compare.log").exists()
    assert all(torch.equal(value, best_weights[key]) for key, value in checkpoint_weights(run, "best").items())
    if first.runs[("sat", 0)].best_epoch != 3:
        with pytest.raises(FileNotFoundError, match="last checkpoint's weights are not kept"):
            checkpoint_weights(run, "last")
    else:
        assert all(torch.equal(value, last_weights[key]) for key, value in load_file(run / "student.pt").items())
    compacted = _files(run)
    _study_script("compact").main([str(tmp_path)])
    assert _files(run) == compacted  # nothing left to do

    _no_work(monkeypatch)
    monkeypatch.setattr(full_test, "load_student", lambda *args: pytest.fail("loaded a checkpoint"))
    again = _compare(tmp_path, resume=True)
    assert again.table.to_markdown() == first.table.to_markdown()
    assert full_test.evaluate_run(run, x[:20], y[:20], ("clean", "fgsm"), verbose=False) == full
    assert _files(run) == compacted
    assert RobustnessReport.load(run / "eval_best.json").accuracy == first.runs[("sat", 0)].accuracy["best"]
    training, evaluation, full_hours = full_test.run_hours(run)  # read from the compact reports
    assert training > 0 and evaluation > 0 and full_hours > 0
    resumed_log = (tmp_path / "compare.log").read_text(encoding="utf-8")  # the resume's own session
    _study_script("compact").main([str(tmp_path)])
    assert gzip.decompress((tmp_path / "compare.log.gz").read_bytes()).decode() == compare_log + resumed_log


def test_a_card_that_repeats_its_history_is_checked_then_made_to_name_it(tmp_path: Path) -> None:
    _compare(tmp_path, nb_epochs=2)
    run = run_folder(tmp_path, "sat", 0)
    card = read_json(run / "student.json")
    compact = _study_script("compact")
    card["training"]["history"] = load_run_history(run)[:1]  # a card written before, not matching
    write_json(run / "student.json", card)
    with pytest.raises(ValueError, match=r"differs from the run's metrics\.jsonl"):
        compact.compact_card(run)
    card["training"]["history"] = load_run_history(run)  # as cards were written before
    write_json(run / "student.json", card)
    assert compact.compact_card(run) and read_json(run / "student.json")["training"]["history"] == "metrics.jsonl"
    assert compact.compact_card(run) == []


def _study_files() -> list[Path]:
    """The files of studies/ that a clone holds: git's list where this is a checkout, else the folder's files."""
    root = STUDIES.parent
    listed = subprocess.run(["git", "ls-files", "-z", "studies"], cwd=root, capture_output=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        return [root / name for name in listed.stdout.decode().split("\0") if name and (root / name).is_file()]
    return [path for path in STUDIES.rglob("*") if path.is_file()]


def test_the_studies_stay_under_25_mb_in_a_clone() -> None:
    size = sum(path.stat().st_size for path in _study_files())
    assert size < 25e6, (f"studies/ holds {size / 1e6:.1f} MB: run studies/compact.py on finished studies (see "
                         "docs/runs.md, 'Compact run folders') before committing them")


def test_overwrite_removes_the_compressed_records_of_a_compacted_run(tmp_path: Path) -> None:
    _compare(tmp_path, nb_epochs=1)
    _study_script("compact").main([str(tmp_path)])
    run = run_folder(tmp_path, "sat", 0)
    assert (run / "metrics.jsonl.gz").is_file() and (tmp_path / "compare.log.gz").is_file()
    _compare(tmp_path, nb_epochs=1, overwrite=True)
    assert (run / "metrics.jsonl").is_file() and not any(path.suffix == ".gz" for path in tmp_path.rglob("*"))


def test_a_retrained_teacher_is_not_kept_in_a_compacted_run(tmp_path: Path) -> None:
    """CIARD's further-trained teacher (teacher.pt) is deleted with the training checkpoints; the student stays, and
    so does a network the method builds like the student (PeerAiD's peer)."""
    compact = _study_script("compact")
    weights = {"weight": torch.ones(2, 2)}
    for name in ("student", "teacher", "peer"):
        torch.save(weights, tmp_path / f"{name}.pt")
    assert compact.compact_checkpoints(tmp_path, "peeraid") == []
    done = compact.compact_checkpoints(tmp_path, "ciard+ema")
    assert [line.split()[0] for line in done] == ["teacher.pt"]
    assert not (tmp_path / "teacher.pt").exists() and (tmp_path / "peer.pt").is_file()
    assert torch.equal(torch.load(tmp_path / "student.pt", weights_only=True)["weight"], weights["weight"])
