"""Timing and memory helpers shared by the benchmarks in ``bench/``.

Every benchmark runs its variants interleaved in one process, in alternating order (a, b, c, c, b, a, ...), and
reports medians, so that load from other processes on a shared machine and order effects hit every variant alike.
Besides wall-clock time it records the process's CPU time, which other processes' load disturbs far less (with one
thread, CPU time ~ work done).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from scipy import stats

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"))


def start_benchmark(threads: int | None, seed: int, device: str) -> torch.device:
    """A benchmark's common start: warnings only in the log, torch's threads and seed set, the device."""
    logging.basicConfig(level=logging.WARNING)
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return torch.device(device)


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as stream:
        return int(stream.read().split()[1]) * _PAGE_BYTES


@contextmanager
def peak_memory(device: torch.device, interval_s: float = 0.002) -> Iterator[list[float]]:
    """Yield a one-element list that holds, after the block, its peak memory in MiB above the level before it.

    CUDA: ``torch.cuda.max_memory_allocated`` (exact). CPU: the process's resident set size sampled every
    ``interval_s`` by a background thread, after glibc's ``malloc_trim(0)`` has returned freed memory to the
    system (an estimate: fragmentation and spikes shorter than the interval blur it).
    """
    result = [0.0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result[0] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        return
    _LIBC.malloc_trim(0)
    before = _rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _rss_bytes())
        result[0] = (peak[0] - before) / 2**20


@dataclass
class Measurements:
    """Wall-clock seconds, CPU seconds and peak MiB of each repetition of one variant."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)

    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    def median_cpu_seconds(self) -> float:
        return statistics.median(self.cpu_seconds)

    def median_peak_mib(self) -> float:
        return statistics.median(self.peak_mib)


def run_interleaved(
    variants: dict[str, Callable[[], None]], repeats: int, device: torch.device, warmup: int = 1
) -> dict[str, Measurements]:
    """Run every variant ``warmup`` times untimed, then ``repeats`` rounds of all variants, every other round in
    reverse order."""
    for _ in range(warmup):
        for run in variants.values():
            run()
    results = {name: Measurements() for name in variants}
    for round_index in range(repeats):
        order = list(variants.items())
        for name, run in order[::-1] if round_index % 2 else order:
            with peak_memory(device) as peak:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started, cpu_started = time.perf_counter(), time.process_time()
                run()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                elapsed, cpu_elapsed = time.perf_counter() - started, time.process_time() - cpu_started
            results[name].seconds.append(elapsed)
            results[name].cpu_seconds.append(cpu_elapsed)
            results[name].peak_mib.append(peak[0])
    return results


def format_table(results: dict[str, Measurements], nb_items: int, unit: str, reference: str) -> str:
    """A markdown table of items per second, peak memory and the speed of each variant relative to ``reference``
    (``reference``'s median time over the variant's: above 1 is faster), by wall-clock and by CPU time."""
    base, cpu_base = results[reference].median_seconds(), results[reference].median_cpu_seconds()
    lines = [f"| variant | {unit}/s (median) | wall s (median, min-max) | CPU s (median) | peak MiB (median) "
             f"| speed vs {reference} (wall) | (CPU) |", "|---|---|---|---|---|---|---|"]
    for name, measured in results.items():
        seconds, cpu_seconds = measured.median_seconds(), measured.median_cpu_seconds()
        lines.append(f"| {name} | {nb_items / seconds:.1f} | {seconds:.3f} ({min(measured.seconds):.3f}-"
                     f"{max(measured.seconds):.3f}) | {cpu_seconds:.3f} | {measured.median_peak_mib():.0f} "
                     f"| {base / seconds:.3f}x | {cpu_base / cpu_seconds:.3f}x |")
    return "\n".join(lines)


def paired_speed(variant: list[float], reference: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """The reference's time over the variant's, round by round (the two ran next to each other in every round):
    their geometric mean and its two-sided t-interval, (mean, low, high). Drifts of the machine's speed between
    rounds hit both sides of a pair alike and drop out of each ratio."""
    logs = [math.log(base / ours) for ours, base in zip(variant, reference, strict=True)]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), math.nan, math.nan
    half = float(stats.t.ppf((1 + level) / 2, len(logs) - 1)) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def ratio_rows(results: dict[str, Measurements], pairs: dict[str, tuple[str, str]]) -> list[dict[str, float | str]]:
    """One row per ``label -> (variant, reference)``: medians of both and the variant's speed (reference time over
    the variant's: above 1 is faster) and memory (variant's peak over the reference's) relative to the reference;
    and the paired CPU speed (:func:`paired_speed`) with its 95% interval."""
    rows: list[dict[str, float | str]] = []
    for label, (name, reference) in pairs.items():
        ours, base = results[name], results[reference]
        paired = paired_speed(ours.cpu_seconds, base.cpu_seconds)
        rows.append({
            "label": label, "variant": name, "reference": reference,
            "cpu_s": ours.median_cpu_seconds(), "reference_cpu_s": base.median_cpu_seconds(),
            "wall_s": ours.median_seconds(), "reference_wall_s": base.median_seconds(),
            "speed_cpu": base.median_cpu_seconds() / ours.median_cpu_seconds(),
            "speed_wall": base.median_seconds() / ours.median_seconds(),
            "peak_mib": ours.median_peak_mib(), "reference_peak_mib": base.median_peak_mib(),
            "memory_ratio": ours.median_peak_mib() / max(base.median_peak_mib(), 1e-9),
            "speed_cpu_paired": paired[0], "speed_cpu_paired_low": paired[1], "speed_cpu_paired_high": paired[2],
        })
    return rows


def format_ratio_table(rows: list[dict[str, float | str]], memory_unit: str) -> str:
    """A markdown table of :func:`ratio_rows`: CPU time first (the column to read on a shared machine)."""
    lines = [f"| variant | vs | CPU s (median) | reference CPU s | speed vs reference (CPU) | paired speed (CPU, "
             f"95% interval) | wall s | reference wall s | speed (wall) | peak {memory_unit} | reference peak | "
             "memory vs reference |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['label']} | {row['reference']} | {row['cpu_s']:.3f} | {row['reference_cpu_s']:.3f} "
                     f"| {row['speed_cpu']:.3f}x | {row['speed_cpu_paired']:.3f}x ({row['speed_cpu_paired_low']:.3f}-"
                     f"{row['speed_cpu_paired_high']:.3f}) | {row['wall_s']:.3f} | {row['reference_wall_s']:.3f} "
                     f"| {row['speed_wall']:.3f}x | {row['peak_mib']:.1f} | {row['reference_peak_mib']:.1f} "
                     f"| {row['memory_ratio']:.2f}x |")
    return "\n".join(lines)


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, thread count, date and device of a measurement."""
    info: dict[str, Any] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "torch": str(torch.__version__), "python": platform.python_version(),
                            "threads": torch.get_num_threads(), "device": str(device), "cpu": platform.processor()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_json(path: str | os.PathLike[str], settings: dict[str, Any], results: dict[str, Measurements],
               nb_items: int, **extra: Any) -> None:
    """The raw measurements of every variant with the run's settings and environment, as JSON at ``path``."""
    payload = {**settings, "nb_items": nb_items, "variants": {name: asdict(m) for name, m in results.items()},
               **extra}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
