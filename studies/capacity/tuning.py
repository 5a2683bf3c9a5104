"""The capacity study's tuning rule (PREREGISTRATION.md beside this file), on validation data only.

For one method at one student width: a short run at every point of a grid (a learning rate, and for a method with
a weight of its own such as IGDM's alpha, that weight too), for every tuning seed; a point's score is the mean over
the seeds of its best epoch's PGD-10 accuracy on the seed's validation images; the highest score wins, ties to the
smaller lr, then the smaller weight. The grid then **widens**: where a ladder neighbour of the chosen point (one
step down or up the ladder 1, 3, 10, 30, ... along each of its axes) was not tried, it is added and scored, and the
choice made again, until the chosen point has a tried neighbour on both sides along every axis.

Each short run is ``art_rslad.experiments.tune.select_learning_rates``'s (one per seed and weight, over the lrs
tried at that weight), so it resumes from its own folder; the record ``tuning.json`` is rewritten after every round.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from art_rslad.checkpoint import write_text_atomic

#: A grid point: (lr, weight), the weight None for a method tuned on its lr alone.
Point = tuple[float, float | None]
#: The ladder of grid values: these mantissas times every power of ten.
MANTISSAS = (1, 3)
RULE = ("For each method at each student width, a short run at every grid point (lr, and a weight of the method's "
        "own where it has one to tune) for every tuning seed; a point scores the mean over the seeds of its best "
        "epoch's PGD-10 accuracy on the seed's validation images (never the test set); the highest score wins, ties "
        "to the smaller lr, then the smaller weight; the grid widens along the ladder 1, 3, 10, ... until the chosen "
        "point has a tried neighbour on both sides along every axis.")
#: Rounds of widening after which the rule stops, its record marked not bracketed (each round adds at most four
#: points).
MAX_ROUNDS = 8


def _ladder_index(value: float) -> int:
    """The position of ``value`` on the ladder ..., 0.1, 0.3, 1, 3, 10, ... (1 at position 0); a ValueError for a
    value off it."""
    if not value > 0:
        raise ValueError(f"Grid value {value} must be > 0.")
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = value / 10.0 ** exponent
    for offset, expected in enumerate(MANTISSAS):
        if math.isclose(mantissa, expected, rel_tol=1e-6):
            return len(MANTISSAS) * exponent + offset
    raise ValueError(f"Grid value {value:g} is not on the ladder {', '.join(map(str, MANTISSAS))} x 10^k; use "
                     "values such as 0.01, 0.03, 0.1, 0.3, 1.")


def _ladder_value(index: int) -> float:
    exponent, offset = divmod(index, len(MANTISSAS))
    return float(f"{MANTISSAS[offset]}e{exponent}")


def neighbour(value: float, step: int) -> float:
    """The ladder value ``step`` positions from ``value`` (-1: the next smaller, +1: the next larger)."""
    return _ladder_value(_ladder_index(value) + step)


def neighbours(point: Point) -> list[Point]:
    """The ladder neighbours of ``point`` along each of its axes: lr down and up, then the weight down and up."""
    lr, weight = point
    found: list[Point] = [(neighbour(lr, -1), weight), (neighbour(lr, 1), weight)]
    if weight is not None:
        found += [(lr, neighbour(weight, -1)), (lr, neighbour(weight, 1))]
    return found


def choose(scores: Mapping[Point, float]) -> Point:
    """The point with the highest score; ties to the smaller lr, then the smaller weight."""
    if not scores:
        raise ValueError("No scored point to choose from.")
    return max(scores, key=lambda point: (scores[point], -point[0], -(point[1] or 0.0)))


def missing_neighbours(chosen: Point, tried: Iterable[Point]) -> list[Point]:
    """The neighbours of ``chosen`` not yet tried: the points the rule adds next (none: the grid brackets it)."""
    done = {_key(point) for point in tried}
    return [point for point in neighbours(chosen) if _key(point) not in done]


def _key(point: Point) -> tuple[float, float | None]:
    """A point rounded so that 0.1 from a file and 0.1 from the ladder compare equal."""
    lr, weight = point
    return round(lr, 12), None if weight is None else round(weight, 12)


@dataclass
class Tuning:
    """One method's tuning: every point tried with its per-seed scores, and the choice once the grid brackets it."""

    scores: dict[Point, dict[int, float]]
    chosen: Point
    rounds: int
    bracketed: bool = True

    def mean(self, point: Point) -> float | None:
        """The point's score (mean over the seeds); None for a point not tried."""
        per_seed = self.scores.get(_key(point))
        return None if per_seed is None else float(np.mean(list(per_seed.values())))

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": {"lr": self.chosen[0], "weight": self.chosen[1]},
                "chosen_score": self.mean(self.chosen), "rounds": self.rounds, "bracketed": self.bracketed,
                "neighbours": [{"lr": lr, "weight": weight, "score": self.mean((lr, weight))}
                               for lr, weight in neighbours(self.chosen)],
                "points": [{"lr": lr, "weight": weight, "score": self.mean((lr, weight)),
                            "per_seed": {str(seed): value for seed, value in per_seed.items()}}
                           for (lr, weight), per_seed in sorted(self.scores.items(),
                                                                key=lambda item: (item[0][1] or 0, item[0][0]))]}


#: Scores of the points at one weight for one seed: (seed, weight, lrs) -> {lr: best validation PGD-10}.
Scorer = Callable[[int, float | None, Sequence[float]], Mapping[float, float]]


def widen_and_choose(score: Scorer, initial: Sequence[Point], seeds: Sequence[int],
                     record: Callable[[Tuning, bool], None] | None = None,
                     max_rounds: int = MAX_ROUNDS) -> Tuning:
    """Score ``initial``, choose, add the chosen point's untried neighbours, and repeat until there are none.

    :param score: Runs (or reads back) the short runs of one seed at one weight over the given lrs.
    :param initial: The first grid.
    :param seeds: The tuning seeds; a point's score is the mean over them.
    :param record: Called after every round with the tuning so far and whether it is final.
    :param max_rounds: Widening rounds after which the rule stops with the choice it has, marked
        ``bracketed=False`` (a score still rising towards a ladder's end, or a flat run of tied scores).
    """
    if not seeds:
        raise ValueError("`seeds` must name at least one tuning seed.")
    tried = list(dict.fromkeys(_key(point) for point in initial))
    rounds = 0
    while True:
        scores = _score_points(score, tried, seeds)
        chosen = choose({point: float(np.mean(list(per_seed.values()))) for point, per_seed in scores.items()})
        missing = missing_neighbours(chosen, tried)
        tuning = Tuning(scores, chosen, rounds, bracketed=not missing)
        final = not missing or rounds == max_rounds
        if record is not None:
            record(tuning, final)
        if final:
            return tuning
        tried += [_key(point) for point in missing]
        rounds += 1


def _score_points(score: Scorer, points: Sequence[Point], seeds: Sequence[int]) -> dict[Point, dict[int, float]]:
    """Per point, per seed: its score, asked of ``score`` once per (seed, weight) over the lrs at that weight."""
    scores: dict[Point, dict[int, float]] = {point: {} for point in points}
    for weight in dict.fromkeys(point[1] for point in points):
        lrs = sorted(point[0] for point in points if point[1] == weight)
        for seed in seeds:
            found = {round(lr, 12): value for lr, value in score(seed, weight, lrs).items()}
            for lr in lrs:
                scores[(lr, weight)][seed] = found[round(lr, 12)]
    return scores


def write_record(path: Path, header: Mapping[str, Any]) -> Callable[[Tuning, bool], None]:
    """A ``record`` for :func:`widen_and_choose` that writes ``header`` and the tuning to ``path`` (JSON)."""
    def write(tuning: Tuning, final: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**header, "final": final, **tuning.to_dict()}
        write_text_atomic(json.dumps(data, indent=1) + "\n", path)
    return write
