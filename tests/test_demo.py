"""The demo's teacher when none is shipped: a quick run sized, placed and resumed by the demo's settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from art_rslad.experiments.config import get_preset
from art_rslad.experiments.demo import demo_teacher
from art_rslad.experiments.train import RunSettings


def test_demo_trains_a_quick_teacher_when_none_is_shipped_and_resumes_it(tmp_path: Path) -> None:
    preset = get_preset("fashion-mnist")
    config = dataclasses.replace(preset, teacher=dataclasses.replace(preset.teacher, source="zoo:not-shipped"))
    settings = RunSettings(train_size=32, val_size=8, test_size=4, verbose=False, resume=True)
    teacher, source = demo_teacher(config, tmp_path / "teacher", settings, nb_epochs=1)
    assert source == str(tmp_path / "teacher" / "student.pt") and Path(source).is_file()
    assert teacher.nb_classes == 10
    run = json.loads((tmp_path / "teacher" / "run.json").read_text())
    assert run["identity"]["train_size"] == 32
    assert sorted(run["identity"]["attacks"]) == ["clean", "pgd_sat"]
    _, again = demo_teacher(config, tmp_path / "teacher", settings, nb_epochs=1)  # resumes the finished run
    assert again == source
