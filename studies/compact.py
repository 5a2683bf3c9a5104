"""Store the finished runs under studies/ compactly: each run folder keeps what the tables, a resume and a
re-evaluation need, and drops what only training needed.

    OMP_NUM_THREADS=1 .venv/bin/python studies/compact.py                  # every run folder under studies/
    OMP_NUM_THREADS=1 .venv/bin/python studies/compact.py studies/digits   # the runs under one folder

In each finished run folder (its run.json says ``finished``; a compare's runs and a tuning's alike):

- every robustness report kept as JSON (``eval_*``, ``full_*``, ``autoattack_*``, their defence views) is stored in
  its compact form (``.npz``: flags packed eight to a byte), checked to read back to the same report, and the JSON is
  deleted;
- ``best.pt`` is deleted once ``student.pt`` is checked to hold its weights (the optimizer, scheduler and RNG
  states in it only continue training, which a finished run never does), and ``last.pt`` is deleted: the reports
  of the last checkpoint hold every number the tables use (where the last epoch was the best one, ``student.pt``
  still holds its weights);
- ``figures/`` is deleted: the compare's (or tuning's) own figures and tables show every run, and a run's two
  charts are drawn again from its metrics.jsonl and results by ``art_rslad.report``.

Unfinished runs are left as they are: their checkpoints and JSON states are what a resume continues from; run this
again once they finish. Every new file is written atomically and checked before the old one is deleted, so the
command can be interrupted and run again, and on a compacted folder it does nothing. See docs/runs.md, "Compact run
folders".
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from art_rslad.checkpoint import load_checkpoint, load_file
from art_rslad.evaluation.report import REPORT_FORMAT, RobustnessReport, store_finished
from art_rslad.experiments.folders import FIGURES, RUN_FORMAT, read_json

STUDIES = Path(__file__).resolve().parent
#: JSON files of a run folder that are not robustness reports.
NOT_REPORTS = ("run.json", "student.json")


def _same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def _as_text(report: RobustnessReport) -> str:
    return json.dumps(report.to_dict(), sort_keys=True)  # NaN compares equal as text


def compact_reports(run: Path) -> list[str]:
    """Store each JSON report of ``run`` in its compact form and delete the JSON; return what was done."""
    done = []
    for path in sorted(run.glob("*.json")):
        if path.name in NOT_REPORTS:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(data, dict) and data.get("format") == REPORT_FORMAT and "correct" in data):
            continue
        report = RobustnessReport.from_dict(data)
        if _as_text(RobustnessReport.from_compact(report.to_compact())) != _as_text(report):
            raise ValueError(f"{path}: the compact form does not read back to the same report; it is kept as JSON.")
        done.append(f"{path.name} -> {store_finished(report, path).name}")
    return done


def compact_checkpoints(run: Path) -> list[str]:
    """Delete ``best.pt`` and ``last.pt`` once ``student.pt`` is checked to hold the best weights; return what was
    done."""
    done = []
    student = load_file(run / "student.pt")
    if (run / "best.pt").is_file():
        if not _same_weights(load_checkpoint(run / "best.pt")["model_state"], student):
            raise ValueError(f"{run}: student.pt does not hold the weights of best.pt; both are kept.")
        (run / "best.pt").unlink()
        done.append("best.pt deleted (student.pt holds its weights)")
    if (run / "last.pt").is_file():
        (run / "last.pt").unlink()
        done.append("last.pt deleted (the run is finished; its reports hold the last checkpoint's results)")
    return done


def compact_run(run: Path) -> list[str]:
    """Compact one run folder if its run is finished; return what was done (nothing for an unfinished run)."""
    marker = read_json(run / "run.json")
    if marker.get("format") != RUN_FORMAT or marker.get("status") != "finished":
        return []
    done = compact_reports(run)
    if (run / "student.pt").is_file():
        done += compact_checkpoints(run)
    if (run / FIGURES).is_dir():
        shutil.rmtree(run / FIGURES)
        done.append(f"{FIGURES}/ deleted")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="*", default=[STUDIES],
                        help="Folders searched for run folders (default: studies/).")
    args = parser.parse_args(argv)
    runs = sorted({marker.parent for folder in args.folders for marker in folder.rglob("run.json")})
    unfinished = 0
    for run in runs:
        done = compact_run(run)
        unfinished += read_json(run / "run.json").get("status") != "finished"
        for step in done:
            print(f"{run}: {step}")
    print(f"{len(runs)} run folders; {unfinished} unfinished, left as they are.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
