"""SIGTERM (what SLURM, Kubernetes and Docker send before they kill a job) stops `art-rslad train` as Ctrl-C does:
the batch in progress ends, last.pt is written, run.json says the run was interrupted, the lock is released, and one
line says how to resume; the resumed run ends with the weights of an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from test_runs import tiny_config

from art_rslad.checkpoint import load_checkpoint
from art_rslad.experiments.lock import LOCK_NAME
from art_rslad.trainers.interrupt import held_interrupt, terminate_as_interrupt

# 2 epochs of 20 batches of 8x8 digits; last.pt after every batch, so the test sees training under way.
OPTIONS = ["--train-size", "320", "--val-size", "16", "--test-size", "16", "--attacks", "clean",
           "--student-option", "width=2", "--student-option", "image_size=8", "--checkpoint-interval", "1",
           "--quiet", "--set", "nb_epochs=2"]


def _command(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "art_rslad", "train", "--method", "sat", "--config", str(config), "--out",
            str(out), *OPTIONS, *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}


def _final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "last.pt")["model_state"]


def test_sigterm_mid_epoch_saves_records_releases_and_resumes_bit_identically(tmp_path: Path) -> None:
    config = tiny_config().save(tmp_path / "tiny.json")
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    subprocess.run(_command(config, whole), env=_env(), check=True, capture_output=True, timeout=600)

    process = subprocess.Popen(_command(config, stopped), env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    while not (stopped / "last.pt").exists() and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130, err
    advice = [line for line in err.splitlines() if "--resume" in line]
    assert advice == ["art-rslad train: interrupted. What was finished is saved; run the same command with "
                      "--resume to continue."]
    marker = json.loads((stopped / "run.json").read_text())
    assert marker["status"] == "interrupted" and len(marker["interruptions"]) == 1
    assert (stopped / LOCK_NAME).read_text() == ""  # released: no holder recorded
    assert load_checkpoint(stopped / "last.pt")["epoch"] < 2  # stopped while training

    subprocess.run(_command(config, stopped, "--resume"), env=_env(), check=True, capture_output=True, timeout=600)
    resumed, uninterrupted = _final_weights(stopped), _final_weights(whole)
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in uninterrupted)
    marker = json.loads((stopped / "run.json").read_text())
    assert marker["status"] == "finished" and len(marker["interruptions"]) == 1


def test_sigterm_is_held_like_ctrl_c_only_inside_the_block() -> None:
    with terminate_as_interrupt():
        with held_interrupt() as interrupt:
            os.kill(os.getpid(), signal.SIGTERM)
            assert interrupt.requested
        assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
