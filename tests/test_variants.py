"""Method specs NAME[+igdm][+ema|+swa], the run-wide IGDM / averaging / scale keys, and per-method overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from art_rslad.experiments.config import Config, get_preset
from art_rslad.experiments.variants import method_name, parse_method, takes_igdm, takes_weight_averaging
from art_rslad.trainers.registry import METHODS


@pytest.mark.parametrize(("spec", "name", "igdm", "averaging"), [
    ("rslad", "rslad", False, ""), ("RSLAD+IGDM", "rslad+igdm", True, ""), ("adaiad+igdm", "adaiad+igdm", True, ""),
    ("sat+ema", "sat+ema", False, "ema"), ("rslad+ema", "rslad+ema", False, "ema"),
    ("rslad+igdm+swa", "rslad+igdm+swa", True, "swa"), ("peeraid+swa", "peeraid+swa", False, "swa"),
    ("natural+ema", "natural+ema", False, "ema"),
])
def test_specs_parse_to_a_registered_method_and_options(spec: str, name: str, igdm: bool, averaging: str) -> None:
    parsed = parse_method(spec)
    assert (parsed.name, parsed.igdm, parsed.weight_averaging) == (name, igdm, averaging)
    assert parsed.method is METHODS[name.split("+")[0]] and parsed.is_variant == (name != "rslad")


@pytest.mark.parametrize(("spec", "message"), [
    ("madry+igdm", r"Unknown method 'madry'; known methods: natural"),
    ("rslad+foo", r"'\+foo' is not allowed there; a method is written NAME\[\+igdm\]\[\+ema\|\+swa\]"),
    ("rslad+ema+igdm", r"'\+igdm' is not allowed there"),
    ("rslad+igdm+igdm", r"'\+igdm' is not allowed there"),
    ("sat+ema+swa", r"'\+swa' is not allowed there"),
    ("rslad+", r"'\+' is not allowed there"),
    ("sat+igdm", r"sat is not a teacher-student distillation method and has no IGDM term; IGDM applies to: ard, iad"),
    ("peeraid+igdm", r"peeraid is not a teacher-student distillation method"),
    ("art-madry-pgd+ema", r"art-madry-pgd runs ART's own training loop, which does not average weights"),
])
def test_bad_specs_are_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_method(spec)


def test_which_methods_take_which_options_follows_their_trainers() -> None:
    assert [name for name, method in METHODS.items() if takes_igdm(method)] == [
        "ard", "iad", "adaad", "rslad", "adaiad", "mtard", "absld", "dgad"]
    assert not any(takes_weight_averaging(method) for name, method in METHODS.items() if name.startswith("art-"))
    assert all(takes_weight_averaging(method) for name, method in METHODS.items() if not name.startswith("art-"))


def test_for_method_applies_the_spec_and_the_overrides_in_order() -> None:
    config = Config(method_overrides={"rslad": {"nb_epochs": 5, "weight_decay": 1e-3},
                                      "rslad+igdm": {"nb_epochs": 7}})
    plain, igdm, ema = (config.for_method(spec) for spec in ("rslad", "rslad+igdm", "rslad+ema"))
    assert (plain.nb_epochs, plain.weight_decay, plain.igdm_alpha) == (5, 1e-3, 0.0)
    assert (igdm.nb_epochs, igdm.weight_decay, igdm.igdm_alpha) == (7, 1e-3, 1.0)  # base entry, then its own
    assert (ema.nb_epochs, ema.weight_averaging) == (5, "ema")
    assert config.for_method("sat") == config  # no entry, no suffix: the config itself
    assert igdm.for_method("rslad+igdm") == igdm  # applying it again changes nothing
    assert config.method_settings("rslad+igdm") == {"nb_epochs": 7, "weight_decay": 1e-3, "igdm_alpha": 1.0}
    # +igdm keeps a non-zero igdm_alpha of the config (e.g. CIFAR-100's 10)
    assert Config(igdm_alpha=10.0).for_method("ard+igdm").igdm_alpha == 10.0


def test_run_wide_keys_apply_to_every_method_and_refuse_those_that_cannot_take_them() -> None:
    config = Config().with_overrides(["igdm_alpha=1", "weight_averaging=ema"])
    assert config.for_method("rslad").igdm_alpha == 1.0 and config.for_method("rslad").weight_averaging == "ema"
    with pytest.raises(ValueError, match=r"method 'sat' sets igdm_alpha=1, but sat is not a teacher-student"):
        config.for_method("sat")
    with pytest.raises(ValueError, match=r"art-trades runs ART's own training loop"):
        Config(weight_averaging="swa").for_method("art-trades")
    with pytest.raises(ValueError, match=r"'sat\+ema' averages by ema but its config sets weight_averaging='swa'"):
        Config(weight_averaging="swa").for_method("sat+ema")
    with pytest.raises(ValueError, match=r"trades has no loss scale"):
        Config(loss_scale=1.0).for_method("trades")
    assert Config(loss_scale=1.0).for_method("adaad").loss_scale == 1.0


def test_overrides_create_method_entries_and_round_trip(tmp_path: Path) -> None:
    config = get_preset("fashion-mnist").with_overrides([
        "method_overrides.adaad.nb_epochs=3", "method_overrides.adaad.lr_milestones=[1,2]",
        "method_overrides.rslad+igdm.weight_decay=0.001", "method_lr.rslad+igdm=0.3", "weight_averaging=ema"])
    assert config.method_overrides == {"adaad": {"nb_epochs": 3, "lr_milestones": [1, 2]},
                                       "rslad+igdm": {"weight_decay": 0.001}}
    assert config.lr_for("rslad+igdm") == 0.3 and config.lr_for("RSLAD+IGDM") == 0.3
    assert config.lr_for("trades+ema") == config.lr  # a variant's lr is its own entry's, else the config's
    for suffix in (".toml", ".json"):
        assert Config.from_file(config.save(tmp_path / f"config{suffix}")) == config
    assert '[method_overrides."rslad+igdm"]' in config.to_toml()


def test_method_name_is_the_canonical_spelling() -> None:
    assert method_name(" Sat+EMA ") == "sat+ema"
