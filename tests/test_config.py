"""Config: presets with the paper's settings, TOML/JSON round trips, clear errors for bad keys and types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

from art_rslad.experiments.config import Config, TeacherConfig, dumps_toml, get_preset, preset_lr_methods, preset_names


def test_presets_exist() -> None:
    assert set(preset_names()) == {"cifar10-resnet18", "cifar10-mobilenetv2", "cifar100-resnet18",
                                   "cifar100-mobilenetv2", "fashion-mnist", "digits"}
    with pytest.raises(ValueError, match=r"Unknown preset 'cifar10'; known presets: cifar10-mobilenetv2"):
        get_preset("cifar10")


@pytest.mark.parametrize("name", ["cifar10-resnet18", "cifar10-mobilenetv2", "cifar100-resnet18",
                                  "cifar100-mobilenetv2"])
def test_paper_presets_carry_the_papers_recipe(name: str) -> None:
    config = get_preset(name)
    dataset, student = name.split("-")
    assert (config.dataset, config.student) == (dataset, student)
    assert config.teacher.model == ("wrn-34-10" if dataset == "cifar10" else "wrn-70-16")
    assert config.teacher.source.startswith("robustbench:")
    assert (config.nb_epochs, config.batch_size, config.lr, config.momentum, config.weight_decay) == (
        300, 128, 0.1, 0.9, 2e-4)
    assert config.milestones_for() == [215, 260, 285] and config.lr_gamma == 0.1
    assert (config.eps, config.eps_step, config.max_iter) == (8 / 255, 2 / 255, 10)
    assert config.augmentation == "crop-flip"
    assert set(config.method_lr) == set(preset_lr_methods()) and config.method_lr_note


@pytest.mark.parametrize("name", ["fashion-mnist", "digits"])
def test_cpu_presets_are_cpu_sized(name: str) -> None:
    config = get_preset(name)
    assert (config.eps, config.eps_step) == (0.1, 0.025)
    assert (config.student, config.teacher.model) == ("cnn-small", "cnn-large")
    assert config.nb_epochs <= 30
    assert "chosen by the validation rule" in config.method_lr_note.lower()
    assert "art-rslad tune" in config.method_lr_note
    assert config.lr_for("rslad") == config.method_lr["rslad"]


def test_presets_are_fresh_copies() -> None:
    get_preset("fashion-mnist").method_lr["rslad"] = 9.0
    get_preset("fashion-mnist").teacher.lr = 9.0
    assert get_preset("fashion-mnist").method_lr["rslad"] != 9.0
    assert get_preset("fashion-mnist").teacher.lr != 9.0


def test_milestones_scale_with_the_run_length() -> None:
    config = get_preset("cifar10-resnet18")
    assert config.milestones_for(30) == [22, 26, 28]
    assert config.milestones_for(3) == [2]  # 215/300*3 = 2.15; the others round onto the last epoch and drop
    assert config.lr_for("unknown-method") == config.lr


@pytest.mark.parametrize("name", preset_names())
@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_every_preset_round_trips(tmp_path: Path, name: str, suffix: str) -> None:
    config = get_preset(name)
    path = config.save(tmp_path / f"config{suffix}")
    assert Config.from_file(path) == config


def test_toml_writer_output_is_read_back_by_tomllib() -> None:
    data = {"a": 1, "b": 0.5, "c": "quote \" and \\ backslash", "d": [1, 2], "e": True, "f": float("inf"),
            "table": {"key with space": 2e-4, "nested": {"x": "y"}}}
    assert tomllib.loads(dumps_toml(data)) == data


def test_unknown_keys_and_wrong_types_name_the_key() -> None:
    cases = [
        ({"nb_epoch": 3}, r"Unknown config key `nb_epoch`; known keys: name, dataset"),
        ({"nb_epochs": "3"}, r"`nb_epochs` must be int, got str"),
        ({"nb_epochs": True}, r"`nb_epochs` must be int, got bool"),
        ({"lr": "fast"}, r"`lr` must be float"),
        ({"lr_milestones": [10, "x"]}, r"`lr_milestones\[1\]` must be int"),
        ({"lr_milestones": 10}, r"`lr_milestones` must be a list"),
        ({"teacher": {"epochs": 2}}, r"Unknown config key `teacher.epochs`"),
        ({"teacher": {"lr": [1]}}, r"`teacher.lr` must be float"),
        ({"teacher": 3}, r"`teacher` must be a table"),
        ({"method_lr": {"rslad": "0.1"}}, r"`method_lr.rslad` must be float"),
        ({"method_lr": {"distill": 0.1}}, r"`method_lr.distill`: unknown method"),
        ({"val_fraction": 1.5}, r"`val_fraction` must be in \(0, 1\)"),
        ({"eps": 0}, r"`eps` must be > 0"),
        ({"augmentation": "mixup"}, r"`augmentation` must be"),
    ]
    for data, message in cases:
        with pytest.raises(ValueError, match=message):
            Config.from_dict(data)
    assert Config.from_dict({"lr": 1}).lr == 1.0  # an integer is a valid float
    assert isinstance(Config.from_dict({"lr": 1}).lr, float)


def test_files_with_bad_content_or_suffix(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("nb_epochs = = 3\n", encoding="utf-8")
    (tmp_path / "bad.json").write_text(json.dumps({"teacher": {"model": 5}}), encoding="utf-8")
    with pytest.raises(ValueError, match="not valid TOML"):
        Config.from_file(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match=r"`teacher.model` must be str"):
        Config.from_file(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"\.toml or \.json"):
        Config.from_file(tmp_path / "config.yaml")
    with pytest.raises(FileNotFoundError):
        Config.from_file(tmp_path / "absent.toml")


def test_defaults_are_a_valid_config() -> None:
    config = Config()
    assert isinstance(config.teacher, TeacherConfig)
    assert Config.from_dict(config.to_dict()) == config


def test_method_lr_takes_every_trainer_the_runs_know() -> None:
    config = Config.from_dict({"method_lr": {"natural": 0.05, "art-madry-pgd": 0.03, "art-defensive-distillation": 1}})
    assert config.lr_for("art-madry-pgd") == 0.03 and config.lr_for("natural") == 0.05
    with pytest.raises(ValueError, match=r"`method_lr.art-sat`: unknown method; known: .*art-madry-pgd"):
        Config.from_dict({"method_lr": {"art-sat": 0.1}})


def test_art_study_config_is_the_fashion_mnist_preset_with_arts_trainers_lr() -> None:
    study = Config.from_file(Path(__file__).parents[1] / "studies" / "fashion-mnist-art.toml")
    preset = get_preset("fashion-mnist")
    art_lr = {method: lr for method, lr in study.method_lr.items() if method.startswith("art-")}
    assert art_lr == dict.fromkeys(("art-madry-pgd", "art-trades", "art-awp", "art-oaat"), preset.lr_for("sat"))
    assert {k: v for k, v in study.method_lr.items() if k not in art_lr} == preset.method_lr
    assert study.method_lr_note.startswith(f"sat, trades, ard, iad, adaad, rslad: {preset.method_lr_note}")
    different = {key for key, value in study.to_dict().items() if value != preset.to_dict()[key]}
    assert different == {"name", "method_lr", "method_lr_note"}
