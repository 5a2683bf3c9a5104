"""How far the pinned checksums of tests/test_numerics_pinned.py move with the CPU's kernels and the thread count,
against how far a real change of a method's numbers moves them.

Runs each method's one seeded epoch in a fresh process per torch CPU kernel set (``ATEN_CPU_CAPABILITY``: the
kernels torch would pick on a CPU with AVX-512, with AVX2 only, or with neither) and per thread count, then prints
each checksum's largest relative distance from its pin. Usage (its output is bench/results/numerics-spread.txt)::

    python bench/numerics_spread.py > bench/results/numerics-spread.txt
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]  # the pinned test's own epoch and pins, the checkout's package

from conftest import load_teacher  # noqa: E402
from test_numerics_pinned import PINNED, one_epoch_checksum, tolerance  # noqa: E402

CAPABILITIES = ("avx512", "avx2", "default")
THREADS = (1, 2)
CHANGES = ({"lr": 0.051}, {"eps_step": 0.026})


def _checksums(changes: list[dict]) -> dict[str, float]:
    """Inside one child process: every pinned method's checksum, then each method's under each change."""
    teacher = load_teacher("zoo:fashion-mnist-cnn-large", "fashion-mnist", device="cpu")
    sums = {method: one_epoch_checksum(method, teacher) for method in PINNED}
    for change in changes:
        for method in PINNED:
            sums[f"{method} {change}"] = one_epoch_checksum(method, teacher, **change)
    return sums


def main() -> None:
    if len(sys.argv) > 1:
        print(json.dumps(_checksums(json.loads(sys.argv[1]))))
        return
    spread = dict.fromkeys(PINNED, 0.0)
    for capability in CAPABILITIES:
        for threads in THREADS:
            env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": str(threads)}
            changes = list(CHANGES) if (capability, threads) == (CAPABILITIES[0], 1) else []
            out = subprocess.run([sys.executable, __file__, json.dumps(changes)], env=env, check=True,
                                 capture_output=True, text=True).stdout
            sums = json.loads(out.splitlines()[-1])
            print(f"kernels {capability:8} threads {threads}: " + ", ".join(
                f"{method} {sums[method]:.12f}" for method in PINNED))
            for method in PINNED:
                spread[method] = max(spread[method], abs(sums[method] / PINNED[method] - 1))
            for name, value in sums.items():
                if name not in PINNED:
                    method = name.split()[0]
                    print(f"  real change, {name}: relative move {abs(value / PINNED[method] - 1):.2e}")
    print("largest relative distance from the pin, over kernels and threads, and the test's tolerance:")
    for method, value in spread.items():
        print(f"  {method:14} {value:.2e}  tolerance {tolerance(method):.0e}")


if __name__ == "__main__":
    main()
