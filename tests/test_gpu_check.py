"""``bench/gpu_check.sh --dry-run`` runs every step of the GPU check on the CPU at tiny sizes, so it cannot rot.

The dry run is the same script, the same benchmark modules and the same report, with small CNNs on CIFAR shapes,
a few inputs and the eager torch.compile backend: about a minute of CPU time (several minutes of wall clock on a
loaded machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["environment", "cuda-tests", "nccl", "torchrun-smoke", "resume", "syncs", "autoattack", "train-fp32",
         "train-bf16", "train-channels-last", "train-bf16-channels-last", "train-compile"]


def test_gpu_check_dry_run_runs_every_step_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "gpu-results"
    environment = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", str(out)], cwd=ROOT, capture_output=True,
                            text=True, timeout=900, env=environment)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads((out / "gpu-check.json").read_text(encoding="utf-8"))
    assert [step["step"] for step in report["steps"]] == STEPS
    assert all(step["rc"] == 0 for step in report["steps"])
    training = {step["step"]: step["results"] for step in report["steps"] if step["step"].startswith("train-")}
    assert {name: set(results["images_per_s"]) for name, results in training.items()} == {
        **{name: {"a_art_rslad", "b_plain_rslad"} for name in STEPS if name.startswith("train-") and
           name != "train-compile"},
        "train-compile": {"b_plain_rslad", "d_plain_compiled"},
    }
    assert (training["train-bf16"]["amp_dtype"], training["train-channels-last"]["channels_last"]) == ("bf16", True)
    autoattack = next(step["results"] for step in report["steps"] if step["step"] == "autoattack")
    assert set(autoattack["robust_accuracy"]) == {"a_report_autoattack", "b_pyautoattack",
                                                  "c_pyautoattack_logits_module"}
    assert len(set(autoattack["robust_accuracy"].values())) == 1  # same seed, same attack: the same accuracy
    assert (out / "torchrun-smoke" / "student.pt").is_file()
    paths = {step["step"]: step["results"] for step in report["steps"] if step["step"] in ("nccl", "resume", "syncs")}
    assert (paths["nccl"]["backend"], paths["nccl"]["all_reduce"], paths["nccl"]["all_gather"]) == ("gloo", 1.0, [0.0])
    assert "sync_buffers" in paths["nccl"]["covered"] and paths["nccl"]["not_covered"]
    assert paths["resume"]["max_abs_difference_deterministic_True"] == 0.0  # the CPU resumes exactly
    assert paths["resume"]["last_pt_on_cpu"] == ["cpu"]
    assert len(paths["syncs"]["identity"]["per_step"]) == len(paths["syncs"]["mean_std"]["per_step"]) == 3
    preset = (out / "torchrun-preset.txt").read_text(encoding="utf-8")  # probed offline, under a time limit
    assert preset.startswith(("torchrun smoke on the fashion-mnist preset", "torchrun smoke on the digits preset"))
    markdown = (out / "gpu-check.md").read_text(encoding="utf-8")
    assert "| train-bf16-channels-last | bf16 | True | a_art_rslad |" in markdown
    assert "## Standard AutoAttack" in markdown and "- Process group: backend gloo, 1 rank(s)" in markdown


def test_gpu_check_refuses_an_unknown_option() -> None:
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--fast"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "unknown option --fast" in result.stderr
