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
  still holds its weights); a teacher the method trained further (a network it trains from a teacher, as CIARD's
  ``teacher.pt``, a hundred times a study's student) is deleted too: the tables read the student's reports only, and
  training the run again makes it; a network built like the student (PeerAiD's ``peer.pt``) is kept;
- ``figures/`` is deleted: the compare's (or tuning's) own figures and tables show every run, and a run's two
  charts are drawn again from its metrics.jsonl and results by ``art_rslad.report``;
- ``metrics.jsonl`` and ``run.log`` are stored gzip-compressed (``metrics.jsonl.gz``, ``run.log.gz``; every line
  kept, checked to read back), and the model card ``student.json`` names metrics.jsonl instead of repeating its
  per-epoch records (checked to be the same records first).

In a compare folder whose runs are all finished, ``compare.log`` is stored compressed the same way; a log that a
later resume starts again is appended to the compressed one as a new gzip member the next time this runs.

Unfinished runs are left as they are: their checkpoints and JSON states are what a resume continues from; run this
again once they finish. Every new file is written atomically and checked before the old one is deleted, so the
command can be interrupted and run again, and on a compacted folder it does nothing. See docs/runs.md, "Compact run
folders".
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from art_rslad.checkpoint import load_checkpoint, load_file, write_bytes_atomic
from art_rslad.evaluation.report import REPORT_FORMAT, RobustnessReport, store_finished
from art_rslad.experiments.folders import (
    COMPRESSED,
    FIGURES,
    RUN_FORMAT,
    RUNS,
    load_run_history,
    read_json,
    write_json,
)
from art_rslad.experiments.lock import FolderBusyError, FolderLock
from art_rslad.experiments.variants import parse_method

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


def compact_checkpoints(run: Path, method: str) -> list[str]:
    """Delete ``best.pt`` and ``last.pt`` once ``student.pt`` is checked to hold the best weights, and the weights of
    every network ``method`` (a spec) trains from a teacher (CIARD's ``teacher.pt``); return what was done."""
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
    for network in parse_method(method).method.trained_networks:
        if network.start != "student" and (run / network.file).is_file():
            (run / network.file).unlink()
            done.append(f"{network.file} deleted (a teacher the method trained further: no table or re-evaluation "
                        "of the student reads it)")
    return done


def compress(path: Path, append: bool) -> list[str]:
    """Store ``path`` gzip-compressed beside it and delete it, checked to read back first; with ``append``, as a new
    member after what the compressed file already holds (a log continued by a later session). Nothing to do where
    ``path`` is not there."""
    if not path.is_file():
        return []
    packed = path.with_name(path.name + COMPRESSED)
    data = path.read_bytes()
    before = packed.read_bytes() if append and packed.is_file() else b""
    write_bytes_atomic(before + gzip.compress(data, mtime=0), packed)
    if gzip.decompress(packed.read_bytes()) != gzip.decompress(before) + data:
        raise ValueError(f"{packed} does not read back to {path.name}; {path.name} is kept.")
    path.unlink()
    return [f"{path.name} -> {packed.name}"]


def compact_card(run: Path) -> list[str]:
    """Let the model card name metrics.jsonl instead of repeating its records (once checked to be the same)."""
    path = run / "student.json"
    card = read_json(path) if path.is_file() else {}
    history = card.get("training", {}).get("history")
    if not isinstance(history, list):
        return []
    if history != load_run_history(run):
        raise ValueError(f"{path}: its history differs from the run's metrics.jsonl; the card is kept as it is.")
    card["training"]["history"] = "metrics.jsonl"
    write_json(path, card)
    return ["student.json names metrics.jsonl instead of repeating it"]


def compact_compare(folder: Path) -> list[str]:
    """Compress the compare's log once every run under it is finished."""
    markers = [read_json(marker) for marker in (folder / RUNS).rglob("run.json")]
    if not markers or any(marker.get("status") != "finished" for marker in markers):
        return []
    return compress(folder / "compare.log", append=True)


def compact_run(run: Path) -> list[str]:
    """Compact one run folder if its run is finished; return what was done (nothing for an unfinished run)."""
    marker = read_json(run / "run.json")
    if marker.get("format") != RUN_FORMAT or marker.get("status") != "finished":
        return []
    done = compact_reports(run)
    if (run / "student.pt").is_file():
        done += compact_checkpoints(run, marker["identity"]["method"])
    if (run / FIGURES).is_dir():
        shutil.rmtree(run / FIGURES)
        done.append(f"{FIGURES}/ deleted")
    done += compact_card(run)
    done += compress(run / "metrics.jsonl", append=False)
    return done + compress(run / "run.log", append=True)


def _compact_held(folder: Path, compact: Callable[[Path], list[str]]) -> list[str]:
    """``compact(folder)`` while holding the folder's lock; nothing where a live process holds it (a run or
    compare still writing there)."""
    try:
        with FolderLock(folder, "folders"):
            return compact(folder)
    except FolderBusyError as error:
        return [f"left as it is: {error}"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="*", default=[STUDIES],
                        help="Folders searched for run folders (default: studies/).")
    args = parser.parse_args(argv)
    runs = sorted({marker.parent for folder in args.folders for marker in folder.rglob("run.json")})
    compares = sorted({marker.parent for folder in args.folders for marker in folder.rglob("compare.json")})
    steps: list[tuple[Path, Callable[[Path], list[str]]]] = [*((run, compact_run) for run in runs),
                                                             *((compare, compact_compare) for compare in compares)]
    for folder, compact in steps:
        for step in _compact_held(folder, compact):
            print(f"{folder}: {step}")
    unfinished = sum(read_json(run / "run.json").get("status") != "finished" for run in runs)
    print(f"{len(runs)} run folders; {unfinished} unfinished, left as they are.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
