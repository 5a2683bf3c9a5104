"""The capacity study's family of comparisons (PREREGISTRATION.md, "Hypotheses" and "Analysis"), on per-image
AutoAttack results: which contrasts, their paired bootstrap over seeds and test images, Holm's correction over the
whole family, and the verdicts. Pure functions of the per-image tables; studies/capacity/table.py reads them from
the run folders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from studies.stats import DRAWS, Estimate, bootstrap_contrast, holm, holm_verdict

#: (method, width) of a set of runs.
Key = tuple[str, int]
#: Per (method, width), per seed: the per-image correctness under AA of the best checkpoint (the same test images).
Tables = Mapping[Key, Mapping[int, np.ndarray]]


@dataclass(frozen=True)
class Planned:
    """One comparison of the family: a contrast of mean AA accuracies, and its predicted sign (None: both read)."""

    hypothesis: str
    label: str
    weights: dict[Key, float]
    predicted: int | None


def difference(hypothesis: str, first: Key, second: Key, predicted: int | None) -> Planned:
    label = f"AA({first[0]}) - AA({second[0]}) at width {first[1]}"
    return Planned(hypothesis, label, {first: 1.0, second: -1.0}, predicted)


def planned_comparisons(widths: Sequence[int], size: int, third: str | None,
                        means_at_size: Mapping[str, float]) -> list[Planned]:
    """The preregistered family: H1 for RSLAD and the third method, the per-size differences from SAT, H2 at the
    size G, and H3 (every leaderboard method at G against the one with the highest mean AA in ``means_at_size``)."""
    small, large = min(widths), max(widths)
    methods = ["rslad", *([third] if third else [])]
    planned = [Planned("H1", f"[AA({name}) - AA(sat)] at width {small} minus at width {large}",
                       {(name, small): 1.0, ("sat", small): -1.0, (name, large): -1.0, ("sat", large): 1.0}, 1)
               for name in methods]
    planned += [difference("size", (name, width), ("sat", width), 1) for width in widths for name in methods
                if (name, width) != ("rslad", size)]
    planned.append(difference("H2", ("rslad", size), ("sat", size), 1))
    if means_at_size:
        best = max(means_at_size, key=lambda name: means_at_size[name])
        planned += [difference("H3", (best, size), (name, size), None) for name in means_at_size if name != best]
    return planned


def common_seeds(tables: Tables, keys: Sequence[Key]) -> list[int]:
    """The seeds every one of ``keys`` has a run of (none where a key has no runs)."""
    found = [set(tables.get(key, {})) for key in keys]
    return sorted(set.intersection(*found)) if found else []


def estimate(tables: Tables, planned: Planned, draws: int = DRAWS) -> tuple[Estimate, list[int]] | None:
    """The comparison's bootstrap estimate over the seeds all of its runs have, or None where there is none yet."""
    seeds = common_seeds(tables, list(planned.weights))
    if not seeds:
        return None
    arrays = {key: np.vstack([tables[key][seed] for seed in seeds]) for key in planned.weights}
    return bootstrap_contrast(arrays, planned.weights, draws=draws), seeds


def analyse(tables: Tables, planned: Sequence[Planned], draws: int = DRAWS) -> list[dict[str, Any]]:
    """Every planned comparison with its estimate, its Holm-adjusted p-value over the comparisons that can be
    made, and its verdict; a comparison whose runs are missing is listed as such, outside the correction."""
    found = [estimate(tables, item, draws) for item in planned]
    made = [result for result in found if result is not None]
    adjusted = iter(holm([result[0].p_value for result in made]))
    rows = []
    for item, result in zip(planned, found, strict=True):
        row: dict[str, Any] = {"hypothesis": item.hypothesis, "comparison": item.label,
                               "predicted_sign": item.predicted,
                               "weights": [[name, width, weight] for (name, width), weight in item.weights.items()]}
        if result is None:
            rows.append({**row, "verdict": "not run yet"})
            continue
        value, seeds = result
        p_holm = next(adjusted)
        rows.append({**row, **value.to_dict(), "seeds": seeds, "p_holm": p_holm,
                     "verdict": holm_verdict(p_holm, value.value, item.predicted)})
    return rows


def mean_interval(tables: Tables, key: Key, draws: int = DRAWS) -> Estimate | None:
    """A set of runs' mean AA with its bootstrap interval over seeds and images; None without runs."""
    seeds = sorted(tables.get(key, {}))
    if not seeds:
        return None
    return bootstrap_contrast({key: np.vstack([tables[key][seed] for seed in seeds])}, {key: 1.0}, draws=draws)
