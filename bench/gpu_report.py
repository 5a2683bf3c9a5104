"""Collect the results of ``bench/gpu_check.sh`` into one JSON and one markdown page.

Run by the script as ``python3 -m bench.gpu_report OUT_DIR``: reads ``OUT_DIR/steps.jsonl`` (one line per step:
name, exit status, seconds, the step's JSON if it wrote one) and writes ``OUT_DIR/gpu-check.json`` and
``OUT_DIR/gpu-check.md``. Exits 1 when a step failed.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def read_steps(folder: Path) -> list[dict[str, Any]]:
    """The steps in the order they ran, each with its JSON results (``results``) where it wrote them."""
    steps = []
    for line in (folder / "steps.jsonl").read_text(encoding="utf-8").splitlines():
        step = json.loads(line)
        result_file = folder / f"{step['step']}.json"
        if result_file.is_file():
            step["results"] = json.loads(result_file.read_text(encoding="utf-8"))
        log = folder / f"{step['step']}.log"
        log_lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() if log.is_file() else []
        step["last_line"] = log_lines[-1].strip() if log_lines else ""
        steps.append(step)
    return steps


def training_rows(steps: list[dict[str, Any]]) -> list[str]:
    """One markdown row per timed training variant: images/s, peak memory and speed against the plain loop."""
    lines = ["| step | amp | channels_last | variant | images/s | peak MiB | speed vs plain (wall) | (CPU) |",
             "|---|---|---|---|---|---|---|---|"]
    for step in steps:
        results = step.get("results", {})
        if results.get("benchmark") != "training":
            continue
        by_variant = {row["variant"]: row for row in results["rows"]}
        for name, images_per_s in results["images_per_s"].items():
            peak = statistics.median(results["variants"][name]["peak_mib"])
            row = by_variant.get(name)
            speed = f"{row['speed_wall']:.3f}x | {row['speed_cpu']:.3f}x" if row else "1.000x | 1.000x"
            lines.append(f"| {step['step']} | {results['amp_dtype']} | {results['channels_last']} | {name} "
                         f"| {images_per_s:.1f} | {peak:.0f} | {speed} |")
    return lines


def path_lines(steps: list[dict[str, Any]]) -> list[str]:
    """What the nccl, resume and syncs steps found (bench/gpu_paths.py), and what they could not cover."""
    found = {step["results"]["benchmark"]: step["results"] for step in steps
             if step.get("results", {}).get("benchmark") in ("nccl", "resume", "syncs")}
    lines = ["", "## GPU paths", ""]
    if "nccl" in found:
        nccl = found["nccl"]
        lines.append(f"- Process group: backend {nccl['backend']}, {nccl['world_size']} rank(s); ran "
                     f"{', '.join(nccl['covered'])}; not covered: {', '.join(nccl['not_covered']) or 'nothing'}.")
    if "resume" in found:
        resume = found["resume"]
        lines.append(f"- Interrupted and resumed fit, largest weight difference to the uninterrupted one: "
                     f"{resume['max_abs_difference_deterministic_False']:.3g} without `deterministic`, "
                     f"{resume['max_abs_difference_deterministic_True']:.3g} with it (one fit "
                     f"{resume['seconds_deterministic_False']:.1f} s against {resume['seconds_deterministic_True']:.1f}"
                     " s); last.pt loaded on "
                     f"{', '.join(resume['last_pt_on_cpu'])} (RNG states: {', '.join(resume['last_pt_rng'])}).")
    if "syncs" in found:
        syncs = found["syncs"]
        lines.append("- Synchronisations per training step (median): " + ", ".join(
            f"{name} {syncs[name]['syncs_per_step_median']}" for name in ("identity", "mean_std") if name in syncs)
            + (f" ({syncs['note']})" if "note" in syncs else "") + ".")
    missing = [name for name in ("nccl", "resume", "syncs") if name not in found]
    if missing:
        lines.append(f"- No result from: {', '.join(missing)} (see their logs).")
    return lines


def markdown(steps: list[dict[str, Any]]) -> str:
    first = next((s["results"] for s in steps if "results" in s and "device" in s["results"]), {})
    lines = ["# GPU check", "", f"Date {first.get('date', '?')}, device {first.get('gpu', first.get('device', '?'))},"
             f" torch {first.get('torch', '?')}.", "", "| step | exit status | seconds | last line of its log |",
             "|---|---|---|---|"]
    lines += [f"| {step['step']} | {step['rc']} | {step['seconds']} | {step['last_line'].replace('|', '/')[:160]} |"
              for step in steps]
    lines += path_lines(steps)
    lines += ["", "## Training: RSLAD through ART against the plain loop", "", *training_rows(steps)]
    for step in steps:
        results = step.get("results", {})
        if results.get("benchmark") == "autoattack":
            lines += ["", f"## Standard AutoAttack: our report against pyautoattack ({results['nb_items']} inputs)",
                      "", results["table"], "", "Robust accuracy: " + ", ".join(
                          f"{name} {value:.4f}" for name, value in results["robust_accuracy"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    steps = read_steps(folder)
    (folder / "gpu-check.json").write_text(json.dumps({"steps": steps}, indent=1) + "\n", encoding="utf-8")
    (folder / "gpu-check.md").write_text(markdown(steps), encoding="utf-8")
    print((folder / "gpu-check.md").read_text(encoding="utf-8"))
    return 0 if all(step["rc"] == 0 for step in steps) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
