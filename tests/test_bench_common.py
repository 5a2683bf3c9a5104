"""The benchmarks' paired speed: per-round ratios, their geometric mean and its t-interval."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from bench import profile_method
from bench.common import paired_speed


def test_the_paired_speed_is_the_geometric_mean_of_the_rounds_ratios_with_a_t_interval() -> None:
    variant, reference = [2.0, 4.0, 1.0], [1.0, 4.0, 2.0]  # ratios 0.5, 1, 2: logs -ln2, 0, ln2
    mean, low, high = paired_speed(variant, reference)
    half = stats.t.ppf(0.975, 2) * math.log(2) / math.sqrt(3)  # the logs' sample std is ln 2
    assert mean == pytest.approx(1.0) and (low, high) == pytest.approx((math.exp(-half), math.exp(half)))


def test_a_drift_of_the_machine_between_rounds_drops_out_of_the_paired_speed() -> None:
    slow_down = [1.0, 1.3, 0.9, 1.5]  # every round at another speed, both sides alike
    mean, low, high = paired_speed([1.1 * factor for factor in slow_down], slow_down)
    assert mean == pytest.approx(1 / 1.1) and low == pytest.approx(mean) and high == pytest.approx(mean)


def test_one_round_gives_no_interval() -> None:
    mean, low, high = paired_speed([2.0], [1.0])
    assert mean == pytest.approx(0.5) and math.isnan(low) and math.isnan(high)


def test_the_profile_lists_each_sides_kernels(capsys: pytest.CaptureFixture[str]) -> None:
    assert profile_method.main(["natural", "--nb-samples", "256", "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("natural: ") and "Python calls (ours)" in lines[0] and len(lines) == 4
    assert all(" ours " in line and " plain " in line for line in lines[1:])
