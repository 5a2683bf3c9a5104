"""One timed run of each kind the capacity study plans, on training and validation data only (no test image).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python studies/capacity/time_kinds.py --out /tmp/capacity-timing

- ``train W METHOD``: two epochs of METHOD at ``cnn-small`` width W on the study's 10,000 training images with
  PGD-10 validation on 1,000 validation images (a tuning run and a study run are such epochs, 10 or 30 of them);
- ``attacks``: clean to CW_inf and standard AutoAttack on 1,000 *validation* images of a robust width-4 student
  (the long-schedule study's SAT, seed 0), the evaluation of one checkpoint (the study runs clean to CW_inf on
  10,000 test images: ten times that part).

Prints wall-clock and process CPU seconds of each (one thread; the machine is shared, so CPU time is the steadier
number) and writes them to ``timing.json`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from art_rslad.data import load_dataset, train_val_split
from art_rslad.evaluation import evaluate_robustness
from art_rslad.experiments.config import get_preset
from art_rslad.experiments.train import RunSettings, train_run
from studies.full_test import FULL_ATTACKS, load_student

HERE = Path(__file__).resolve().parent
ROBUST_STUDENT = HERE.parent / "long-schedule" / "fashion-mnist" / "seed-0" / "runs" / "sat" / "seed-0"


def timed(step, *args, **kwargs) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    step(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="Scratch folder of the timing runs.")
    args = parser.parse_args()
    config = get_preset("fashion-mnist").with_overrides(["nb_epochs=2", "seed=0", "method_lr.sat=0.1",
                                                         "method_lr.rslad=1"])
    found: dict[str, dict[str, float]] = {}
    for width in (1, 8):
        for method in ("sat", "rslad"):
            settings = RunSettings(train_size=10_000, val_size=1000, test_size=0, student_options={"width": width},
                                   verbose=False)
            wall, cpu = timed(train_run, config, args.out / f"{method}-width-{width}", method, settings)
            found[f"train width {width} {method}, 2 epochs"] = {"wall_s": wall, "cpu_s": cpu}
            print(f"width {width} {method}: 2 epochs {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    classifier, student_config, _ = load_student(ROBUST_STUDENT, "best")
    x, y = load_dataset("fashion-mnist", "train")
    _, _, x_val, y_val = train_val_split(x, y, student_config.val_fraction, 0)
    for attacks in (FULL_ATTACKS, ("autoattack",)):
        wall, cpu = timed(evaluate_robustness, classifier, x_val[:1000], y_val[:1000], eps=student_config.eps,
                          attacks=attacks, batch_size=student_config.batch_size, seed=0, verbose=False)
        found[f"{' '.join(attacks)} on 1,000 validation images, width-4 SAT"] = {"wall_s": wall, "cpu_s": cpu}
        print(f"{' '.join(attacks)}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    (HERE / "timing" / "timing.json").write_text(json.dumps(found, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
