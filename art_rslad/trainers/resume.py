"""The loop's checkpoints: what ``last.pt`` and ``best.pt`` hold beyond the shared payload, and the exact resume.

A checkpoint keeps the student, its optimizer, the scheduler, the RNG states (torch's, CUDA's where used, and the
training attack's), the epoch's running totals and ``extra_state``: what the method keeps besides (the networks it
trains, its state across epochs, the weight averager), as the trainer's ``_extra_state`` gives it. A resume checks
that the checkpoint was written by the same run, then restores all of it, so that an interrupted run ends with the
weights of an uninterrupted one; a checkpoint whose random-number state belongs to another kind of device is refused
before anything is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from art_rslad.checkpoint import load_checkpoint, save_atomic
from art_rslad.trainers.records import Scheduler, load_resumed_weights
from art_rslad.trainers.rng import check_rng_device, restore_rng, rng_state

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunState:
    """Where a run stands when a checkpoint is written: its config and scheduler, the epoch and batch it ends, and
    the running totals of the epoch in progress (loss sum, correct count, samples seen)."""

    config: dict[str, Any]
    scheduler: Scheduler | None
    epoch: int
    batch: int
    totals: list[float]


def _attack_generator(trainer: Any) -> torch.Generator | None:
    return getattr(trainer.attack, "generator", None)


def save_run(trainer: Any, path: Path, state: RunState) -> None:
    """Write ``trainer``'s checkpoint at ``state`` to ``path`` (atomically; its stem is the kind, last or best)."""
    attack_generator = _attack_generator(trainer)
    payload = trainer._checkpoint_payload(
        path.stem, state.config, state.epoch, batch=state.batch, epoch_totals=state.totals,
        optimizer_state=trainer.get_classifier().optimizer.state_dict(),
        scheduler_state=None if state.scheduler is None else state.scheduler.state_dict(),
        rng=rng_state(attack_generator, trainer.get_classifier().device),
        extra_state=trainer._extra_state(),
    )
    save_atomic(payload, path)


def resume_run(trainer: Any, path: str | Path, run_config: dict[str, Any], scheduler: Scheduler | None
               ) -> tuple[int, int, list[float]]:
    """Restore ``trainer`` from the checkpoint at ``path`` of the run ``run_config``; the epoch and batch to go on
    from and the epoch's running totals. A ValueError says how a checkpoint of another run differs."""
    classifier = trainer.get_classifier()
    checkpoint = load_checkpoint(path, map_location=classifier.device)
    attack_generator = _attack_generator(trainer)
    check_rng_device(checkpoint["rng"], attack_generator, path)  # before anything is loaded
    saved = checkpoint["config"]
    differences = [f"{key}: checkpoint {saved.get(key)!r}, now {value!r}" for key, value in run_config.items()
                   if saved.get(key) != value]
    if differences:
        raise ValueError(f"`resume_from` {path} was written by a different run; " + "; ".join(differences))
    if (checkpoint["scheduler_state"] is None) != (scheduler is None):
        raise ValueError(f"`resume_from` {path}: the scheduler must be given on resume exactly when the "
                         "interrupted run had one.")
    load_resumed_weights(classifier.model, checkpoint["model_state"], path)
    classifier.optimizer.load_state_dict(checkpoint["optimizer_state"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler_state"])
    trainer._load_extra_state(checkpoint.get("extra_state") or {})
    restore_rng(checkpoint["rng"], attack_generator, classifier.device)
    trainer._restore_records(checkpoint, path)
    logger.info("Resumed %s from %s at epoch %d, batch %d", trainer.method, path, checkpoint["epoch"] + 1,
                checkpoint["batch"])
    return int(checkpoint["epoch"]), int(checkpoint["batch"]), list(checkpoint["epoch_totals"])


__all__ = ["RunState", "resume_run", "save_run"]
