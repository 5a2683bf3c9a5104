"""Where one epoch of a method goes, ours against its plain loop: each torch kernel's calls and seconds (cProfile).

    OMP_NUM_THREADS=1 PYTHONPATH=. python3 -m bench.profile_method trades --nb-samples 2048

Both sides run one warm-up epoch, then one profiled epoch; the kernels (built-in calls) are listed by the size of
the difference in their time between the two sides, with the total number of Python calls of each side.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from collections.abc import Callable

import torch

from bench.bench_methods import CASES, make_bench, ours, plain

Kernels = dict[str, tuple[int, float]]  # built-in -> (calls, seconds)


def profile(run: Callable[[], None]) -> tuple[int, Kernels]:
    """One profiled call of ``run``: its number of function calls and the built-ins' calls and seconds."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    kernels = {key[2]: (value[1], value[2]) for key, value in stats.stats.items() if key[0] == "~"}  # type: ignore[attr-defined]
    return stats.total_calls, kernels  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--nb-samples", type=int, default=2048, help="Training images (default 2048).")
    parser.add_argument("--top", type=int, default=20, help="Kernels listed (default 20).")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    bench = make_bench(args.nb_samples, 128, 10, torch.device("cpu"))
    sides = {"ours": ours(bench, CASES[args.case]), "plain": plain(bench, CASES[args.case])}
    for run in sides.values():
        run()
    measured = {name: profile(run) for name, run in sides.items()}
    print(f"{args.case}: {measured['ours'][0]} Python calls (ours), {measured['plain'][0]} (plain)")
    first, second = measured["ours"][1], measured["plain"][1]
    def gap(kernel: str) -> float:
        return abs(first.get(kernel, (0, 0.0))[1] - second.get(kernel, (0, 0.0))[1])

    for name in sorted(first.keys() | second.keys(), key=gap, reverse=True)[:args.top]:
        (calls, seconds), (plain_calls, plain_seconds) = first.get(name, (0, 0.0)), second.get(name, (0, 0.0))
        print(f"{name[:60]:60s} ours {calls:6d} calls {1000 * seconds:8.1f} ms   plain {plain_calls:6d} calls "
              f"{1000 * plain_seconds:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
