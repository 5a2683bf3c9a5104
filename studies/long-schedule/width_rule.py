"""Part B's student width, chosen on validation data only, as PREREGISTRATION.md says.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python studies/long-schedule/width_rule.py

SAT trains ``cnn-small`` at widths 2, 4 and 8 on the first 10,000 training images for the part's 30-epoch schedule
(seed 0; no test image is evaluated); the teacher is measured under the same validation attack (the trainers' PGD-10)
on the same 1,000 validation images. The rule keeps the largest width whose best SAT epoch ends at least 7 points of
validation PGD-10 accuracy below the teacher, else the smallest. Resumable; writes ``fashion-mnist-width.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from art_rslad.data import load_dataset, train_val_split
from art_rslad.experiments.config import get_preset
from art_rslad.experiments.teachers import load_teacher
from art_rslad.experiments.train import RunSettings, train_run
from art_rslad.trainers import NaturalTrainer

HERE = Path(__file__).resolve().parent
WIDTHS = (2, 4, 8)
GAP = 0.07
TRAIN, VAL, EPOCHS = 10_000, 1000, 30


def main() -> None:
    config = get_preset("fashion-mnist").with_overrides([f"nb_epochs={EPOCHS}", "seed=0"])
    x, y = load_dataset(config.dataset, "train")
    _, _, x_val, y_val = train_val_split(x, y, config.val_fraction, config.seed)
    teacher = load_teacher(config.teacher.source, config.dataset, device="cpu")
    teacher_val = NaturalTrainer(teacher, eps=config.eps, eps_step=config.eps_step, seed=0,
                                 verbose=False).validate(x_val[:VAL], y_val[:VAL])
    students = {}
    for width in WIDTHS:
        folder = HERE / "fashion-mnist-width" / f"sat-width-{width}"
        settings = RunSettings(train_size=TRAIN, val_size=VAL, test_size=0, student_options={"width": width},
                               resume=(folder / "run.json").is_file(), verbose=False)
        result = train_run(config, folder, "sat", settings)
        students[width] = max(record["val_pgd"] for record in result.history)
        print(f"width {width}: SAT best val PGD-10 {students[width]:.4f}, teacher {teacher_val['val_pgd']:.4f}",
              flush=True)
    clear = [width for width in WIDTHS if teacher_val["val_pgd"] - students[width] >= GAP]
    chosen = max(clear) if clear else min(WIDTHS)
    record = {"teacher_val": teacher_val, "sat_best_val_pgd": students, "gap": GAP, "chosen_width": chosen}
    (HERE / "fashion-mnist-width.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"chosen width: {chosen}")


if __name__ == "__main__":
    main()
