"""The long-schedule study's table step (studies/long-schedule/table.py) on a fabricated study: paired differences,
t-intervals checked by hand, the verdicts, and unfinished runs left out."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from art_rslad.evaluation import AttackResult, RobustnessReport
from art_rslad.experiments.config import Config, TeacherConfig
from art_rslad.experiments.folders import run_folder, write_json
from art_rslad.report import PAPER_ATTACKS

SCRIPT = Path(__file__).resolve().parents[1] / "studies" / "long-schedule" / "table.py"
NB_TEST = 20
METHODS = ["sat", "ard", "rslad", "sat+ema", "rslad+ema"]  # rslad+ema: no run at all
#: AA of the (best, last) checkpoints per method and seed; None: the run is not finished.
AA: dict[str, dict[int, tuple[float, float] | None]] = {
    "sat": {0: (0.50, 0.45), 1: (0.55, 0.55), 2: (0.60, 0.50)},
    "ard": {0: (0.70, 0.70), 1: (0.75, 0.70), 2: (0.80, 0.80)},
    "rslad": {0: (0.60, 0.60), 1: (0.65, 0.60), 2: (0.75, 0.70)},
    "sat+ema": {0: (0.55, 0.55), 1: None},
}


@pytest.fixture(scope="module")
def table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("long_schedule_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _report(accuracy: dict[str, float], nb_inputs: int) -> RobustnessReport:
    report = RobustnessReport(eps=0.1, n_inputs=nb_inputs, labels=np.zeros(nb_inputs, dtype=np.int64))
    for name, value in accuracy.items():
        flags = np.arange(nb_inputs) < round(value * nb_inputs)
        report.add(AttackResult(name, "clean" if name == "clean" else "white-box", flags, 1.0, 0.1))
    return report


def _accuracy(aa: float) -> dict[str, float]:
    return {name: min(1.0, aa + 0.05 * (len(PAPER_ATTACKS) - index - 1)) for index, name in enumerate(PAPER_ATTACKS)}


def _run(folder: Path, method: str, seed: int, identity: dict[str, Any], aa: tuple[float, float] | None) -> None:
    folder.mkdir(parents=True)
    history = [{"epoch": epoch, "val_clean": 0.9, "val_pgd": 0.1 * epoch + 0.01 * seed} for epoch in range(1, 5)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in history), encoding="utf-8")
    marker = {"format": "art-rslad-run", "identity": {**identity, "method": method}, "best_epoch": 2 + seed % 3}
    if aa is None:  # still training: no report, no accuracy
        write_json(folder / "run.json", {**marker, "status": "training"})
        return
    accuracy = {"best": _accuracy(aa[0]), "last": _accuracy(aa[1])}
    for checkpoint, values in accuracy.items():
        _report(values, NB_TEST).save(folder / f"eval_{checkpoint}.npz")
    write_json(folder / "run.json", {**marker, "status": "finished", "accuracy": accuracy, "nb_test": NB_TEST})


@pytest.fixture
def study(tmp_path: Path) -> Path:
    config = Config(name="fake", dataset="digits", student="cnn-small", nb_epochs=4, batch_size=16, lr=0.05,
                    eps=0.1, eps_step=0.025, max_iter=2, teacher=TeacherConfig(source="zoo:digits-cnn-large"))
    identity = {"config": config.to_dict(), "train_size": 100, "val_size": 16, "test_size": NB_TEST,
                "attacks": list(PAPER_ATTACKS), "student_options": {"width": 2}}
    part = tmp_path / "part"
    for seed in range(3):
        compare = part / f"seed-{seed}"
        compare.mkdir(parents=True)
        write_json(compare / "compare.json", {"format": "art-rslad-compare", "identity": identity,
                                              "methods": METHODS, "seeds": [seed]})
        for method, seeds in AA.items():
            if seed in seeds:
                _run(run_folder(compare, method, seed), method, seed, identity, seeds[seed])
    return part


def test_the_t_interval_is_the_hand_computed_one(table: ModuleType) -> None:
    t2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # Student's t quantile with 2 degrees of freedom, in closed form
    low, high = table.t_interval([1.0, 2.0, 3.0])  # mean 2, sample std 1
    assert (low, high) == pytest.approx((2 - t2 / math.sqrt(3), 2 + t2 / math.sqrt(3)))
    t1 = math.tan(math.pi * 0.475)  # 1 degree of freedom: the Cauchy quantile
    assert table.t_interval([0.1, 0.2]) == pytest.approx((0.15 - t1 * 0.05, 0.15 + t1 * 0.05))
    assert table.t_interval([0.3]) is None and table.t_interval([]) is None


def test_the_verdicts(table: ModuleType) -> None:
    holds, contradicted, open_ = table.HOLDS, table.CONTRADICTED, table.NOT_RESOLVED
    assert table.verdict((0.01, 0.2), 1) == holds and table.verdict((-0.2, -0.01), -1) == holds
    assert table.verdict((0.01, 0.2), -1) == contradicted and table.verdict((-0.2, -0.01), 1) == contradicted
    assert table.verdict((-0.1, 0.2), 1) == open_ and table.verdict((0.0, 0.2), 1) == open_
    assert table.verdict(None, 1) == open_
    assert table.all_verdict([holds, holds]) == holds and table.all_verdict([holds, open_]) == open_
    assert table.all_verdict([holds, contradicted]) == contradicted and table.all_verdict([]) == open_


def test_a_best_epoch_missing_from_the_records_is_named(table: ModuleType) -> None:
    run = table.Run(best_epoch=7, accuracy={}, history=[{"epoch": 1, "val_pgd": 0.5}])
    with pytest.raises(ValueError, match="no record of its best epoch 7"):
        table.best_val_pgd(run)


def test_the_table_of_a_study(table: ModuleType, study: Path, tmp_path: Path) -> None:
    out = tmp_path / "docs" / "results-long-schedule-fake"
    assert table.main([str(study), "--out", str(out)]) == 0
    summary = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    found = {item["comparison"]: item for item in summary["comparisons"]}
    t2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)

    first = found["AA(rslad) - AA(sat)"]  # differences 0.10, 0.10, 0.15
    half = t2 * float(np.std([0.10, 0.10, 0.15], ddof=1)) / math.sqrt(3)
    assert first["differences"] == pytest.approx([0.10, 0.10, 0.15]) and first["seeds"] == [0, 1, 2]
    assert first["mean"] == pytest.approx(0.35 / 3)
    assert first["interval"] == pytest.approx([0.35 / 3 - half, 0.35 / 3 + half]) and first["verdict"] == "holds"
    second = found["AA(rslad) - AA(ard)"]  # -0.10, -0.10, -0.05: the same spread, below 0
    assert second["mean"] == pytest.approx(-0.25 / 3) and second["verdict"] == "contradicted"
    assert summary["h1"] == "contradicted"
    drop = found["(AA best - AA last)(rslad) - (AA best - AA last)(sat)"]  # (0, .05, .05) - (.05, 0, .10)
    assert drop["differences"] == pytest.approx([-0.05, 0.05, -0.05]) and drop["verdict"] == "not resolved at this size"
    ema = found["AA(sat+ema) - AA(sat)"]  # seed 1 still training, seed 2 never started
    assert ema["seeds"] == [0] and ema["interval"] is None and ema["verdict"] == "not resolved at this size"
    assert found["AA(rslad+ema) - AA(rslad)"]["seeds"] == []
    assert len(found) == summary["nb_comparisons"] == 5  # no H3: neither IGDM variant is in this part

    assert summary["best_epoch"]["sat+ema"] == {"0": 2} and summary["best_epoch"]["rslad"] == {"0": 2, "1": 3, "2": 4}
    assert summary["aa_best_minus_last"]["sat"] == pytest.approx({"0": 0.05, "1": 0.0, "2": 0.10})
    assert summary["best_distillation"] == "ard"  # mean AA 0.75 against RSLAD's 0.667
    rows = {(row["method"], row["checkpoint"]): row["cells"] for row in summary["table"]["rows"]}
    assert rows[("sat+ema", "best")]["autoattack"]["values"] == [0.55]
    assert rows[("ard", "last")]["autoattack"]["mean"] == pytest.approx(0.7333333)
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert summary["best_val_pgd"]["rslad"] == pytest.approx({"0": 0.2, "1": 0.31, "2": 0.42})  # at each best epoch
    assert "no finished run yet: rslad+ema" in markdown and "| sat+ema | 0 | 0: 2 | 20.00 |" in markdown
    assert "5 comparisons, no correction for multiple comparisons" in markdown
    assert "1 seed)" in markdown  # H4's gap to sat+ema, on its one finished seed
    assert "pgd_sat 88.02 (N=359), autoattack 87.19 (N=359)" in markdown  # the teacher's card, images per attack
    assert out.with_name(out.name + "-curves.png").is_file() and out.with_name(out.name + "-bars.png").is_file()


def test_full_test_takes_the_whole_test_set_reports_and_the_runs_own_aa(table: ModuleType, study: Path,
                                                                        tmp_path: Path) -> None:
    nb_full = 359  # the digits test set; the reports are there, so nothing is attacked
    for marker in study.glob("seed-*/runs/*/seed-*/run.json"):
        for checkpoint in ("best", "last"):
            _report({name: 0.9 for name in table.FULL_ATTACKS}, nb_full).save(marker.parent / f"full_{checkpoint}.npz")
    out = tmp_path / "full"
    assert table.main([str(study), "--full-test", "--out", str(out)]) == 0
    summary = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    cells = {row["method"]: row["cells"] for row in summary["table"]["rows"] if row["checkpoint"] == "best"}
    assert cells["sat"]["clean"]["values"] == pytest.approx([323 / nb_full] * 3)  # 0.9 of 359 inputs, rounded
    assert cells["sat"]["autoattack"]["values"] == pytest.approx([0.50, 0.55, 0.60])
    assert summary["nb_full_test"] == nb_full and summary["nb_autoattack"] == NB_TEST


def test_run_sh_asks_for_the_width_step_before_part_b_needs_its_width(tmp_path: Path) -> None:
    """Without fashion-mnist-width.json, the width step must still start and the others must say what to run."""
    here = tmp_path / "studies" / "long-schedule"
    here.mkdir(parents=True)
    shutil.copy(SCRIPT.with_name("run.sh"), here / "run.sh")
    tune = subprocess.run(["sh", str(here / "run.sh"), "fashion-mnist", "tune", "1/2"], capture_output=True, text=True)
    assert tune.returncode == 2 and "run the width step first" in tune.stderr
    width = subprocess.run(["sh", str(here / "run.sh"), "fashion-mnist", "width"], capture_output=True, text=True)
    assert "run the width step first" not in width.stderr
    assert ".venv/bin/python" in width.stderr  # it got as far as starting the rule (no venv in the copy)
