"""Ctrl-C mid-epoch, then a resume: the weights of an uninterrupted run, whichever batch the interrupt hit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from art_rslad.trainers.interrupt import held_interrupt

# A child process trains SAT for 2 epochs of 6 batches; with INTERRUPT_AT=k it sends itself SIGINT during the
# k-th student forward pass (in the middle of an attack or of a training step), then expects KeyboardInterrupt.
SCRIPT = """
import os, signal, sys
import numpy as np, torch
sys.path.insert(0, {tests!r})
from conftest import TinyCNN, make_classifier
from art_rslad.trainers import AdversarialTrainerSAT
torch.set_num_threads(1)
rng = np.random.default_rng(0)
x, y = rng.random((96, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 96)
torch.manual_seed(0)
student = make_classifier(TinyCNN(4), lr=0.05)
trainer = AdversarialTrainerSAT(student, eps=0.1, eps_step=0.025, max_iter=2, seed=0, verbose=False)
folder, resume = sys.argv[1], sys.argv[2] == "resume"
forwards = [0]
def count(module, inputs):
    forwards[0] += 1
    if forwards[0] == int(os.environ.get("INTERRUPT_AT", "0")):
        os.kill(os.getpid(), signal.SIGINT)
student.model.register_forward_pre_hook(count)
try:
    trainer.fit(x, y, batch_size=16, nb_epochs=2, checkpoint_dir=folder,
                resume_from=folder + "/last.pt" if resume else None)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
torch.save(student.model.state_dict(), folder + "/final.pt")
"""


def _train(folder: Path, *, resume: bool = False, interrupt_at: int = 0) -> int:
    script = SCRIPT.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "INTERRUPT_AT": str(interrupt_at), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", script, str(folder), "resume" if resume else "new"], env=env,
                          capture_output=True, text=True, timeout=300).returncode


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    folder = tmp_path_factory.mktemp("uninterrupted")
    assert _train(folder) == 0
    return torch.load(folder / "final.pt", weights_only=True)


# Each training batch runs 3 forwards (2 attack steps, 1 loss); 3 = inside batch 1's attack, 17 = inside batch 6's
# (the last of epoch 1), 27 = batch 9's loss forward (epoch 2).
@pytest.mark.parametrize("interrupt_at", [3, 17, 27])
def test_a_resume_after_ctrl_c_reaches_the_uninterrupted_weights(interrupt_at, uninterrupted, tmp_path):
    assert _train(tmp_path, interrupt_at=interrupt_at) == 3  # stopped by the interrupt, with a checkpoint
    assert (tmp_path / "last.pt").is_file() and not (tmp_path / "final.pt").exists()
    assert _train(tmp_path, resume=True) == 0
    resumed = torch.load(tmp_path / "final.pt", weights_only=True)
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in uninterrupted)


def test_sigint_is_held_only_inside_the_loop():
    with held_interrupt() as interrupt:
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.requested
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt), held_interrupt(enabled=False):
        os.kill(os.getpid(), signal.SIGINT)
