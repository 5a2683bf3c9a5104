"""train_run / compare: the run folder, refusals with clear errors, surviving a failed write, resuming a compare."""

from __future__ import annotations

import concurrent.futures
import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from art_rslad import checkpoint as checkpoint_module
from art_rslad.checkpoint import load_checkpoint, write_text_atomic
from art_rslad.data import load_dataset
from art_rslad.distributed import World
from art_rslad.evaluation import evaluate_robustness
from art_rslad.experiments import train as train_module
from art_rslad.experiments.compare import compare
from art_rslad.experiments.config import Config, TeacherConfig
from art_rslad.experiments.folders import load_run
from art_rslad.experiments.teachers import load_teacher
from art_rslad.experiments.train import RunSettings, check_runs_here, train_run
from art_rslad.models import create_model, make_classifier
from art_rslad.report import fixed_settings_notes
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.registry import METHODS
from bench.gpu_paths import interrupted_at

ATTACKS = ("clean", "fgsm", "pgd_sat")
STUDENT = {"width": 2, "image_size": 8}
SIZES = {"train_size": 48, "val_size": 16, "test_size": 16}


def tiny_config(**changes: Any) -> Config:
    """scikit-learn's 8x8 digits, a 424-parameter cnn-small, 2 epochs of PGD-2: a run takes about a second."""
    settings: dict[str, Any] = {"name": "test", "dataset": "digits", "student": "cnn-small", "nb_epochs": 2,
                                "batch_size": 16, "lr": 0.05, "eps": 0.1, "eps_step": 0.05, "max_iter": 2,
                                "teacher": TeacherConfig(source="")}
    return Config(**{**settings, **changes})


def tiny_teacher() -> Any:
    torch.manual_seed(1)
    return make_classifier(create_model("cnn-small", 10, width=4, image_size=8), "digits", device="cpu")


def settings(**changes: Any) -> RunSettings:
    """Tiny sizes, three attacks, no progress bars."""
    return RunSettings(**{"attacks": ATTACKS, "student_options": STUDENT, "checkpoint_interval": 0,
                          "verbose": False, **SIZES, **changes})


def run(folder: Path, method: str = "sat", config: Config | None = None, teacher: Any = None,
        **changes: Any) -> Any:
    return train_run(config or tiny_config(), folder, method, settings(**changes), teacher=teacher)


def test_run_folder_holds_everything_a_user_needs(tmp_path: Path) -> None:
    result = run(tmp_path / "run", method="rslad", teacher=tiny_teacher())
    folder = result.out_dir
    for name in ("run.json", "config.toml", "run.log", "metrics.jsonl", "last.pt", "best.pt", "eval_best.npz",
                 "eval_last.npz", "results.md", "student.pt", "student.json",
                 "figures/robust_accuracy_per_epoch.png", "figures/accuracy_best.png"):
        assert (folder / name).is_file(), name
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 2
    assert set(result.accuracy) == {"best", "last"} and set(result.accuracy["best"]) == set(ATTACKS)
    assert all(0.0 <= value <= 1.0 for values in result.accuracy.values() for value in values.values())
    assert load_checkpoint(folder / "best.pt")["epoch"] == result.best_epoch
    assert "Finished rslad" in (folder / "run.log").read_text()
    assert Config.from_file(folder / "config.toml") == result.config
    # The student's card makes it loadable by path (also as a teacher), with the best checkpoint's weights.
    student = load_teacher(str(folder / "student.pt"), "digits")
    best = load_checkpoint(folder / "best.pt")["model_state"]
    assert all(torch.equal(value, best[key]) for key, value in student.model.state_dict().items())
    card = json.loads((folder / "student.json").read_text())
    assert card["training"]["method"] == "rslad" and card["metrics"]["clean"]["checkpoint"] == "best"
    # A finished run read back from disk is the same result.
    again = load_run(folder)
    assert again.accuracy == result.accuracy and again.history == result.history


def test_the_learning_rate_comes_from_the_preset_per_method(tmp_path: Path) -> None:
    result = run(tmp_path / "run", config=tiny_config(nb_epochs=1, method_lr={"sat": 0.02}))
    assert result.history[0]["lr"] == pytest.approx(0.02)


def test_refuses_folders_it_must_not_use(tmp_path: Path) -> None:
    run(tmp_path / "run")
    with pytest.raises(FileExistsError, match=r"already holds a run\. Pass resume=True to continue it, "
                                              r"overwrite=True to replace it"):
        run(tmp_path / "run")
    with pytest.raises(ValueError, match="method: folder 'sat', now 'trades'"):
        run(tmp_path / "run", method="trades", resume=True)
    with pytest.raises(ValueError, match="nb_epochs"):
        run(tmp_path / "run", config=tiny_config(nb_epochs=3), resume=True)
    with pytest.raises(ValueError, match=r"Nothing to resume.*Start the run without resume=True"):
        run(tmp_path / "empty", resume=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="other files"):
        run(tmp_path / "other")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="cannot be written"):
        run(tmp_path / "a-file" / "run")
    with pytest.raises(ValueError, match="known methods"):
        run(tmp_path / "new", method="madry")


def test_overwrite_replaces_the_run_and_keeps_other_files(tmp_path: Path) -> None:
    run(tmp_path / "run")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    result = run(tmp_path / "run", method="trades", overwrite=True)
    assert result.method == "trades" and (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_resuming_a_finished_run_trains_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run(tmp_path / "run")
    monkeypatch.setattr(AdversarialTrainerBase, "_train_step", lambda *args: pytest.fail("trained again"))
    assert run(tmp_path / "run", resume=True).accuracy == first.accuracy


def test_a_reworded_lr_note_still_resumes_the_run_it_describes(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    first = run(tmp_path / "run", config=tiny_config(method_lr_note="chosen by the rule (old wording)"))
    monkeypatch.setattr(AdversarialTrainerBase, "_train_step", lambda *args: pytest.fail("trained again"))
    again = run(tmp_path / "run", config=tiny_config(method_lr_note="chosen by the rule"), resume=True)
    assert again.accuracy == first.accuracy
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["identity"]["config"]["method_lr_note"]
    assert recorded == "chosen by the rule (old wording)"


def test_the_best_and_last_weights_evaluated_are_those_of_the_checkpoints(tmp_path: Path) -> None:
    result = run(tmp_path / "run", config=tiny_config(nb_epochs=3))
    folder = result.out_dir
    for name in ("best", "last"):
        classifier = make_classifier(create_model("cnn-small", 10, **STUDENT), "digits", device="cpu")
        classifier.model.load_state_dict(load_checkpoint(folder / f"{name}.pt")["model_state"])
        x, y = load_dataset("digits", "test")
        from_disk = evaluate_robustness(classifier, x[:16], y[:16], eps=0.1, attacks=ATTACKS, batch_size=16, seed=0,
                                        verbose=False)
        assert from_disk.accuracy == result.accuracy[name], name


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = torch.save
    saves = {"last": 0}

    def disk_full_on_second_last(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(obj, dict) and obj.get("kind") == "last":
            saves["last"] += 1
            if saves["last"] == 2:
                stream.write(b"half a checkpoint")
                raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, stream, *args, **kwargs)

    folder = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", disk_full_on_second_last)
        with pytest.raises(OSError, match="intact") as raised:
            run(folder)
    assert raised.value.errno == errno.ENOSPC
    assert load_checkpoint(folder / "last.pt")["epoch"] == 1  # the first epoch's checkpoint survived
    assert not [path for path in folder.iterdir() if path.name.endswith(".tmp")]
    assert run(folder, resume=True).history[-1]["epoch"] == 2


def test_compare_tabulates_and_resumes_after_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    teacher = tiny_teacher()
    config = tiny_config(nb_epochs=1)
    original = AdversarialTrainerBase._train_step
    steps = {"count": 0}

    def counting_step(self: AdversarialTrainerBase, batch: Any) -> Any:
        steps["count"] += 1
        if steps["count"] == 8:  # the third run of four (sat, seed 1), second batch: the process "dies"
            raise RuntimeError("killed")
        return original(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(AdversarialTrainerBase, "_train_step", counting_step)
        with pytest.raises(RuntimeError, match="killed"):
            compare(config, tmp_path, ["sat", "rslad"], [0, 1], settings(), teacher=teacher)
        with pytest.raises(FileExistsError, match="resume=True"):
            compare(config, tmp_path, ["sat", "rslad"], [0, 1], settings(), teacher=teacher)
        steps["count"] = 100
        result = compare(config, tmp_path, ["sat", "rslad"], [0, 1], settings(resume=True), teacher=teacher)
    assert steps["count"] - 100 == 2 * 3  # only the two unfinished runs trained (3 batches of 16 each)
    assert [(row.method, row.checkpoint) for row in result.table.rows] == [
        ("sat", "best"), ("sat", "last"), ("rslad", "best"), ("rslad", "last")]
    assert all(len(cell.values) == 2 for row in result.table.rows for cell in row.cells.values())
    markdown = (tmp_path / "comparison.md").read_text()
    assert "| Method | Checkpoint | Seeds | Clean | FGSM | PGD_SAT |" in markdown and "±" in markdown
    assert json.loads((tmp_path / "comparison.json").read_text())["attacks"] == list(ATTACKS)
    assert "Training seconds per epoch (mean over epochs and seeds; validation excluded): " in markdown
    assert {path.name for path in result.figures} == {
        "robust_accuracy_per_epoch.png", "final_table_best.png", "final_table_last.png"}
    assert all(path.is_file() for path in result.figures)


def test_compare_names_unknown_methods(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown or no methods \['madry'\]; known methods: .*rslad"):
        compare(tiny_config(), tmp_path, ["rslad", "madry"])


def test_overrides_reach_nested_keys_and_name_bad_ones() -> None:
    config = tiny_config().with_overrides(["nb_epochs=3", "method_lr.rslad=0.2", "teacher.source=zoo:x",
                                           "lr_milestones=[1,2]"])
    assert (config.nb_epochs, config.method_lr["rslad"], config.teacher.source, config.lr_milestones) == (
        3, 0.2, "zoo:x", (1, 2))
    with pytest.raises(ValueError, match="nb_epoch"):
        tiny_config().with_overrides(["nb_epoch=3"])
    with pytest.raises(ValueError, match="key=value"):
        tiny_config().with_overrides(["nb_epochs"])
    with pytest.raises(ValueError, match="`nb_epochs` must be int"):
        tiny_config().with_overrides(["nb_epochs=two"])


def test_compare_notes_say_what_arts_own_trainers_fix() -> None:
    fixed = {name: getattr(METHODS[name].trainer, "fixed_settings", {}) for name in ("sat", "art-fbf", "rslad")}
    notes = fixed_settings_notes(fixed)
    assert len(notes) == 1 and notes[0].startswith("art-fbf runs as ART designed it:")


def test_atomic_writes_of_one_file_from_several_threads_never_collide(tmp_path: Path) -> None:
    # Two compare processes on different seeds share compare.json; a fixed temporary name made one fail.
    target = tmp_path / "compare.json"
    texts = [f'{{"writer": {index}}}\n' * 2000 for index in range(8)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda text: [write_text_atomic(text, target) for _ in range(20)], texts))
    assert target.read_text(encoding="utf-8") in texts
    assert [path.name for path in tmp_path.iterdir()] == ["compare.json"]


# ---------------------------------------------------------------------- the methods since RSLAD, variants, overrides
def test_a_peeraid_run_trains_a_peer_beside_the_student_saves_it_and_resumes_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # lr x0.1 after the first of two epochs: the peer's lr follows the student's schedule
    config = tiny_config(lr_milestones=(1,), lr_schedule_epochs=2)  # teacher.source is empty: none is loaded
    whole = run(tmp_path / "whole", method="peeraid", config=config)
    folder = whole.out_dir
    marker = json.loads((folder / "run.json").read_text())
    assert marker["identity"]["method"] == "peeraid" and marker["identity"]["teacher"] is None
    best = load_checkpoint(folder / "best.pt")
    peer = torch.load(folder / "peer.pt", weights_only=True)
    assert all(torch.equal(value, best["extra_state"]["peer_model_state"][key]) for key, value in peer.items())
    student = torch.load(folder / "student.pt", weights_only=True)
    assert peer.keys() == student.keys() and not all(torch.equal(peer[key], student[key]) for key in peer)
    last = load_checkpoint(folder / "last.pt")
    assert last["extra_state"]["peer_optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(0.005)
    assert [record["lr"] for record in whole.history] == pytest.approx([0.05, 0.005])

    with interrupted_at(5), pytest.raises(KeyboardInterrupt):  # second epoch, second batch
        run(tmp_path / "resumed", method="peeraid", config=config, checkpoint_interval=1)
    resumed = run(tmp_path / "resumed", method="peeraid", config=config, checkpoint_interval=1, resume=True)
    assert resumed.accuracy == whole.accuracy
    again = torch.load(tmp_path / "resumed" / "peer.pt", weights_only=True)
    assert all(torch.equal(value, peer[key]) for key, value in again.items())


def test_a_variant_run_records_what_ran(tmp_path: Path) -> None:
    result = run(tmp_path / "igdm", method="rslad+igdm", teacher=tiny_teacher())
    marker = json.loads((tmp_path / "igdm" / "run.json").read_text())
    assert result.method == "rslad+igdm" and marker["identity"]["method"] == "rslad+igdm"
    assert marker["identity"]["trainer_options"] == {"igdm_alpha": 1.0}
    assert marker["identity"]["config"]["igdm_alpha"] == 1.0 and marker["method_settings"] == {"igdm_alpha": 1.0}
    assert load_checkpoint(tmp_path / "igdm" / "best.pt")["config"]["igdm_alpha"] == 1.0
    assert Config.from_file(tmp_path / "igdm" / "config.toml").igdm_alpha == 1.0
    ema = run(tmp_path / "ema", method="sat+ema")
    assert load_checkpoint(ema.out_dir / "last.pt")["config"]["weight_averaging"]["name"] == "ema"
    with pytest.raises(ValueError, match="sat is not a teacher-student distillation method"):
        run(tmp_path / "never", method="sat+igdm")
    assert not (tmp_path / "never").exists()


def test_per_method_overrides_are_applied_and_recorded(tmp_path: Path) -> None:
    config = tiny_config(nb_epochs=2, method_overrides={"sat": {"nb_epochs": 1, "weight_decay": 1e-3}})
    result = run(tmp_path / "sat", config=config)
    assert len(result.history) == 1 and result.config.nb_epochs == 1 and result.config.weight_decay == 1e-3
    marker = json.loads((tmp_path / "sat" / "run.json").read_text())
    assert marker["method_settings"] == {"nb_epochs": 1, "weight_decay": 1e-3}
    assert marker["identity"]["config"]["nb_epochs"] == 1
    assert marker["identity"]["config"]["method_overrides"] == config.method_overrides
    assert run(tmp_path / "trades", method="trades", config=config).config.nb_epochs == 2  # no entry of its own


def test_compare_holds_variants_beside_their_methods(tmp_path: Path) -> None:
    config = tiny_config(nb_epochs=1, method_overrides={"sat+ema": {"weight_decay": 1e-3}})
    result = compare(config, tmp_path, ["sat", "SAT+EMA", "rslad", "rslad+igdm"], [0], settings(),
                     teacher=tiny_teacher())
    assert [row.method for row in result.table.rows][::2] == ["sat", "sat+ema", "rslad", "rslad+igdm"]
    assert (tmp_path / "runs" / "rslad+igdm" / "seed-0" / "student.pt").is_file()
    markdown = (tmp_path / "comparison.md").read_text()
    assert "| rslad+igdm | best | 1 |" in markdown
    assert "Per-method settings, in place of those above: sat+ema weight_decay 0.001, weight_averaging ema; " \
           "rslad+igdm igdm_alpha 1.0." in markdown


def test_compare_refuses_a_run_wide_setting_a_method_cannot_take_before_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"method 'sat' sets igdm_alpha=1, but sat is not"):
        compare(tiny_config(igdm_alpha=1.0), tmp_path / "cmp", ["rslad", "sat"], [0], settings(),
                teacher=tiny_teacher())
    with pytest.raises(ValueError, match=r"`methods`: unknown or no methods \['madry\+ema'\]"):
        compare(tiny_config(), tmp_path / "cmp", ["madry+ema"])
    assert not (tmp_path / "cmp").exists()


def test_a_folder_written_before_the_per_method_keys_still_resumes(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    first = run(tmp_path / "run", config=tiny_config(method_lr={"sat": 0.05}))
    path = tmp_path / "run" / "run.json"
    marker = json.loads(path.read_text())
    for key in ("igdm_alpha", "weight_averaging", "loss_scale", "method_overrides", "method_overrides_note"):
        del marker["identity"]["config"][key]
    path.write_text(json.dumps(marker))
    monkeypatch.setattr(AdversarialTrainerBase, "_train_step", lambda *args: pytest.fail("trained again"))
    # The preset has since gained other methods' lrs and settings: the run of sat is still the same run.
    grown = tiny_config(method_lr={"sat": 0.05, "peeraid": 0.3}, method_overrides={"rslad": {"nb_epochs": 9}})
    assert run(tmp_path / "run", config=grown, resume=True).accuracy == first.accuracy
    with pytest.raises(ValueError, match=r"method_lr.sat: folder 0.05, now 0.1"):
        run(tmp_path / "run", config=tiny_config(method_lr={"sat": 0.1}), resume=True)


def test_peeraid_is_refused_under_torchrun_before_anything_is_written(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_module, "current_world", lambda *args: World(rank=0, size=2))
    with pytest.raises(ValueError, match="peeraid trains in one process only"):
        run(tmp_path / "run", method="peeraid")
    assert not (tmp_path / "run").exists()
    check_runs_here("sat+ema", World(rank=0, size=2))  # the shared loop's other methods run under torchrun


def test_a_train_size_beyond_the_split_records_the_images_actually_used(tmp_path: Path) -> None:
    x = load_dataset("digits", "train")[0]
    nb_split = len(x) - round(len(x) * tiny_config().val_fraction)  # the validation split is held out first
    result = run(tmp_path / "run", config=tiny_config(nb_epochs=1), train_size=100_000, test_size=8)
    marker = json.loads((result.out_dir / "run.json").read_text())
    assert result.nb_train == marker["nb_train"] == load_run(result.out_dir).nb_train == nb_split
    assert marker["identity"]["train_size"] == 100_000  # what was asked stays recorded beside it
    results = (result.out_dir / "results.md").read_text()
    assert f"; {nb_split} training images." in results and "100000" not in results


def test_a_size_beyond_the_split_warns_and_records_the_number_used(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        result = run(tmp_path / "run", test_size=100_000, attacks=("clean",))
    marker = json.loads((tmp_path / "run" / "run.json").read_text())
    assert marker["nb_test"] == result.nb_test < 100_000 and marker["nb_val"] == 16
    assert f"`test_size` 100000 is more than the {result.nb_test} images digits holds" in caplog.text


def test_a_full_disk_while_writing_results_leaves_no_empty_results_file(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    replace = os.replace

    def full_at_results(source: str, target: Any) -> None:
        if Path(target).name == "results.md":
            raise OSError(errno.ENOSPC, "No space left on device")
        replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_module.os, "replace", full_at_results)
        with pytest.raises(OSError, match=r"Could not write .*results\.md"):
            run(tmp_path / "run")
    assert not (tmp_path / "run" / "results.md").exists()
    run(tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "results.md").stat().st_size > 0
