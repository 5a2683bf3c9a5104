"""The CUDA and NCCL paths, checked on the CPU: choices that depend on CUDA are tested with
``torch.cuda.is_available`` faked, and every classifier the tests build is pinned to the CPU.

A GPU machine runs the real thing in ``bench/gpu_check.sh``.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from art.estimators.classification import PyTorchClassifier
from conftest import TinyCNN, make_classifier

from art_rslad import distributed
from art_rslad.cli.train import args_world
from art_rslad.estimators import _CONSTANTS, forward_logits
from art_rslad.models import resolve_device
from art_rslad.trainers import AdversarialTrainerAdaAD, AdversarialTrainerRSLAD, AdversarialTrainerSAT, batches, ddp
from art_rslad.trainers.averaging import EMA
from art_rslad.trainers.rng import check_rng_device, deterministic_algorithms, restore_rng, rng_state

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN_VARIABLES = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                      "MASTER_PORT": "29500"}


def _data(nb: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((nb, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, nb)


@pytest.fixture
def fake_join(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """CUDA faked available, torchrun's variables for rank 1 of 2, and the group's join and set_device recorded."""
    calls: dict[str, Any] = {"set_device": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: calls["set_device"].append(index))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: calls.update(kwargs))
    for name, value in TORCHRUN_VARIABLES.items():
        monkeypatch.setenv(name, value)
    return calls


# ------------------------------------------------------------------------------------------- backend and device
def test_a_cpu_run_uses_gloo_and_no_gpu_even_where_gpus_exist(fake_join: dict[str, Any]) -> None:
    distributed.init_distributed(device="cpu", timeout=timedelta(minutes=30))
    assert (fake_join["backend"], fake_join["set_device"], fake_join["timeout"]) == ("gloo", [], timedelta(minutes=30))


def test_a_gpu_run_uses_nccl_on_the_gpu_of_its_local_rank(fake_join: dict[str, Any]) -> None:
    distributed.init_distributed(device=None)
    assert (fake_join["backend"], fake_join["set_device"], "timeout" in fake_join) == ("nccl", [1], False)


def test_the_command_world_follows_device_and_timeout_options(fake_join: dict[str, Any]) -> None:
    with args_world(argparse.Namespace(device="cpu", dist_timeout=45.0)):
        pass
    assert (fake_join["backend"], fake_join["timeout"]) == ("gloo", timedelta(minutes=45))
    with pytest.raises(ValueError, match="positive number of minutes"):
        distributed.timeout_of(0)


def test_train_under_two_rank_torchrun_with_gpus_faked_uses_gloo_and_the_cpu(tmp_path: Path) -> None:
    """``art-rslad train --device cpu`` under torchrun, in processes where CUDA looks available and set_device
    fails: the group is gloo, no GPU is selected, and the run's weights are on the CPU."""
    script = tmp_path / "fake_cuda_train.py"
    script.write_text(
        "import os, sys, torch, torch.distributed as dist\n"
        "torch.cuda.is_available = lambda: True\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError('torch.cuda.set_device called in a --device cpu run')\n"
        "torch.cuda.set_device = refuse\n"
        "join = dist.init_process_group\n"
        "def record(*args, **kwargs):\n"
        f"    with open(os.path.join({str(tmp_path)!r}, 'backend-' + os.environ['RANK']), 'w') as file:\n"
        "        file.write(str(kwargs.get('backend')))\n"
        "    return join(*args, **kwargs)\n"
        "dist.init_process_group = record\n"
        "from art_rslad.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n", encoding="utf-8")
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
         "train", "--preset", "digits", "--method", "sat", "--set", "nb_epochs=1", "--train-size", "64",
         "--val-size", "16", "--test-size", "16", "--attacks", "clean", "--student-option", "width=2",
         "--checkpoint-interval", "0", "--quiet", "--device", "cpu", "--out", str(out)],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    # each rank records its backend in a file of its own (the two processes' prints would interleave)
    assert [(tmp_path / f"backend-{rank}").read_text() for rank in (0, 1)] == ["gloo", "gloo"]
    weights = torch.load(out / "student.pt", weights_only=True)
    assert {tensor.device.type for tensor in weights.values()} == {"cpu"}


# ------------------------------------------------------------------------------------------- the other networks
def _on_fake_gpu(classifier: PyTorchClassifier) -> PyTorchClassifier:
    """The classifier as if ART had placed it on cuda:0, its weights left on the CPU (a teacher built elsewhere)."""
    classifier._device = torch.device("cuda", 0)
    return classifier


@pytest.mark.parametrize("trainer_class", [AdversarialTrainerRSLAD, AdversarialTrainerAdaAD])
def test_a_teacher_on_another_device_is_refused_when_fit_starts_naming_each(trainer_class: type) -> None:
    torch.manual_seed(0)
    student = make_classifier(TinyCNN(2))
    trainer = trainer_class(student, _on_fake_gpu(make_classifier(TinyCNN(2))), max_iter=1, verbose=False)
    before = {key: value.clone() for key, value in student.model.state_dict().items()}
    x, y = _data()
    with pytest.raises(ValueError, match=r"student on cpu; teacher on cpu, cuda:0"):
        trainer.fit(x, y, batch_size=8, nb_epochs=1)
    assert all(torch.equal(before[key], value) for key, value in student.model.state_dict().items())


def test_the_teachers_logits_need_no_copy_when_it_shares_the_students_device() -> None:
    torch.manual_seed(0)
    trainer = AdversarialTrainerAdaAD(make_classifier(TinyCNN(2)), make_classifier(TinyCNN(2)), max_iter=1,
                                      verbose=False)
    x, y = _data()
    trainer.fit(x, y, batch_size=8, nb_epochs=1)
    assert len(trainer.history) == 1


# ------------------------------------------------------------------------------------------- preprocessing
def test_mean_std_preprocessing_runs_with_constants_kept_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    mean, std = np.array([0.4], np.float32), np.array([0.2], np.float32)
    classifier = make_classifier(TinyCNN(2), preprocessing=(mean, std))
    x = torch.rand(4, 1, 28, 28)
    expected = classifier.model((x - 0.4) / 0.2)
    operation = classifier.preprocessing_operations[0]
    monkeypatch.setattr(type(operation), "forward", lambda *args: pytest.fail("ART's per-call standardisation"))
    first = forward_logits(classifier, x)
    constants = _CONSTANTS[operation][(x.device, x.ndim)]
    forward_logits(classifier, x)
    assert _CONSTANTS[operation][(x.device, x.ndim)] is constants  # built once, then reused
    torch.testing.assert_close(first, expected)


# ------------------------------------------------------------------------------------------- checkpoints and RNG
def test_a_checkpoint_from_another_device_is_refused_before_anything_is_loaded(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x, y = _data()
    trainer = AdversarialTrainerSAT(make_classifier(TinyCNN(2)), max_iter=1, verbose=False)
    trainer.fit(x, y, batch_size=8, nb_epochs=1, checkpoint_dir=tmp_path)
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    checkpoint["rng"]["attack"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state
    checkpoint["rng"]["attack_device"] = "cuda"
    torch.save(checkpoint, tmp_path / "cuda.pt")
    student = make_classifier(TinyCNN(2))
    before = {key: value.clone() for key, value in student.model.state_dict().items()}
    with pytest.raises(ValueError, match="written by a run on cuda and this run is on cpu"):
        AdversarialTrainerSAT(student, max_iter=1, verbose=False).fit(
            x, y, batch_size=8, nb_epochs=2, checkpoint_dir=tmp_path / "again", resume_from=tmp_path / "cuda.pt")
    assert all(torch.equal(before[key], value) for key, value in student.model.state_dict().items())
    # a checkpoint of before the record: the size of the state says the device
    del checkpoint["rng"]["attack_device"]
    with pytest.raises(ValueError, match="on cuda"):
        check_rng_device(checkpoint["rng"], torch.Generator(), "old.pt")


def test_the_gpu_generator_state_is_saved_and_restored_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    restored: list[tuple[torch.Tensor, torch.device]] = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: torch.arange(16, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((state, device)))
    cuda = torch.device("cuda", 0)
    state = rng_state(None, cuda)
    assert torch.equal(state["cuda"], torch.arange(16, dtype=torch.uint8))
    restore_rng(state, None, cuda)
    assert len(restored) == 1 and restored[0][1] == cuda
    assert "cuda" not in rng_state(None, torch.device("cpu"))


def test_deterministic_sets_torchs_deterministic_algorithms_for_the_fit_only() -> None:
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    with deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark and os.environ["CUBLAS_WORKSPACE_CONFIG"]
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before
    torch.manual_seed(0)
    x, y = _data()
    trainer = AdversarialTrainerSAT(make_classifier(TinyCNN(2)), max_iter=1, verbose=False, deterministic=True)
    trainer.fit(x, y, batch_size=8, nb_epochs=1)
    assert trainer.hyperparameters()["deterministic"] is True


# ------------------------------------------------------------------------------------------- per step
class _Normed(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)


def test_sync_buffers_is_one_broadcast_for_every_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _Normed()
    module.norm.running_mean.copy_(torch.tensor([0.5, -1.5]))
    module.norm.num_batches_tracked.fill_(7)
    expected = {key: value.clone() for key, value in module.state_dict().items()}
    sent: list[torch.Tensor] = []
    monkeypatch.setattr(dist, "broadcast", lambda tensor, src: sent.append(tensor))
    ddp.sync_buffers(type("DDP", (), {"module": module})())  # type: ignore[arg-type]
    assert len(sent) == 1 and sent[0].dtype == torch.uint8
    assert all(torch.equal(expected[key], value) for key, value in module.state_dict().items())


def test_ema_uses_foreach_ops_and_follows_its_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model, ema = _Normed(), EMA(decay=0.5, warmup_fraction=0.0)
    ema.start(1, 100, None)
    ema.after_step(model)  # the first step copies
    previous = {key: value.clone() for key, value in ema.average.items()}  # type: ignore[union-attr]
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    calls: list[str] = []
    for name in ("_foreach_mul_", "_foreach_add_", "_foreach_copy_"):
        original = getattr(torch, name)
        monkeypatch.setattr(torch, name, lambda *a, _o=original, _n=name, **k: (calls.append(_n), _o(*a, **k))[1])
    ema.after_step(model)
    decay = ema.decay_at(2)
    assert calls == ["_foreach_mul_", "_foreach_add_", "_foreach_copy_"]
    torch.testing.assert_close(ema.average["conv.weight"],  # type: ignore[index]
                               decay * previous["conv.weight"] + (1 - decay) * model.conv.weight.detach())


def test_batches_are_pinned_and_copied_without_blocking_only_for_a_gpu_target(
        monkeypatch: pytest.MonkeyPatch) -> None:
    copies: list[tuple[str, bool]] = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: (copies.append(("pin", False)), self)[1])
    original_to = torch.Tensor.to

    def record_to(self: torch.Tensor, device: Any, non_blocking: bool = False) -> torch.Tensor:
        copies.append((str(device), non_blocking))
        return original_to(self, "cpu")

    monkeypatch.setattr(torch.Tensor, "to", record_to)
    batches.to_device(torch.zeros(2), torch.device("cpu"))
    batches.to_device(torch.zeros(2), torch.device("cuda", 0))
    assert copies == [("cpu", False), ("pin", False), ("cuda:0", True)]


# ------------------------------------------------------------------------------------------- the tests themselves
def _classifier_calls_without_a_device(path: Path) -> list[str]:
    """ART's ``PyTorchClassifier(...)`` without ``device_type``, and the package's ``make_classifier(...)`` (CUDA
    when available by default) without ``device``, in one test file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    device_keyword = {"PyTorchClassifier": "device_type"}
    if any(isinstance(node, ast.ImportFrom) and node.module == "art_rslad.models"
           and any(alias.name == "make_classifier" for alias in node.names) for node in ast.walk(tree)):
        device_keyword["make_classifier"] = "device"
    found = []
    for node in ast.walk(tree):
        name = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
        keywords = {keyword.arg for keyword in node.keywords} if isinstance(node, ast.Call) else set()
        if name in device_keyword and not keywords & {device_keyword[name], None} and "imagenet" not in \
                ast.unparse(node):  # a call refused before any device is chosen
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_every_classifier_a_test_builds_names_its_device() -> None:
    """ART's default device_type is "gpu": a classifier built without one would put a CPU test on a GPU machine's
    GPU while the test's tensors stay on the CPU. The conftest helper defaults to the CPU; direct calls say it."""
    missing = [call for path in sorted((ROOT / "tests").glob("*.py")) for call in
               _classifier_calls_without_a_device(path)]
    assert not missing, "classifiers built without naming their device in: " + ", ".join(missing)
    assert make_classifier(TinyCNN(2)).device.type == "cpu"


def test_a_cpu_test_sees_no_gpu_and_hides_it_from_the_processes_it_starts() -> None:
    """The conftest guard: on a machine with GPUs, a device chosen by default in a CPU test is the CPU."""
    assert not torch.cuda.is_available() and os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert resolve_device(None) == "cpu"
