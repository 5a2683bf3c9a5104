"""The capacity study's statistics (studies/stats.py: Holm's correction, the paired bootstrap over seeds and test
images) on fixed data, and its tuning rule's grid widening (studies/capacity/tuning.py) on made-up scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from studies.capacity.analysis import analyse, difference, mean_interval, planned_comparisons
from studies.capacity.tuning import (
    choose,
    missing_neighbours,
    neighbour,
    neighbours,
    widen_and_choose,
    write_record,
)
from studies.stats import (
    CONTRADICTED,
    DISTINGUISHABLE,
    HOLDS,
    NOT_DISTINGUISHABLE,
    NOT_RESOLVED,
    bootstrap_contrast,
    holm,
    holm_verdict,
)


def test_holm_adjusts_by_rank_and_stays_monotone() -> None:
    # sorted: 0.01 (x4) 0.02 (x3) 0.03 (x2) 0.04 (x1) -> 0.04, 0.06, 0.06 (made monotone), 0.06 (made monotone)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.2, 0.01]) == pytest.approx([0.2, 0.02]) and holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    # The three part-B p-values of the long-schedule study that were "significant" uncorrected: none survives.
    assert all(p >= 0.05 for p in holm([0.029, 0.035, 0.046]))


def test_holm_verdicts() -> None:
    assert holm_verdict(0.01, 0.03, 1) == HOLDS and holm_verdict(0.01, -0.03, 1) == CONTRADICTED
    assert holm_verdict(0.01, -0.03, -1) == HOLDS and holm_verdict(0.2, 0.03, 1) == NOT_RESOLVED
    assert holm_verdict(0.01, 0.03, None) == DISTINGUISHABLE
    assert holm_verdict(0.05, 0.03, None) == NOT_DISTINGUISHABLE  # at the level: not below it


def _fixed(seed: int, shape: tuple[int, int], rate: float) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < rate


def test_bootstrap_contrast_on_fixed_data() -> None:
    first, second = _fixed(1, (3, 400), 0.7), _fixed(2, (3, 400), 0.5)
    estimate = bootstrap_contrast({"a": first, "b": second}, {"a": 1, "b": -1}, draws=2000)
    assert estimate.value == pytest.approx(first.mean() - second.mean())
    low, high = estimate.interval
    assert low < estimate.value < high and low > 0  # a 20-point difference on 1,200 pairs excludes 0
    assert estimate.p_value == pytest.approx(1 / 2001) and estimate.draws == 2000
    again = bootstrap_contrast({"a": first, "b": second}, {"a": 1, "b": -1}, draws=2000)
    assert again == estimate  # a function of the data and the resampling seed
    assert bootstrap_contrast({"a": first}, {"a": 1}, draws=200).value == pytest.approx(first.mean())


def test_the_bootstrap_pairs_seeds_and_images() -> None:
    # The same runs shifted by one image's flags: a paired difference varies only through that column.
    first = _fixed(3, (2, 300), 0.6)
    second = first.copy()
    second[:, 0] = ~second[:, 0]
    same = bootstrap_contrast({"a": first, "b": first}, {"a": 1, "b": -1}, draws=500)
    assert same.value == 0 and same.interval == (0.0, 0.0) and same.p_value == 1.0
    near = bootstrap_contrast({"a": first, "b": second}, {"a": 1, "b": -1}, draws=500)
    assert abs(near.interval[1] - near.interval[0]) < 0.03  # unpaired resampling would spread over ~10 points


def test_the_bootstrap_covers_seed_variation() -> None:
    # Two seeds that disagree on the sign: the interval of the difference covers 0 though each seed is clear.
    first = np.vstack([_fixed(4, (1, 500), 0.8), _fixed(5, (1, 500), 0.4)])
    second = np.vstack([_fixed(6, (1, 500), 0.4), _fixed(7, (1, 500), 0.8)])
    estimate = bootstrap_contrast({"a": first, "b": second}, {"a": 1, "b": -1}, draws=2000)
    assert estimate.interval[0] < 0 < estimate.interval[1] and estimate.p_value > 0.05


def test_a_difference_of_differences() -> None:
    arrays = {(name, width): _fixed(index, (3, 200), rate) for index, (name, width, rate) in enumerate(
        [("rslad", 1, 0.6), ("sat", 1, 0.4), ("rslad", 8, 0.7), ("sat", 8, 0.7)])}
    weights = {("rslad", 1): 1, ("sat", 1): -1, ("rslad", 8): -1, ("sat", 8): 1}
    estimate = bootstrap_contrast(arrays, weights, draws=1000)
    expected = sum(weight * arrays[key].mean() for key, weight in weights.items())
    assert estimate.value == pytest.approx(expected) and estimate.interval[0] > 0


def test_bootstrap_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="no array for b"):
        bootstrap_contrast({"a": np.ones((2, 3))}, {"a": 1, "b": -1})
    with pytest.raises(ValueError, match="seeds x images"):
        bootstrap_contrast({"a": np.ones((2, 3)), "b": np.ones((2, 4))}, {"a": 1, "b": -1})


def test_the_ladder() -> None:
    assert neighbour(1.0, 1) == 3.0 and neighbour(1.0, -1) == 0.3 and neighbour(0.01, -1) == 0.003
    assert neighbour(0.03, 1) == 0.1 and neighbour(3.0, 1) == 10.0
    assert neighbours((0.1, None)) == [(0.03, None), (0.3, None)]
    assert neighbours((0.1, 1.0)) == [(0.03, 1.0), (0.3, 1.0), (0.1, 0.3), (0.1, 3.0)]
    with pytest.raises(ValueError, match="not on the ladder"):
        neighbour(0.05, 1)


def test_choose_breaks_ties_to_the_smaller_lr_then_weight() -> None:
    assert choose({(0.1, None): 0.5, (0.3, None): 0.5, (1.0, None): 0.4}) == (0.1, None)
    assert choose({(0.1, 1.0): 0.5, (0.1, 0.3): 0.5}) == (0.1, 0.3)
    assert missing_neighbours((0.1, None), [(0.03, None), (0.1, None), (0.3, None)]) == []
    assert missing_neighbours((1.0, None), [(0.3, None), (1.0, None)]) == [(3.0, None)]


def _peaked(lr_peak: float, weight_peak: float | None = None, calls: list | None = None):
    """Made-up scores peaked at ``lr_peak`` (and ``weight_peak``) in log space, a little different per seed."""
    def score(seed: int, weight: float | None, lrs):
        if calls is not None:
            calls.append((seed, weight, tuple(lrs)))
        away = 0.0 if weight is None else abs(np.log10(weight) - np.log10(weight_peak))
        return {lr: 0.7 - 0.1 * abs(np.log10(lr) - np.log10(lr_peak)) - 0.05 * away + 0.001 * seed for lr in lrs}
    return score


def test_the_grid_widens_until_the_choice_is_bracketed(tmp_path: Path) -> None:
    calls: list = []
    path = tmp_path / "tuning.json"
    tuning = widen_and_choose(_peaked(3.0, calls=calls), [(0.1, None), (0.3, None), (1.0, None)], [0, 1],
                              write_record(path, {"method": "rslad"}))
    assert tuning.chosen == (3.0, None) and tuning.bracketed and tuning.rounds == 2
    assert sorted(point[0] for point in tuning.scores) == [0.1, 0.3, 1.0, 3.0, 10.0]
    assert tuning.scores[(3.0, None)] == {0: pytest.approx(0.7), 1: pytest.approx(0.701)}
    record = json.loads(path.read_text())
    assert record["final"] and record["method"] == "rslad" and record["chosen"] == {"lr": 3.0, "weight": None}
    assert [item["lr"] for item in record["neighbours"]] == [1.0, 10.0]
    assert all(item["score"] is not None for item in record["neighbours"])
    assert {seed for seed, _, _ in calls} == {0, 1}


def test_an_interior_choice_needs_no_widening() -> None:
    tuning = widen_and_choose(_peaked(0.1), [(0.01, None), (0.03, None), (0.1, None), (0.3, None), (1.0, None)], [0])
    assert tuning.chosen == (0.1, None) and tuning.rounds == 0 and len(tuning.scores) == 5


def test_a_weight_is_widened_jointly_with_the_lr() -> None:
    initial = [(lr, weight) for weight in (0.1, 0.3, 1.0) for lr in (0.1, 0.3, 1.0)]
    tuning = widen_and_choose(_peaked(0.3, weight_peak=3.0), initial, [0, 1])
    assert tuning.chosen == (0.3, 3.0) and tuning.bracketed
    assert {(0.1, 3.0), (1.0, 3.0), (0.3, 10.0)} <= set(tuning.scores)  # the new weight's lr neighbours too


def test_a_choice_never_bracketed_stops_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "tuning.json"
    tuning = widen_and_choose(_peaked(1e6), [(0.1, None), (0.3, None)], [0], write_record(path, {}), max_rounds=2)
    assert not tuning.bracketed and tuning.rounds == 2 and tuning.chosen == (3.0, None)
    record = json.loads(path.read_text())
    assert record["final"] and not record["bracketed"]
    with pytest.raises(ValueError, match="seeds"):
        widen_and_choose(_peaked(1.0), [(1.0, None)], [])


def test_the_family_of_comparisons() -> None:
    planned = planned_comparisons([1, 2, 4, 8], 2, "ard", {"sat": 0.5, "rslad": 0.55, "ard": 0.6, "trades": 0.4})
    labels = [(item.hypothesis, item.label) for item in planned]
    assert labels[:2] == [("H1", "[AA(rslad) - AA(sat)] at width 1 minus at width 8"),
                          ("H1", "[AA(ard) - AA(sat)] at width 1 minus at width 8")]
    assert planned[0].weights == {("rslad", 1): 1.0, ("sat", 1): -1.0, ("rslad", 8): -1.0, ("sat", 8): 1.0}
    sizes = [label for hypothesis, label in labels if hypothesis == "size"]
    assert len(sizes) == 7 and "AA(rslad) - AA(sat) at width 2" not in sizes  # that one is H2
    assert ("H2", "AA(rslad) - AA(sat) at width 2") in labels
    assert [label for hypothesis, label in labels if hypothesis == "H3"] == [
        "AA(ard) - AA(sat) at width 2", "AA(ard) - AA(rslad) at width 2", "AA(ard) - AA(trades) at width 2"]
    assert all(item.predicted is None for item in planned if item.hypothesis == "H3")


def test_analyse_corrects_over_the_comparisons_made() -> None:
    tables = {("sat", 2): {seed: _fixed(10 + seed, (1, 400), 0.5)[0] for seed in range(3)},
              ("rslad", 2): {seed: _fixed(20 + seed, (1, 400), 0.7)[0] for seed in range(5)},
              ("ard", 2): {seed: _fixed(30 + seed, (1, 400), 0.52)[0] for seed in range(2)}}
    planned = [difference("H2", ("rslad", 2), ("sat", 2), 1), difference("size", ("ard", 2), ("sat", 2), 1),
               difference("size", ("ard", 4), ("sat", 4), 1)]
    rows = analyse(tables, planned, draws=2000)
    assert rows[0]["seeds"] == [0, 1, 2] and rows[1]["seeds"] == [0, 1]  # the seeds both have
    assert rows[2]["verdict"] == "not run yet" and "p_holm" not in rows[2]
    assert rows[0]["verdict"] == HOLDS and rows[1]["verdict"] == NOT_RESOLVED
    # Holm over the two comparisons made, not the one missing
    assert [rows[0]["p_holm"], rows[1]["p_holm"]] == holm([rows[0]["p_value"], rows[1]["p_value"]])
    assert rows[0]["p_holm"] == pytest.approx(2 * rows[0]["p_value"])  # the smaller p of two: doubled
    assert mean_interval(tables, ("sat", 2), draws=500).value == pytest.approx(
        np.mean([tables[("sat", 2)][seed].mean() for seed in range(3)]))
    assert mean_interval(tables, ("sat", 8)) is None


def test_the_leaderboard_and_its_configs_follow_the_preregistration() -> None:
    from studies.capacity.study import distillation_candidates, leaderboard_methods, point_config

    methods = leaderboard_methods()
    assert [name for name in methods if name.endswith("+igdm")] == [
        "ard+igdm", "iad+igdm", "adaad+igdm", "rslad+igdm", "adaiad+igdm"]
    assert {"mtard", "absld", "dgad", "ciard", "saad", "peeraid", "art-madry-pgd", "art-trades"} <= set(methods)
    assert "ciard" in distillation_candidates() and "peeraid" not in distillation_candidates()
    assert "rslad" not in distillation_candidates() and "sat" not in distillation_candidates()
    # their official recipes: PeerAiD's SWA from the first lr drop, SAAD's from its 95th epoch of 200, scaled;
    # only the method's own entry
    assert point_config("peeraid", None, 0).method_overrides == {"peeraid": {"weight_averaging": "swa"}}
    saad = point_config("saad", None, 0)
    assert saad.method_overrides == {"saad": {"weight_averaging": "swa", "weight_averaging_start": 141}}
    assert saad.for_method("saad").averaging_start_for() == 14  # 94 of 200 epochs -> 14 of 30
    config = point_config("rslad+igdm", 0.3, 1)
    assert config.method_overrides == {"rslad+igdm": {"igdm_alpha": 0.3}} and config.seed == 1
    assert point_config("sat", None, 2).method_overrides == {}


def test_the_table_step_reads_the_committed_folders(tmp_path: Path) -> None:
    """The ``table`` step end to end on the committed study folder: every finished run with its whole-test reports
    (SAT's at every width at least), the gap record and the tuning records reach the page, the summary and the
    figures; comparisons whose runs are missing are listed as not run yet."""
    from studies.capacity.study import WIDTHS
    from studies.capacity.table import main

    out = tmp_path / "results-capacity"
    assert main(["--out", str(out), "--draws", "50"]) == 0
    page = out.with_suffix(".md").read_text(encoding="utf-8")
    summary = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert {width for name, width, _ in summary["means"] if name == "sat"} == set(WIDTHS)
    assert summary["size"] in WIDTHS and f"## Leaderboard at width {summary['size']}" in page
    for name, width, estimate in summary["means"]:
        low, high = estimate["interval"]
        assert 0 <= low <= estimate["value"] <= high <= 1, (name, width)
    assert all(row["verdict"] == "not run yet" or "p_holm" in row for row in summary["comparisons"])
    assert "| 2 | sat | 0.1 |" in page  # SAT's tuned lr at G, from its tuning record
    # H3's ranking: highest mean AA first, each method's interval and best epochs, the best one's lead over the rest
    ranking = [line.split(" | ") for line in page.split("| Rank |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]]
    at_size = {name: estimate["value"] for name, width, estimate in summary["means"] if width == summary["size"]}
    assert [row[1] for row in ranking] == sorted(at_size, key=lambda name: -at_size[name])
    assert ranking[0][6] == "the best" and all(row[6].startswith(("+", "-", "–")) for row in ranking[1:])
    assert all(len(row[4].split(", ")) == int(row[2]) for row in ranking)  # one best epoch per seed
    assert "Teacher minus SAT, AA" in page
    assert "Seeds missing" in page or "Every planned leaderboard run is finished." in page
    assert out.with_name(out.name + "-capacity.png").stat().st_size > 0
    assert out.with_name(out.name + "-leaderboard.png").stat().st_size > 0


def test_the_plan_gives_five_seeds_to_sat_rslad_and_the_three_best_others() -> None:
    from studies.capacity.study import planned_runs

    scores = {"sat": 0.1, "rslad": 0.2, "a": 0.9, "b": 0.5, "c": 0.7, "d": 0.6, "e": 0.3}
    seeds: dict[str, list[int]] = {}
    for name, seed in planned_runs(scores):
        seeds.setdefault(name, []).append(seed)
    assert {name for name, found in seeds.items() if found == [0, 1, 2, 3, 4]} == {"sat", "rslad", "a", "c", "d"}
    assert seeds["b"] == seeds["e"] == [0, 1, 2]


def test_two_processes_share_the_runs_and_meet_in_the_middle() -> None:
    from studies.capacity.study import in_turn

    items = list(range(7))
    assert in_turn(items, "1/2") == [0, 2, 4, 6, 5, 3, 1]
    assert in_turn(items, "2/2") == [1, 3, 5, 6, 4, 2, 0]


def test_a_run_the_other_process_holds_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from art_rslad.experiments.lock import FolderBusyError
    from studies.capacity import study

    done = []

    def fake_run(width: int, method: str, seed: int) -> Path:
        if method == "busy":
            raise FolderBusyError("in use")
        done.append((width, method, seed))
        return Path()

    monkeypatch.setattr(study, "run", fake_run)
    study.run_in_turn([(2, "a", 0), (2, "busy", 0), (2, "b", 0)], "2/2")
    assert done == [(2, "b", 0), (2, "a", 0)]


def test_the_results_page_quotes_the_ranking_the_table_step_wrote() -> None:
    """docs/results.md opens with the leaderboard's ranking; it must be the one the ``table`` step last wrote to
    docs/results-capacity.md, row for row (run the step and copy its ranking again after any new run)."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    ranking = [line for line in (docs / "results-capacity.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| ") and line.split(" | ")[0].lstrip("| ").isdigit()
               and len(line.split(" | ")) == 8]
    page = (docs / "results.md").read_text(encoding="utf-8").splitlines()
    assert ranking and [line for line in page if line in ranking] == ranking
