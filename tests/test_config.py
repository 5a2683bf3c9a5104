"""Config: presets with the paper's settings, TOML/JSON round trips, clear errors for bad keys and types."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import tomllib

from art_rslad.experiments.config import (
    METHOD_SETTING_KEYS,
    Config,
    TeacherConfig,
    dumps_toml,
    get_preset,
    preset_lr_methods,
    preset_names,
)
from art_rslad.trainers.recipes import TWO_HUNDRED_EPOCHS, Recipe


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
    assert set(preset_lr_methods()) <= set(config.method_lr) and config.method_lr_note
    assert set(config.method_lr) == {*preset_lr_methods(), *config.method_overrides}
    assert set(config.method_lr.values()) == {0.1} and config.method_overrides_note


# (method, nb_epochs, milestones, weight decay, weight averaging) of each method's official recipe
OFFICIAL = [("rslad", 300, [215, 260, 285], 2e-4, ""), ("sat", 300, [215, 260, 285], 2e-4, ""),
            ("ard", 200, [100], 2e-4, ""), ("iad", 200, [100, 150], 2e-4, ""),
            ("adaad", 200, [100, 150], 5e-4, ""), ("adaiad", 200, [100, 150], 5e-4, ""),
            ("peeraid", 300, [215, 260, 285], 2e-4, "swa"), ("rslad+igdm", 300, [215, 260, 285], 2e-4, ""),
            ("ard+igdm", 200, [100, 150], 2e-4, ""), ("adaad+igdm", 200, [100, 150], 2e-4, ""),
            ("adaiad+igdm", 200, [100, 150], 2e-4, "")]


@pytest.mark.parametrize("name", ["cifar10-resnet18", "cifar100-mobilenetv2"])
@pytest.mark.parametrize(("method", "nb_epochs", "milestones", "weight_decay", "averaging"), OFFICIAL)
def test_paper_presets_give_each_method_its_official_schedule(name: str, method: str, nb_epochs: int,
                                                              milestones: list[int], weight_decay: float,
                                                              averaging: str) -> None:
    own = get_preset(name).for_method(method)
    assert (own.nb_epochs, own.milestones_for(), own.weight_decay, own.weight_averaging) == (
        nb_epochs, milestones, weight_decay, averaging)
    igdm = 0.0 if "+igdm" not in method else 1.0 if name.startswith("cifar10-") else 10.0
    assert own.igdm_alpha == igdm


def test_cifar100_presets_give_adaad_its_batch_mean_kl() -> None:
    """AdaAD's official CIFAR-100 code takes a batch-mean KL (scale 1); on CIFAR-10 the mean over B*C (0.1)."""
    cifar100, cifar10 = get_preset("cifar100-resnet18"), get_preset("cifar10-resnet18")
    assert cifar100.for_method("adaad").loss_scale == 1.0 == cifar100.for_method("adaad+igdm").loss_scale
    assert cifar10.for_method("adaad").loss_scale == 0.0  # the trainer's own default: the official 0.1
    assert cifar100.for_method("rslad").loss_scale == 0.0 and cifar100.for_method("adaiad").loss_scale == 0.0
    assert "Loss scales and reductions" in cifar100.method_overrides_note


def test_a_recipe_sets_config_keys_and_says_what_it_is() -> None:
    config_keys = {item.name for item in dataclasses.fields(Config)}
    assert set(METHOD_SETTING_KEYS) <= config_keys
    recipe = TWO_HUNDRED_EPOCHS.plus("weight decay 5e-4", weight_decay=5e-4).on(
        "cifar100", Recipe(loss_scale=1.0, note="scale 1"))
    assert recipe.settings("cifar10") == {"nb_epochs": 200, "lr_schedule_epochs": 200, "lr_milestones": [100, 150],
                                          "weight_decay": 5e-4}
    assert recipe.settings("cifar100") == {**recipe.settings("cifar10"), "loss_scale": 1.0}
    assert (recipe.note, recipe.dataset_note("cifar100"), recipe.dataset_note("cifar10")) == (
        "200 epochs, lr x0.1 after 100/150, weight decay 5e-4", "scale 1", "")
    with pytest.raises(ValueError, match=r"Recipe \{'nb_epochs': 200\} has no note: say in a phrase"):
        Recipe(nb_epochs=200)
    with pytest.raises(ValueError, match=r"dataset\(s\) cifar100 has `datasets` of its own"):
        Recipe().on("cifar100", recipe)
    with pytest.raises(TypeError, match="epochs"):
        Recipe(epochs=200, note="not a config key")  # type: ignore[call-arg]


@pytest.mark.parametrize(("method", "options"), [("trades", {"beta": 3.0}), ("sat", {}), ("natural", {})])
def test_a_teacher_method_gets_beta_where_its_trainer_takes_it(method: str, options: dict[str, float]) -> None:
    assert TeacherConfig(method=method, beta=3.0).trainer_options() == options


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
        ({"method_lr": {"distill": 0.1}}, r"`method_lr.distill`: unknown or no methods"),
        ({"val_fraction": 1.5}, r"`val_fraction` must be in \(0, 1\)"),
        ({"eps": 0}, r"`eps` must be > 0"),
        ({"augmentation": "mixup"}, r"`augmentation` must be"),
        ({"weight_averaging": "polyak"}, r"`weight_averaging` must be '' \(none\) or one of 'ema', 'swa'"),
        ({"igdm_alpha": -1}, r"`igdm_alpha` must be a finite number >= 0"),
        ({"method_lr": {"rslad+foo": 0.1}}, r"`method_lr.rslad\+foo`: Method 'rslad\+foo': '\+foo' is not allowed"),
        ({"method_lr": {"RSLAD": 0.1}}, r"`method_lr.RSLAD`: write the method as 'rslad'"),
        ({"method_lr": {"sat+igdm": 0.1}}, r"sat is not a teacher-student distillation method"),
        ({"method_overrides": {"rslad": {"epochs": 3}}}, r"`method_overrides.rslad` sets epochs; a method may "
                                                         r"override only: nb_epochs"),
        ({"method_overrides": {"rslad": {"lr": 3}}}, r"its lr is `method_lr.rslad`"),
        ({"method_overrides": {"rslad": {"nb_epochs": "3"}}}, r"`method_overrides.rslad`: .*`nb_epochs` must be int"),
        ({"method_overrides": {"madry": {"nb_epochs": 3}}}, r"`method_overrides.madry`: unknown or no methods"),
        ({"method_overrides": {"sat": {"loss_scale": 1.0}}}, r"sat has no loss scale; methods with one: adaad, rslad"),
        ({"method_overrides": {"art-fbf": {"weight_averaging": "ema"}}}, r"art-fbf runs ART's own training loop"),
        ({"method_overrides": {"rslad": 3}}, r"`method_overrides.rslad` must be a table"),
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
    with pytest.raises(ValueError, match=r"`method_lr.art-sat`: unknown or no methods .*art-madry-pgd"):
        Config.from_dict({"method_lr": {"art-sat": 0.1}})


def test_art_study_config_is_the_fashion_mnist_preset_with_arts_trainers_lr() -> None:
    study = Config.from_file(Path(__file__).parents[1] / "studies" / "fashion-mnist-art.toml")
    preset = get_preset("fashion-mnist")
    art_lr = {method: lr for method, lr in study.method_lr.items() if method.startswith("art-")}
    assert art_lr == dict.fromkeys(("art-madry-pgd", "art-trades", "art-awp", "art-oaat"), preset.lr_for("sat"))
    # The study was made before the preset gained the methods since RSLAD; for the six it has, the preset agrees.
    shared = {k: v for k, v in study.method_lr.items() if k not in art_lr}
    assert shared == {k: preset.method_lr[k] for k in ("sat", "trades", "ard", "iad", "adaad", "rslad")}
    first_note = study.method_lr_note.removeprefix("sat, trades, ard, iad, adaad, rslad: ").split(" ART's trainers")[0]
    assert preset.method_lr_note.startswith(first_note)
    different = {key for key, value in study.to_dict().items() if value != preset.to_dict()[key]}
    assert different == {"name", "method_lr", "method_lr_note", "clean_teacher"}  # it predates the clean teacher


def test_an_explicit_lr_wins_over_the_presets_per_method_lr() -> None:
    preset = get_preset("fashion-mnist")
    assert preset.method_lr  # the preset sets each method's lr
    config = preset.with_overrides(["lr=0.2"])
    assert config.lr == 0.2 and config.method_lr == {} and config.method_lr_note == ""
    again = preset.with_overrides(["lr=0.2", "method_lr.sat=0.1"])  # a later per-method override still applies
    assert again.method_lr == {"sat": 0.1}


@pytest.mark.parametrize(("override", "message"), [
    ("eps=8", r"`eps` must be in \(0, 1\] \(inputs lie in \[0, 1\]; CIFAR's 8/255 is 0.0314\), got 8"),
    ("eps_step=0.5", r"`eps_step` \(0.5\) must not exceed `eps` \(0.1\); the usual step is eps/4"),
])
def test_a_budget_out_of_range_is_refused_by_the_config(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_preset("fashion-mnist").with_overrides([override])
