"""Exact resume: an interrupted CPU run, resumed, ends with the same tensors as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_classifier
from helpers_trainers import assert_same_tensors, interrupt_at
from test_runs import run, tiny_teacher

from art_rslad.checkpoint import load_checkpoint
from art_rslad.experiments.folders import load_run
from art_rslad.trainers import AdversarialTrainerRSLAD
from art_rslad.trainers.base import AdversarialTrainerBase

NB_EPOCHS = 2
BATCH_SIZE = 16


SHAPE = (1, 8, 8)


class Student(torch.nn.Module):
    """Conv, BatchNorm (running statistics) and dropout (the global torch RNG): all must survive a resume."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                            torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.dropout = torch.nn.Dropout(0.3)
        self.head = torch.nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x).flatten(1)))


class Teacher(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1))


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((88, *SHAPE), dtype=np.float32)
    y = rng.integers(0, 10, 88)
    return x[:72], y[:72], x[72:], y[72:]


def _trainer(init_seed: int) -> tuple[AdversarialTrainerRSLAD, torch.optim.lr_scheduler.MultiStepLR]:
    torch.manual_seed(100)
    teacher = make_classifier(Teacher(), input_shape=SHAPE)
    torch.manual_seed(init_seed)  # a resumed run starts from other weights: the checkpoint must replace them
    student = make_classifier(Student(), lr=0.05, input_shape=SHAPE)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(student.optimizer, milestones=[1], gamma=0.1)
    trainer = AdversarialTrainerRSLAD(student, teacher, eps=0.1, eps_step=0.025, max_iter=2, scale=1.0, seed=3,
                                      verbose=False)
    return trainer, scheduler


def _fit(trainer: AdversarialTrainerRSLAD, scheduler: Any, folder: Path, **kwargs: Any) -> None:
    x, y, x_val, y_val = _data()
    torch.manual_seed(7)  # the global RNG (dropout) as a user's script would leave it
    trainer.fit(x, y, validation_data=(x_val, y_val), batch_size=BATCH_SIZE, nb_epochs=NB_EPOCHS,
                scheduler=scheduler, checkpoint_dir=folder, **kwargs)


def _ctrl_c_at(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Press Ctrl-C (SIGINT to this process) as the ``call``-th training step (1-based) starts."""
    original: Callable[..., Any] = AdversarialTrainerBase._train_step
    calls = {"count": 0}

    def step(self: AdversarialTrainerBase, batch: Any) -> Any:
        calls["count"] += 1
        if calls["count"] == call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch)

    monkeypatch.setattr(AdversarialTrainerBase, "_train_step", step)


def _state(folder: Path, name: str) -> dict[str, Any]:
    checkpoint = load_checkpoint(folder / name)
    history = [{k: v for k, v in record.items() if not k.endswith("seconds")} for record in checkpoint["history"]]
    return {key: checkpoint[key] for key in ("model_state", "optimizer_state", "scheduler_state", "rng", "epoch",
                                             "best_metric", "best_epoch")} | {"history": history}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    trainer, scheduler = _trainer(init_seed=0)
    _fit(trainer, scheduler, folder)
    return folder


@pytest.mark.parametrize("interrupt_at", [3, 8])  # mid first epoch; second epoch, batch 3 (5 batches per epoch)
def test_keyboard_interrupt_then_resume_gives_identical_tensors(
    uninterrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt_at: int
) -> None:
    trainer, scheduler = _trainer(init_seed=0)
    with monkeypatch.context() as patch:
        _ctrl_c_at(patch, interrupt_at)
        with pytest.raises(KeyboardInterrupt):
            _fit(trainer, scheduler, tmp_path)
    saved = load_checkpoint(tmp_path / "last.pt")  # written once the interrupted batch ended
    epoch, batch = divmod(interrupt_at - 1, 5)
    assert (saved["epoch"], saved["batch"]) == (epoch, batch + 1)

    resumed, resumed_scheduler = _trainer(init_seed=1)
    _fit(resumed, resumed_scheduler, tmp_path, resume_from=tmp_path / "last.pt")
    assert_same_tensors(_state(uninterrupted, "last.pt"), _state(tmp_path, "last.pt"))
    assert_same_tensors(_state(uninterrupted, "best.pt"), _state(tmp_path, "best.pt"))
    assert_same_tensors(load_checkpoint(uninterrupted / "last.pt")["model_state"],
                         resumed.get_classifier().model.state_dict())
    assert resumed.best_epoch == load_checkpoint(uninterrupted / "best.pt")["best_epoch"]


def test_process_death_resumes_from_the_last_interval_checkpoint(
    uninterrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer, scheduler = _trainer(init_seed=0)
    with monkeypatch.context() as patch:
        # A crash that is not a KeyboardInterrupt writes nothing: only the interval checkpoint (batch 2 of
        # epoch 2) is left, and the batch trained after it is trained again on resume.
        interrupt_at(patch, 9, RuntimeError)
        with pytest.raises(RuntimeError):
            _fit(trainer, scheduler, tmp_path, checkpoint_interval=2)
    saved = load_checkpoint(tmp_path / "last.pt")
    assert (saved["epoch"], saved["batch"]) == (1, 2)

    resumed, resumed_scheduler = _trainer(init_seed=1)
    _fit(resumed, resumed_scheduler, tmp_path, resume_from=tmp_path / "last.pt", checkpoint_interval=2)
    assert_same_tensors(_state(uninterrupted, "last.pt"), _state(tmp_path, "last.pt"))


def test_resume_refuses_a_checkpoint_of_another_run(uninterrupted: Path, tmp_path: Path) -> None:
    trainer, scheduler = _trainer(init_seed=0)
    trainer.scale = 0.5  # another loss scale: another run
    with pytest.raises(ValueError, match="scale"):
        _fit(trainer, scheduler, tmp_path, resume_from=uninterrupted / "last.pt")


def test_train_run_interrupted_then_resumed_ends_with_identical_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole `art-rslad train` path: data split, model, teacher soft labels, scheduler, checkpoints."""
    options = {"method": "rslad", "checkpoint_interval": 2}
    run(tmp_path / "uninterrupted", teacher=tiny_teacher(), **options)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 5, KeyboardInterrupt)  # second epoch, second batch (3 batches per epoch)
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path / "resumed", teacher=tiny_teacher(), **options)
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["status"] == "interrupted"  # recorded as such
    run(tmp_path / "resumed", teacher=tiny_teacher(), resume=True, **options)
    for name in ("last.pt", "best.pt"):
        assert_same_tensors(_state(tmp_path / "uninterrupted", name), _state(tmp_path / "resumed", name))
    assert load_run(tmp_path / "resumed").accuracy == load_run(tmp_path / "uninterrupted").accuracy
