"""Every script in examples/ runs, at tiny sizes, as a user would start it (a subprocess, one thread).

The RobustBench example reads a RobustBench checkpoint written where RobustBench's loader looks for it (a randomly
initialised network of the model's architecture: the ResNet-18 of ``Sehwag2021Proxy_R18``, since the paper's
WideResNet-34-10 takes minutes on one CPU thread) and CIFAR-10 files in their on-disk format, so nothing is
downloaded; on a user's machine the same code downloads both.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from conftest import write_cifar

from art_rslad.models import create_model
from art_rslad.robustbench import import_robustbench

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TEACHER = "Sehwag2021Proxy_R18"  # a RobustBench CIFAR-10 L-inf model with a ResNet-18
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def run(*argv: str, timeout: int = 120) -> str:
    """Run ``argv`` from the repository root; return its standard output, or fail with its standard error."""
    result = subprocess.run(list(argv), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout,
                            check=False)
    assert result.returncode == 0, result.stderr[-6000:]
    return result.stdout


def test_every_example_has_a_test() -> None:
    tested = {"art_attack_on_student.py", "fit_generator_augmented.py", "robustbench_teacher.py",
              "torchrun_distil.py", "distil_fashion_mnist.py"}
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


def test_art_attack_on_student(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "student.pt"
    torch.save(create_model("cnn-small").state_dict(), weights)
    out = run(sys.executable, "examples/art_attack_on_student.py", str(weights), "--nb-images", "16",
              "--max-iter", "2", "--square-queries", "5", "--device", "cpu")
    for attack in ("clean", "FGSM", "PGD-2", "APGD-CE-2", "Square (black-box)"):
        assert re.search(rf"^{re.escape(attack)} +[01]\.\d{{3}}", out, flags=re.MULTILINE), out
    perturbations = [float(value) for value in re.findall(r"^\S.*? [01]\.\d{3} +(\d\.\d{4})", out, flags=re.MULTILINE)]
    assert len(perturbations) == 4 and max(perturbations) <= 0.1 + 1e-4


def test_fit_generator_with_an_augmenting_dataloader() -> None:
    out = run(sys.executable, "examples/fit_generator_augmented.py", "--train-size", "160", "--test-size", "16",
              "--epochs", "1", "--batch-size", "32", "--device", "cpu")
    assert "best epoch 1" in out and "| pgd_sat | white-box |" in out


def test_distil_fashion_mnist() -> None:
    out = run(sys.executable, "examples/distil_fashion_mnist.py", "--train-size", "160", "--test-size", "16",
              "--epochs", "1")
    assert "student (RSLAD, cnn-small)" in out and "PGD-20" in out


def test_robustbench_teacher_by_name(tmp_path: Path) -> None:
    utils = import_robustbench()
    torch.manual_seed(0)
    teacher = utils.all_models[utils.BenchmarkDataset("cifar10")][utils.ThreatModel("Linf")][TEACHER]["model"]()
    weights = tmp_path / "models" / "cifar10" / "Linf" / f"{TEACHER}.pt"
    weights.parent.mkdir(parents=True)
    torch.save(teacher.state_dict(), weights)
    del teacher
    batches = {f"data_batch_{i}": 4 for i in range(1, 6)} | {"test_batch": 4}
    write_cifar(tmp_path / "data", "cifar-10-batches-py", batches, "labels")
    out = run(sys.executable, "examples/robustbench_teacher.py", "--teacher", TEACHER,
              "--model-dir", str(tmp_path / "models"), "--no-download", "--data-root", str(tmp_path / "data"),
              "--train-size", "16", "--test-size", "4", "--epochs", "1", "--batch-size", "8",
              "--student", "mobilenetv2", "--device", "cpu")
    assert f'"robustbench_name": "{TEACHER}"' in out
    assert f"teacher {TEACHER}: clean" in out and "student mobilenetv2 (RSLAD): clean" in out


def test_torchrun_on_two_processes(tmp_path: Path) -> None:
    out = run(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
              "examples/torchrun_distil.py", "--train-size", "128", "--test-size", "16", "--epochs", "1",
              "--global-batch-size", "32", "--out", str(tmp_path / "run"), timeout=240)
    assert "2 processes, batch 16 per process" in out
    assert (tmp_path / "run" / "student.pt").is_file() and (tmp_path / "run" / "best.pt").is_file()
