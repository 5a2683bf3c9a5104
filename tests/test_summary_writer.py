"""A run's epoch records as TensorBoard events: the trainers' ``summary_writer`` and ``--tensorboard``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_cli_runs import TINY
from test_runs import tiny_config

from art_rslad.cli import main
from art_rslad.models import create_model, make_classifier
from art_rslad.trainers.sat import AdversarialTrainerSAT


def _fit(summary_writer: Any, nb_epochs: int = 1) -> AdversarialTrainerSAT:
    student = make_classifier(create_model("cnn-small", 10, width=2, image_size=8), "digits", device="cpu")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 16)
    trainer = AdversarialTrainerSAT(student, eps=0.1, max_iter=1, verbose=False, summary_writer=summary_writer)
    trainer.fit(x, y, nb_epochs=nb_epochs, batch_size=8, validation_data=(x[:8], y[:8]))
    return trainer


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_each_epoch_record_becomes_scalars(tmp_path: Path) -> None:
    trainer = _fit(str(tmp_path / "tb"), nb_epochs=2)
    scalars = _scalars(tmp_path / "tb")
    assert set(trainer.history[0]) - {"epoch"} == set(scalars)
    for key, values in scalars.items():
        assert [step for step, _ in values] == [1, 2]
        assert values[1][1] == pytest.approx(trainer.history[1][key], rel=1e-6)


def test_true_writes_into_runs_and_a_writer_is_used_as_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _fit(True)
    assert [path.name.startswith("events.out.tfevents") for path in (tmp_path / "runs").rglob("events.*")] == [True]

    class Writer:
        def __init__(self) -> None:
            self.scalars: list[tuple[str, float, int]] = []
            self.flushes = 0

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            self.scalars.append((tag, value, step))

        def flush(self) -> None:
            self.flushes += 1

    writer = Writer()
    trainer = _fit(writer)
    assert ("loss", trainer.history[0]["loss"], 1) in writer.scalars and writer.flushes == 1


def test_off_by_default_and_bad_values_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for option in (None, False):
        _fit(option)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(TypeError, match="summary_writer"):
        _fit(3)


def test_missing_tensorboard_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"art-rslad\[tensorboard\]"):
        _fit("unused")


def test_cli_writes_one_folder_per_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tiny_config(nb_epochs=1).save(tmp_path / "tiny.json")
    caplog.set_level(logging.WARNING)
    assert main(["compare", "--methods", "sat", "natural", "--config", str(config), "--out", str(tmp_path / "cmp"),
                 "--tensorboard", str(tmp_path / "tb"), *TINY]) == 0
    assert sorted(path.name for path in (tmp_path / "tb").iterdir()) == ["natural-seed-0", "sat-seed-0"]
    assert "loss" in _scalars(tmp_path / "tb" / "sat-seed-0")
