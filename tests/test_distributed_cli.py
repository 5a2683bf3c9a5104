"""``art-rslad train``, ``compare`` and ``eval`` launched by torchrun: 2 CPU processes (gloo), tiny data, seconds.

Each launch is a subprocess ``python -m torch.distributed.run --standalone --nproc-per-node 2 -m art_rslad ...``
with one thread per process. Checked: exit status 0, a complete folder written once by rank 0 alone, results equal
to a one-process evaluation where the attacks are deterministic, resume, and a refusal on every rank with nothing
changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_runs import tiny_config

from art_rslad.checkpoint import load_checkpoint
from art_rslad.cli import main
from art_rslad.evaluation import RobustnessReport
from art_rslad.experiments.folders import RUN_FILES
from art_rslad.experiments.lock import LOCK_NAME

WORLD_SIZE = 2
SIZES = ["--train-size", "256", "--val-size", "64", "--test-size", "64"]
RUN = [*SIZES, "--set", "nb_epochs=1", "--attacks", "clean", "fgsm", "pgd_sat", "--student-option", "width=2",
       "--checkpoint-interval", "0", "--quiet"]
MODEL = ["--model", "cnn-small", "--model-option", "width=2", "--dataset", "digits", "--eps", "0.1", "--quiet",
         "--device", "cpu"]
RUN_FOLDER = {*RUN_FILES, LOCK_NAME, "figures/accuracy_best.png", "figures/robust_accuracy_per_epoch.png"}


def torchrun(*argv: str) -> subprocess.CompletedProcess[str]:
    """``art-rslad *argv`` on two processes, one thread each."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           str(WORLD_SIZE), "-m", "art_rslad", *argv],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240)


def succeeded(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr[-6000:]


def files(folder: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (modification time, size) of every file under ``folder``."""
    return {path.relative_to(folder).as_posix(): (path.stat().st_mtime_ns, path.stat().st_size)
            for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_config().save(tmp_path_factory.mktemp("config") / "tiny.json")


@pytest.fixture(scope="module")
def trained(config_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished two-rank SAT run: its folder and what the processes printed."""
    out = tmp_path_factory.mktemp("train") / "run"
    result = torchrun("train", "--method", "sat", "--config", str(config_file), "--out", str(out), *RUN)
    succeeded(result)
    return out, result.stdout


def test_train_writes_one_complete_run_folder_from_rank_zero(trained: tuple[Path, str]) -> None:
    out, printed = trained
    assert set(files(out)) == RUN_FOLDER  # no per-rank or temporary file
    log = (out / "run.log").read_text()
    assert log.count("Starting run sat") == 1 and log.count("sat epoch 1/1") == 1
    assert "best.pt on all 64 test images (2 processes)" in log
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert load_checkpoint(out / "last.pt")["config"]["data"]["world_size"] == WORLD_SIZE
    assert printed.count("| sat | best | 1 |") == 1  # rank 0 alone prints the table
    for name in ("eval_best", "eval_last"):
        report = RobustnessReport.load(out / f"{name}.npz").to_dict()
        assert report["n_inputs"] == 64 and all(len(flags) == 64 for flags in report["correct"].values())


def test_train_evaluation_matches_one_process_where_deterministic(trained: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = trained
    assert main(["eval", str(out / "best.pt"), *MODEL, "--nb-images", "64", "--attacks", "clean", "fgsm",
                 "--out", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one.json").read_text())["correct"]
    two = RobustnessReport.load(out / "eval_best.npz").to_dict()["correct"]
    assert {name: two[name] for name in ("clean", "fgsm")} == one


def test_second_launch_without_resume_fails_on_every_rank_and_changes_nothing(
    trained: tuple[Path, str], config_file: Path
) -> None:
    out, _ = trained
    before = files(out)
    result = torchrun("train", "--method", "sat", "--config", str(config_file), "--out", str(out), *RUN)
    assert result.returncode != 0
    assert result.stderr.count("art-rslad train: error: ") == WORLD_SIZE
    assert result.stderr.count(f"{out} already holds a run. Pass --resume") == WORLD_SIZE
    after = files(out)
    assert after.pop(LOCK_NAME)[1] == 0  # taken and released by rank 0, not a file of the run
    before.pop(LOCK_NAME)
    assert after == before


def test_resume_under_torchrun_loads_last_and_finishes_the_evaluations(
    trained: tuple[Path, str], config_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    marker = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**marker, "status": "evaluating"}))
    (out / "eval_last.npz").unlink()
    (out / "results.md").unlink()
    best = files(out)["eval_best.npz"]
    succeeded(torchrun("train", "--method", "sat", "--config", str(config_file), "--out", str(out), "--resume",
                       *RUN))
    log = (out / "run.log").read_text()
    assert log.count("Starting run sat") == 1 and log.count("Resuming run sat") == 1
    assert log.count("Resumed sat from") == 1 and "eval_best.json is finished; it is read back" in log
    assert files(out)["eval_best.npz"] == best and set(files(out)) == RUN_FOLDER
    assert (out / "eval_last.npz").read_bytes() == (out / "eval_best.npz").read_bytes()
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


def test_compare_under_torchrun_writes_its_folder_once(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "compare"
    result = torchrun("compare", "--methods", "sat", "--config", str(config_file), "--out", str(out), *RUN)
    succeeded(result)
    assert set(files(out)) == {LOCK_NAME, "compare.json", "compare.log", "comparison.md", "comparison.json",
                               "figures/robust_accuracy_per_epoch.png", "figures/final_table_best.png",
                               "figures/final_table_last.png", *(f"runs/sat/seed-0/{name}" for name in RUN_FOLDER)}
    assert (out / "compare.log").read_text().count("compare: sat, seed 0") == 1
    assert (out / "runs" / "sat" / "seed-0" / "run.log").read_text().count("Starting run sat") == 1
    assert result.stdout.count("| sat | last | 1 |") == 1


def test_eval_under_torchrun_shards_the_inputs_and_merges_them(trained: tuple[Path, str], tmp_path: Path) -> None:
    """Two processes give the per-input results of one; rank 0 writes the merged report, each rank its shard's."""
    arguments = [str(trained[0] / "best.pt"), *MODEL, "--nb-images", "21", "--attacks", "clean", "fgsm"]
    assert main(["eval", *arguments, "--out", str(tmp_path / "one")]) == 0
    result = torchrun("eval", *arguments, "--out", str(tmp_path / "two"))
    succeeded(result)
    one, two = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two"))
    assert two["n_inputs"] == 21 and two["correct"] == one["correct"]
    assert sorted(path.name for path in tmp_path.glob("two*")) == [
        "two.json", "two.md", "two.rank0of2.json", "two.rank1of2.json"]
    assert result.stdout.count("Saved ") == 1


def test_eval_of_a_defence_under_torchrun_shards_each_view(trained: tuple[Path, str], tmp_path: Path) -> None:
    """Behind an ART defence, both gradient views are sharded: one process's per-input results, one merged file."""
    arguments = [str(trained[0] / "best.pt"), *MODEL, "--nb-images", "21", "--attacks", "clean", "fgsm",
                 "--defence", "feature-squeezing"]
    assert main(["eval", *arguments, "--out", str(tmp_path / "one")]) == 0
    result = torchrun("eval", *arguments, "--out", str(tmp_path / "two"))
    succeeded(result)
    one, two = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two"))
    assert two["n_inputs"] == 21 and two["correct"] == one["correct"] and "fgsm_bpda" in two["correct"]
    assert sorted(path.name for path in tmp_path.glob("two*")) == [
        "two.bpda.rank0of2.json", "two.bpda.rank1of2.json", "two.exact.rank0of2.json", "two.exact.rank1of2.json",
        "two.json", "two.md"]
    assert result.stdout.count("Saved ") == 1
