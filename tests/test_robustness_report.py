"""RobustnessReport as one record per attack: class-wise accuracy, old files, merging shards, the compact form
(hand-made reports)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from art_rslad.evaluation import AttackResult, RobustnessReport, merge_reports
from art_rslad.evaluation.report import compact_path, finished_report, store_finished, stored_report

#: A report written before the labels were kept (a committed study's full-test-set report of 359 inputs).
FORMAT_1_REPORT = Path(__file__).parent / "data" / "report_format1.json"


def _result(name: str, kind: str, flags: list[bool], seconds: float = 1.0, messages: tuple[str, ...] = ()
            ) -> AttackResult:
    return AttackResult(name=name, kind=kind, correct=np.array(flags), seconds=seconds, max_perturbation=0.1,
                        settings={"steps": 20}, messages=list(messages))


def _report(labels: tuple[int, ...] | None = (0, 0, 1, 1, 2, 2)) -> RobustnessReport:
    """Six inputs, two per class: clean misses one input of class 1, PGD all of class 1 and one of class 0."""
    report = RobustnessReport(eps=0.1, n_inputs=6, labels=None if labels is None else np.array(labels))
    report.add(_result("clean", "clean", [True, True, True, False, True, True], seconds=0.5))
    report.add(_result("pgd_sat", "white-box", [True, False, False, False, True, True]))
    return report


def test_per_class_accuracy_has_the_known_answers() -> None:
    report = _report()
    assert report.per_class_accuracy("clean") == [1.0, 0.5, 1.0]
    assert report.per_class_accuracy("pgd_sat") == [0.5, 0.0, 1.0]
    missing_class = _report(labels=(0, 0, 2, 2, 2, 2))
    by_class = missing_class.per_class_accuracy("pgd_sat")
    assert by_class[0] == 0.5 and np.isnan(by_class[1]) and by_class[2] == 0.5
    assert missing_class.worst_class["pgd_sat"] == {"class": 0, "accuracy": 0.5}  # NaN classes are skipped


def test_worst_class_is_in_the_dict_and_the_table() -> None:
    report = _report()
    assert report.to_dict()["worst_class"] == {"clean": {"class": 1, "accuracy": 0.5},
                                               "pgd_sat": {"class": 1, "accuracy": 0.0}}
    table = report.to_markdown()
    assert "| attack | kind | accuracy (%) | worst class: accuracy (%) | seconds |" in table
    assert "| pgd_sat | white-box | 50.00 | 1: 0.00 | 1.0 |" in table
    assert "| **worst case over all attacks** | per input | 50.00 | | 1.5 |" in table


def test_labels_survive_the_json_round_trip() -> None:
    report = _report()
    restored = RobustnessReport.from_dict(json.loads(report.to_json()))
    assert restored.labels is not None and restored.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert restored.per_class_accuracy("pgd_sat") == report.per_class_accuracy("pgd_sat")
    assert restored.to_dict() == report.to_dict()


def test_without_labels_the_layout_is_unchanged_and_class_accuracy_says_how_to_get_it() -> None:
    report = _report(labels=None)
    assert "labels" not in report.to_dict() and "worst_class" not in report.to_dict()
    assert "worst class" not in report.to_markdown()
    assert "| pgd_sat | white-box | 50.00 | 1.0 |" in report.to_markdown()
    with pytest.raises(ValueError, match="evaluate again with evaluate_robustness"):
        report.per_class_accuracy("clean")
    with pytest.raises(ValueError, match="holds clean, pgd_sat"):
        _report().per_class_accuracy("square")


def test_a_report_written_before_the_records_loads_and_writes_back_byte_for_byte() -> None:
    text = FORMAT_1_REPORT.read_text()
    stored = json.loads(text)
    report = RobustnessReport.from_json(FORMAT_1_REPORT)
    assert report.attacks == ["clean", "fgsm", "pgd_sat", "pgd_trades", "cw_inf"]
    assert report.n_inputs == 359 and report.labels is None
    assert report.accuracy == stored["accuracy"]
    assert report.accuracy["clean"] == pytest.approx(356 / 359) and report.accuracy["pgd_sat"] == pytest.approx(
        320 / 359)
    assert report.worst_case_accuracy == stored["worst_case_accuracy"]
    assert report.results["cw_inf"].settings == stored["settings"]["cw_inf"]
    assert report.to_json() == text  # so the tables built from committed reports regenerate identically
    with pytest.raises(ValueError, match="labels"):
        report.per_class_accuracy("clean")


def test_merging_shards_concatenates_records_and_labels() -> None:
    first = _report()
    second = RobustnessReport(eps=0.1, n_inputs=2, labels=np.array([1, 2]))
    second.add(_result("clean", "clean", [True, False], seconds=2.0, messages=("slow",)))
    second.add(_result("pgd_sat", "white-box", [False, False], seconds=0.2))
    merged = merge_reports([first, second])
    assert merged.n_inputs == 8 and merged.attacks == ["clean", "pgd_sat"]
    assert merged.labels is not None and merged.labels.tolist() == [0, 0, 1, 1, 2, 2, 1, 2]
    assert merged.correct["clean"].tolist() == [True, True, True, False, True, True, True, False]
    assert merged.per_class_accuracy("clean") == [1.0, 2 / 3, 2 / 3]
    assert merged.seconds == {"clean": 2.0, "pgd_sat": 1.0} and merged.messages["clean"] == ["slow"]
    second.labels = None
    assert merge_reports([first, second]).labels is None  # a shard that does not know its labels
    with pytest.raises(ValueError, match="same attacks"):
        merge_reports([first, RobustnessReport(eps=0.1, n_inputs=0)])


def test_records_are_the_one_place_results_are_written() -> None:
    report = _report()
    with pytest.raises(ValueError, match="one per input"):
        report.add(_result("fgsm", "white-box", [True]))
    with pytest.raises(TypeError):
        report.correct["fgsm"] = np.ones(6, dtype=bool)  # type: ignore[index]
    assert report.kinds == {"clean": "clean", "pgd_sat": "white-box"}


def _full_report() -> RobustnessReport:
    """Every kind of field: labels beyond uint8, settings, messages, checks, warnings, a fingerprint; 13 inputs (the
    packed flags end in a partial byte)."""
    rng = np.random.default_rng(0)
    report = RobustnessReport(eps=0.1, n_inputs=13, labels=np.array([0, 299, *rng.integers(0, 300, 11)]),
                              checks={"seconds": 0.25, "zero_gradient_inputs": 0, "large_eps_accuracy": float("nan")},
                              warnings=["pgd_sat: a warning"], fingerprint="f" * 64)
    report.add(AttackResult("clean", "clean", rng.random(13) > 0.2, 0.5, 0.0))
    report.add(AttackResult("pgd_sat", "white-box", rng.random(13) > 0.5, 12.125, 0.1,
                            settings={"eps_step": 0.025, "max_iter": 20}, messages=["pgd_sat: a warning"]))
    return report


def test_the_compact_form_round_trips_exactly(tmp_path: Path) -> None:
    report = _full_report()
    path = report.save(tmp_path / "eval_best.json")
    assert path == tmp_path / "eval_best.npz" and not (tmp_path / "eval_best.json").exists()
    restored = RobustnessReport.load(path)
    assert restored.to_json() == report.to_json()  # accuracies, settings, messages, checks, warnings, fingerprint
    for name in report.attacks:
        assert restored.correct[name].dtype == bool and np.array_equal(restored.correct[name], report.correct[name])
    assert restored.labels is not None and restored.labels.tolist() == report.labels.tolist()
    np.testing.assert_array_equal(restored.per_class_accuracy("pgd_sat"), report.per_class_accuracy("pgd_sat"))
    with np.load(path) as arrays:  # plain numpy arrays: flags packed eight to a byte, labels in the smallest type
        assert arrays["correct"].shape == (2, 2) and arrays["labels"].dtype == np.int16
    unlabelled = RobustnessReport.from_compact(_report(labels=None).to_compact())
    assert unlabelled.labels is None and unlabelled.to_json() == _report(labels=None).to_json()


def test_saving_again_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = _full_report().save(tmp_path / "report.npz")
    before = path.stat().st_mtime_ns, path.read_bytes()
    _full_report().save(path)  # the bytes depend only on the report (no timestamps in the zip)
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_an_old_json_report_loads_and_its_compact_form_reads_back_to_the_same_text(tmp_path: Path) -> None:
    text = FORMAT_1_REPORT.read_text()
    assert RobustnessReport.load(FORMAT_1_REPORT).to_json() == text
    compact = RobustnessReport.load(FORMAT_1_REPORT).save(tmp_path / "full_best.json")
    assert RobustnessReport.load(tmp_path / "full_best.json").to_json() == text  # the JSON name finds its .npz
    assert compact.stat().st_size < len(text) / 10


def test_a_json_state_beside_a_compact_report_is_read_first_and_stored_replaces_it(tmp_path: Path) -> None:
    state = tmp_path / "full_best.json"
    assert stored_report(state) is None
    with pytest.raises(FileNotFoundError, match=r"full_best\.npz"):
        RobustnessReport.load(state)
    _report().save(state)
    newer = _full_report()
    newer.to_json(state)  # an evaluation under way over a finished report: its JSON state is newer
    assert stored_report(state) == state and RobustnessReport.load(state).n_inputs == 13
    assert finished_report(state, ["clean", "pgd_sat"], 13) is not None
    assert finished_report(state, ["clean", "cw_inf"], 13) is None and finished_report(state, ["clean"], 6) is None
    assert store_finished(newer, state) == compact_path(state) and not state.exists()
    assert RobustnessReport.load(state).to_json() == newer.to_json()
