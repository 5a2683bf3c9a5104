"""The statistics of the preregistered studies: intervals, verdicts and the correction for multiple comparisons.

- :func:`t_interval`, :func:`verdict`, :func:`all_verdict`: the long-schedule study's per-seed t-intervals and the
  verdict read from an interval (its PREREGISTRATION.md).
- :func:`bootstrap_contrast`: a paired bootstrap over seeds *and* test images of a contrast of mean accuracies (a
  difference of two methods, or a difference of differences), so that an interval covers both the variation
  between training seeds and the sampling of the test images. Every array resampled is (seeds x images) of per-input
  correctness; one draw resamples the seeds and the images with replacement, the same rows and columns for every
  array (the pairing: same seed, same test images).
- :func:`holm`: Holm's step-down adjustment of p-values over a family of comparisons, and :func:`holm_verdict`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

HOLDS, CONTRADICTED, NOT_RESOLVED = "holds", "contradicted", "not resolved at this size"
#: The reading of a comparison with no predicted direction (H3 of the capacity study: a method against the best).
DISTINGUISHABLE, NOT_DISTINGUISHABLE = "distinguishable", "not distinguishable at this size"
LEVEL = 0.95
#: The family-wise error rate the Holm correction controls.
ALPHA = 0.05
#: Bootstrap draws: enough that a p-value of ALPHA / 50 (a family of 50 comparisons) is resolved.
DRAWS = 20_000
#: Draws resampled at once (memory: CHUNK x images floats).
CHUNK = 500


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Two-sided t-interval of the mean of ``values`` (n - 1 degrees of freedom); None below two values."""
    if len(values) < 2:
        return None
    mean, count = float(np.mean(values)), len(values)
    half = float(stats.t.ppf((1 + level) / 2, count - 1)) * float(np.std(values, ddof=1)) / float(np.sqrt(count))
    return mean - half, mean + half


def verdict(interval: tuple[float, float] | None, predicted: int) -> str:
    """Holds where ``interval`` excludes 0 on the side of ``predicted`` (+1 or -1), contradicted on the other."""
    if interval is None or interval[0] <= 0 <= interval[1]:
        return NOT_RESOLVED
    return HOLDS if (interval[0] > 0) == (predicted > 0) else CONTRADICTED


def all_verdict(verdicts: Sequence[str]) -> str:
    """A hypothesis that needs all its comparisons: holds where all hold, contradicted where one is."""
    if verdicts and all(word == HOLDS for word in verdicts):
        return HOLDS
    return CONTRADICTED if CONTRADICTED in verdicts else NOT_RESOLVED


@dataclass(frozen=True)
class Estimate:
    """A contrast on the data, its percentile bootstrap interval, and its two-sided bootstrap p-value for 0."""

    value: float
    interval: tuple[float, float]
    p_value: float
    draws: int

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "interval": list(self.interval), "p_value": self.p_value, "draws": self.draws}


def _stacked(correct: Mapping[Hashable, np.ndarray], weights: Mapping[Hashable, float]) -> np.ndarray:
    """sum_k weights[k] * correct[k] as floats (seeds x images); a ValueError names a missing or misshapen array."""
    missing = [key for key in weights if key not in correct]
    if missing:
        raise ValueError(f"`correct` has no array for {', '.join(map(str, missing))}.")
    shapes = {np.shape(correct[key]) for key in weights}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or 0 in next(iter(shapes)):
        raise ValueError(f"Every array of the contrast must be (seeds x images), all the same shape; got {shapes}.")
    return sum(float(weight) * np.asarray(correct[key], dtype=np.float64) for key, weight in weights.items())


def bootstrap_contrast(correct: Mapping[Hashable, np.ndarray], weights: Mapping[Hashable, float], *, draws: int = DRAWS,
                       level: float = LEVEL, seed: int = 0) -> Estimate:
    """The contrast ``sum_k weights[k] * mean(correct[k])`` with a paired bootstrap over seeds and images.

    :param correct: Key -> per-input correctness, (seeds x images), row s the run of seed s, column i test image i
        (the same seeds in the same order, the same images, for every key of the contrast).
    :param weights: Key -> weight, e.g. ``{"rslad": 1, "sat": -1}`` for a difference of two methods, or
        ``{("rslad", 1): 1, ("sat", 1): -1, ("rslad", 8): -1, ("sat", 8): 1}`` for a difference of differences.
    :param draws: Bootstrap draws; each resamples the seeds and the images with replacement, the same ones for
        every key.
    :param level: Level of the two-sided percentile interval.
    :param seed: Seed of the resampling (the result is a function of the data and this seed).
    :return: The contrast on the data, the percentile interval, and the two-sided p-value
        ``(1 + 2 * min(#draws <= 0, #draws >= 0)) / (1 + draws)``, at most 1.
    """
    table = _stacked(correct, weights)
    nb_seeds, nb_images = table.shape
    generator = np.random.default_rng(seed)
    values = np.empty(draws)
    for start in range(0, draws, CHUNK):
        count = min(CHUNK, draws - start)
        seeds = generator.multinomial(nb_seeds, np.full(nb_seeds, 1 / nb_seeds), size=count)  # draws x seeds
        images = generator.multinomial(nb_images, np.full(nb_images, 1 / nb_images), size=count)  # draws x images
        values[start:start + count] = np.einsum("ds,si,di->d", seeds, table, images) / (nb_seeds * nb_images)
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    extreme = min(int(np.sum(values <= 0)), int(np.sum(values >= 0)))
    return Estimate(float(table.mean()), (float(low), float(high)), min(1.0, (1 + 2 * extreme) / (1 + draws)), draws)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the k-th smallest p times (m - k + 1), made
    non-decreasing along that order and capped at 1. A comparison is rejected at family-wise level a where its
    adjusted p-value is below a."""
    order = np.argsort(p_values, kind="stable")
    count = len(p_values)
    adjusted = np.empty(count)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (count - rank) * float(p_values[index])))
        adjusted[index] = running
    return [float(value) for value in adjusted]


def holm_verdict(adjusted_p: float, value: float, predicted: int | None, alpha: float = ALPHA) -> str:
    """The reading of one comparison after Holm's correction: with a predicted sign (+1 or -1), holds or contradicted
    where the adjusted p-value is below ``alpha`` (by the sign of ``value``), else not resolved at this size; with
    none, distinguishable or not distinguishable at this size."""
    significant = adjusted_p < alpha
    if predicted is None:
        return DISTINGUISHABLE if significant else NOT_DISTINGUISHABLE
    if not significant:
        return NOT_RESOLVED
    return HOLDS if (value > 0) == (predicted > 0) else CONTRADICTED
