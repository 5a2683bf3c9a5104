"""Typed run configuration that round-trips to TOML and JSON, with a named preset per paper setting.

``get_preset("cifar10-resnet18")`` is the RSLAD paper's CIFAR-10 recipe; ``get_preset("fashion-mnist")`` the
CPU-sized one. ``Config.from_file(path)`` reads ``.toml`` or ``.json``; ``config.save(path)`` writes either.
Unknown keys and wrongly typed values raise a ValueError that names the key; ``config.with_overrides(["lr=0.1",
"teacher.nb_epochs=3"])`` is a copy with ``key=value`` overrides applied (what ``--set`` does on the command line).

A preset carries, per method, the learning rate chosen once by the validation rule (:attr:`Config.method_lr`), and
:attr:`Config.method_lr_note` says how those values were chosen (see docs/decisions.md, "Learning rate per method").
:attr:`Config.method_overrides` holds the settings that differ per method (a method's official schedule, its loss
scale; the paper presets take them from each method's registry record, its recipe); :meth:`Config.for_method` is the
config a method actually trains with. Method names come from the one
registry of methods, :mod:`art_rslad.trainers.registry`, written as specs ``NAME[+igdm][+ema|+swa]``
(:mod:`art_rslad.experiments.variants`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from art_rslad.experiments.lr_notes import PAPER_NOTE, SECOND_ROUND, TUNED_VARIANTS, tuned_note
from art_rslad.experiments.tomlfile import dumps_toml, loads_toml
from art_rslad.experiments.typed_tables import build_dataclass
from art_rslad.experiments.variants import (
    IGDM_DEFAULT_ALPHA,
    check_method_settings,
    check_method_specs,
    parse_method,
)
from art_rslad.trainers.averaging import AVERAGERS
from art_rslad.trainers.recipes import RECIPE_KEYS
from art_rslad.trainers.registry import get_method, method_names, official_recipes, tuned_lrs
from art_rslad.trainers.schedules import LR_SCHEDULES

#: The registry's families whose methods can train a teacher (``teacher.method``): natural training gives the clean
#: teacher of the methods that distil a clean and a robust teacher, adversarial training the robust one.
TEACHER_FAMILIES: tuple[str, ...] = ("natural", "adversarial training")
#: The registry's families whose methods a preset gives a learning rate of their own (``method_lr``).
PRESET_LR_FAMILIES: tuple[str, ...] = ("adversarial training", "distillation", "peer distillation")
#: Config keys a method's entry in ``method_overrides`` may set (its lr is ``method_lr``'s): those of a recipe.
METHOD_SETTING_KEYS: tuple[str, ...] = RECIPE_KEYS


def teacher_method_names() -> list[str]:
    """Methods that can train a teacher: ``natural`` (a clean teacher), then adversarial training (a robust one)."""
    return [name for family in TEACHER_FAMILIES for name in method_names(family)]


def preset_lr_methods() -> list[str]:
    """The methods a preset's ``method_lr`` covers: the registry's families of :data:`PRESET_LR_FAMILIES`."""
    return [name for family in PRESET_LR_FAMILIES for name in method_names(family)]


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``, the value read as JSON where it parses (numbers, lists, ``true``) and
    as a string otherwise."""
    key, separator, raw = text.partition("=")
    if not separator or not key.strip():
        raise ValueError(f"{text!r} must look like key=value, e.g. nb_epochs=2.")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


@dataclass
class TeacherConfig:
    """Where the teacher comes from, or how ``art-rslad teacher`` trains it.

    :param model: Registry name of the teacher's architecture.
    :param source: ``"zoo:<name>"``, ``"robustbench:<name>"`` or a state-dict path; empty to train one.
    :param method: Training method of a trained teacher: ``"trades"`` or ``"sat"`` for a robust teacher,
        ``"natural"`` for a clean one (:func:`teacher_method_names`).
    :param nb_epochs: Epochs of teacher training.
    :param lr: SGD learning rate of teacher training.
    :param beta: TRADES' robustness weight (given to a teacher method whose trainer takes ``beta``).
    """

    model: str = "cnn-large"
    source: str = ""
    method: str = "trades"
    nb_epochs: int = 10
    lr: float = 0.05
    beta: float = 6.0

    def trainer_options(self) -> dict[str, Any]:
        """The options of :attr:`method`'s trainer set here: ``beta`` where its constructor takes one."""
        return {"beta": self.beta} if get_method(self.method).takes("beta") else {}


@dataclass
class Config:
    """Everything a training run needs besides the data and the method.

    :param name: Preset or run name.
    :param dataset: Dataset name (see :func:`art_rslad.data.dataset_names`).
    :param student: Registry name of the student architecture.
    :param teacher: The teacher (:class:`TeacherConfig`).
    :param clean_teacher: The clean (naturally trained) teacher of MTARD and CIARD, as a teacher source (zoo,
        RobustBench, run folder or state dict); empty for none.
    :param transfer_surrogate: The robust model the transfer attacks (``transfer_pgd``, ``transfer_cw``) are crafted
        on, as a teacher source (``"zoo:<name>"``, ``"robustbench:<name>"`` or a state-dict path); empty for none.
    :param nb_epochs: Training epochs.
    :param batch_size: Batch size.
    :param lr: Default SGD learning rate (a method's own entry in ``method_lr`` takes precedence).
    :param momentum: SGD momentum.
    :param weight_decay: SGD weight decay.
    :param lr_milestones: Epochs after which the learning rate is multiplied by ``lr_gamma``, stated for a run of
        ``lr_schedule_epochs`` epochs; :meth:`milestones_for` scales them to shorter runs
        (see docs/decisions.md, "Scaled schedules").
    :param lr_schedule_epochs: Length of the run the milestones refer to.
    :param lr_gamma: Learning-rate factor at each milestone.
    :param lr_schedule: ``"step"`` (the lr x ``lr_gamma`` after each of ``lr_milestones``) or ``"cosine"`` (the lr
        at its value for the first ``lr_cosine_start`` epochs, then on CIARD's cosine-times-Gaussian decay to 0 at
        the last epoch; :class:`~art_rslad.trainers.schedules.CosineExpLR`).
    :param lr_cosine_start: The epochs before the cosine decay starts, stated for a run of ``lr_schedule_epochs``
        epochs and scaled like the milestones (:meth:`cosine_start_for`); ``lr_schedule = "cosine"`` only.
    :param eps: L-inf budget of the training attack, on the [0, 1] scale.
    :param eps_step: Step size of the training attack.
    :param max_iter: Steps of the training attack.
    :param seed: Seed of initialisation, batch order, attacks and the validation split.
    :param val_fraction: Fraction of the training set held out for validation.
    :param augmentation: ``"none"``, ``"crop"`` or ``"crop-flip"`` (see :mod:`art_rslad.data`).
    :param igdm_alpha: IGDM's final weight for every method of the run (0: off; a method without IGDM's term is
        refused); ``+igdm`` in a method's name turns it on for that method alone (at 1 while this is 0).
    :param weight_averaging: ``"ema"`` or ``"swa"`` for every method of the run (``""``: none; ART's own trainers
        are refused); ``+ema`` / ``+swa`` in a method's name set it for that method alone.
    :param weight_averaging_start: SWA averages the weights of every epoch after the first this many, stated for a
        run of ``lr_schedule_epochs`` epochs and scaled like the milestones (:meth:`averaging_start_for`); -1 (the
        default): from the first lr drop (the first milestone, or the start of the cosine decay).
    :param loss_scale: The loss scale of every method of the run (0: each method's own, its official scale; a
        method without a scale is refused); mostly a per-method setting in ``method_overrides``.
    :param method_lr: Method (or ``NAME+variant``) -> learning rate chosen by the validation rule.
    :param method_lr_note: How the ``method_lr`` values were chosen (the command, or that they are untuned).
    :param method_overrides: Method (or ``NAME+variant``) -> config keys (:data:`METHOD_SETTING_KEYS`) that this
        method trains with instead, e.g. its official schedule; a variant takes its base method's entry, then its
        own (see :meth:`for_method`).
    :param method_overrides_note: Where the ``method_overrides`` come from (e.g. each method's official recipe).
    """

    name: str = "custom"
    dataset: str = "fashion-mnist"
    student: str = "cnn-small"
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    transfer_surrogate: str = ""
    clean_teacher: str = ""
    nb_epochs: int = 8
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 2e-4
    lr_milestones: tuple[int, ...] = (215, 260, 285)
    lr_schedule_epochs: int = 300
    lr_gamma: float = 0.1
    lr_schedule: str = "step"
    lr_cosine_start: int = 0
    eps: float = 0.1
    eps_step: float = 0.025
    max_iter: int = 10
    seed: int = 0
    val_fraction: float = 0.1
    augmentation: str = "none"
    igdm_alpha: float = 0.0
    weight_averaging: str = ""
    weight_averaging_start: int = -1
    loss_scale: float = 0.0
    method_lr: dict[str, float] = field(default_factory=dict)
    method_lr_note: str = ""
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_overrides_note: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check value ranges; a ValueError names the offending key."""
        positive = {"nb_epochs": self.nb_epochs, "batch_size": self.batch_size, "max_iter": self.max_iter,
                    "lr_schedule_epochs": self.lr_schedule_epochs, "eps": self.eps, "eps_step": self.eps_step,
                    "teacher.nb_epochs": self.teacher.nb_epochs}
        for key, value in positive.items():
            if not value > 0:
                raise ValueError(f"Config key `{key}` must be > 0, got {value}.")
        for key, value in {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                           "lr_gamma": self.lr_gamma, "teacher.lr": self.teacher.lr,
                           "teacher.beta": self.teacher.beta, "igdm_alpha": self.igdm_alpha,
                           "loss_scale": self.loss_scale}.items():
            if not value >= 0 or math.isinf(value):
                raise ValueError(f"Config key `{key}` must be a finite number >= 0, got {value}.")
        if self.eps > 1:
            raise ValueError(f"Config key `eps` must be in (0, 1] (inputs lie in [0, 1]; CIFAR's 8/255 is 0.0314), "
                             f"got {self.eps}.")
        if self.eps_step > self.eps:
            raise ValueError(f"Config key `eps_step` ({self.eps_step}) must not exceed `eps` ({self.eps}); the usual "
                             f"step is eps/4 ({self.eps / 4:.4g}).")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"Config key `val_fraction` must be in (0, 1), got {self.val_fraction}.")
        if self.augmentation not in ("none", "crop", "crop-flip"):
            raise ValueError(f"Config key `augmentation` must be 'none', 'crop' or 'crop-flip', got "
                             f"{self.augmentation!r}.")
        teacher_methods = teacher_method_names()
        if self.teacher.method not in teacher_methods:
            raise ValueError(f"Config key `teacher.method` must be one of {', '.join(map(repr, teacher_methods))}, "
                             f"got {self.teacher.method!r}.")
        if self.weight_averaging not in ("", *AVERAGERS):
            raise ValueError(f"Config key `weight_averaging` must be '' (none) or one of "
                             f"{', '.join(map(repr, AVERAGERS))}, got {self.weight_averaging!r}.")
        self._check_schedule()
        for method, lr in self.method_lr.items():  # every registered method, ART's trainers included
            _check_method_key(f"method_lr.{method}", method)
            if not lr > 0:
                raise ValueError(f"Config key `method_lr.{method}` must be > 0, got {lr}.")
        for method in self.method_overrides:
            _check_method_key(f"method_overrides.{method}", method)
            self.for_method(method)

    def _check_schedule(self) -> None:
        """The lr schedule's kind and start, and the first epoch SWA averages; a ValueError names the key."""
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"Config key `lr_schedule` must be 'step' (lr x lr_gamma after each of lr_milestones) or "
                             f"'cosine' (a cosine decay after lr_cosine_start epochs), got {self.lr_schedule!r}.")
        epochs = self.lr_schedule_epochs
        if not 0 <= self.lr_cosine_start < epochs:
            raise ValueError(f"Config key `lr_cosine_start` must be in [0, lr_schedule_epochs) = [0, {epochs}), got "
                             f"{self.lr_cosine_start}.")
        if self.lr_cosine_start and self.lr_schedule != "cosine":
            raise ValueError(f"Config key `lr_cosine_start` ({self.lr_cosine_start}) starts the cosine schedule: set "
                             "lr_schedule = 'cosine' with it, or drop it.")
        if self.weight_averaging_start != -1 and not 0 <= self.weight_averaging_start < epochs:
            raise ValueError(f"Config key `weight_averaging_start` must be -1 (from the first lr drop) or in "
                             f"[0, lr_schedule_epochs) = [0, {epochs}), got {self.weight_averaging_start}.")
        if self.weight_averaging_start != -1 and self.weight_averaging == "ema":
            raise ValueError("Config key `weight_averaging_start` is SWA's first epoch; EMA averages from the first "
                             "step: drop it, or set weight_averaging = 'swa'.")

    # ------------------------------------------------------------------ derived values
    def lr_for(self, method: str) -> float:
        """The learning rate of ``method`` (a spec such as ``rslad+igdm``): its ``method_lr`` entry, else :attr:`lr`."""
        return self.method_lr.get(method.lower(), self.lr)

    def for_method(self, method: str) -> Config:
        """The config ``method`` (a spec ``NAME[+igdm][+ema|+swa]``) trains with.

        Its base method's ``method_overrides`` entry, then the spec's own entry, replace the config's keys; then
        ``+igdm`` sets :attr:`igdm_alpha` (to 1 where it is 0) and ``+ema`` / ``+swa`` set
        :attr:`weight_averaging`. A ValueError names a setting the method cannot take (IGDM on a method without a
        teacher, weight averaging on ART's own trainers, a loss scale on a method without one) or a conflict between
        the config's weight averaging and the spec's. The result keeps :attr:`method_overrides`, so applying it
        again changes nothing.
        """
        spec = parse_method(method)
        data = {**self.to_dict(), "method_overrides": {}}
        for key in dict.fromkeys([spec.method.name, spec.name]):
            entry = self.method_overrides.get(key, {})
            unknown = sorted(set(entry) - set(METHOD_SETTING_KEYS))
            if unknown:
                raise ValueError(f"Config key `method_overrides.{key}` sets {', '.join(unknown)}; a method may "
                                 f"override only: {', '.join(METHOD_SETTING_KEYS)} (its lr is `method_lr.{key}`).")
            data.update(entry)
        if spec.igdm:
            data["igdm_alpha"] = data["igdm_alpha"] or IGDM_DEFAULT_ALPHA
        if spec.weight_averaging:
            if data["weight_averaging"] not in ("", spec.weight_averaging):
                raise ValueError(f"Method {spec.name!r} averages by {spec.weight_averaging} but its config sets "
                                 f"weight_averaging={data['weight_averaging']!r}; drop one of the two.")
            data["weight_averaging"] = spec.weight_averaging
        try:
            config = Config.from_dict(data)
        except ValueError as error:
            raise ValueError(f"Config key `method_overrides.{spec.name}`: {error}") from error
        check_method_settings(spec.method, config.igdm_alpha, config.weight_averaging, config.loss_scale,
                              f"The config of method {spec.name!r}")
        config.method_overrides = json.loads(json.dumps(self.method_overrides))  # built without: no recursion
        return config

    def method_settings(self, method: str) -> dict[str, Any]:
        """The keys in which ``method``'s config (:meth:`for_method`) differs from this one."""
        own, base = self.for_method(method).to_dict(), self.to_dict()
        return {key: value for key, value in own.items() if value != base[key]}

    def milestones_for(self, nb_epochs: int | None = None) -> list[int]:
        """The lr milestones scaled from ``lr_schedule_epochs`` to ``nb_epochs`` (default :attr:`nb_epochs`).

        Milestones that would fall on or after the last epoch are dropped.
        """
        epochs = self.nb_epochs if nb_epochs is None else nb_epochs
        scaled = {round(milestone * epochs / self.lr_schedule_epochs) for milestone in self.lr_milestones}
        return sorted(milestone for milestone in scaled if 0 < milestone < epochs)

    def cosine_start_for(self, nb_epochs: int | None = None) -> int:
        """The epochs before the cosine decay starts, scaled from ``lr_schedule_epochs`` to ``nb_epochs`` (default
        :attr:`nb_epochs`); at most the run's epochs less one."""
        epochs = self.nb_epochs if nb_epochs is None else nb_epochs
        return min(round(self.lr_cosine_start * epochs / self.lr_schedule_epochs), epochs - 1)

    def averaging_start_for(self, nb_epochs: int | None = None) -> int | None:
        """The epochs before SWA averages, scaled from ``lr_schedule_epochs`` to ``nb_epochs`` (default
        :attr:`nb_epochs`); None for the first lr drop (``weight_averaging_start = -1``)."""
        if self.weight_averaging_start == -1:
            return None
        epochs = self.nb_epochs if nb_epochs is None else nb_epochs
        return round(self.weight_averaging_start * epochs / self.lr_schedule_epochs)

    def with_overrides(self, overrides: Sequence[str]) -> Config:
        """A copy with ``key=value`` overrides applied (dotted keys reach nested tables).

        Values are read by :func:`parse_assignment` and checked by :meth:`from_dict`, so a wrong key or type raises
        a ValueError naming it. Examples: ``nb_epochs=2``, ``method_lr.rslad=0.1``,
        ``teacher.source=zoo:fashion-mnist-cnn-large``, ``lr_milestones=[100,150]``, ``igdm_alpha=1``,
        ``method_overrides.adaad.nb_epochs=200`` (a method's entry is created as needed).

        An explicit ``lr=`` is every method's learning rate: it empties the preset's ``method_lr`` (a later
        ``method_lr.<method>=`` override sets one method's again), so the run uses, and records, the lr given.
        """
        data = self.to_dict()
        for override in overrides:
            key, value = parse_assignment(override)
            *parents, leaf = key.split(".")
            table = data
            for depth, parent in enumerate(parents):
                if depth and parent not in table:  # inside a table such as method_overrides: a new entry
                    table[parent] = {}
                if not isinstance(table.get(parent), dict):
                    raise ValueError(f"Override {override!r}: `{parent}` is not a table of the config.")
                table = table[parent]
            table[leaf] = value
            if key == "lr":
                data.update(method_lr={}, method_lr_note="")
        return Config.from_dict(data)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists), the inverse of :meth:`from_dict`."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build a Config from a dict; unknown keys and wrong types raise a ValueError naming the key."""
        return build_dataclass(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_toml(self) -> str:
        return dumps_toml(self.to_dict())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to ``path``; the suffix (``.toml`` or ``.json``) picks the format."""
        target = Path(path)
        suffix = _format_of(target)
        target.write_text(self.to_toml() if suffix == ".toml" else self.to_json(), encoding="utf-8")
        return target

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Config:
        """Read a ``.toml`` or ``.json`` file written by :meth:`save` (or by hand)."""
        source = Path(path)
        suffix = _format_of(source)
        if not source.is_file():
            raise FileNotFoundError(f"No config file at {str(source)!r}.")
        text = source.read_text(encoding="utf-8")
        try:
            data = loads_toml(text) if suffix == ".toml" else json.loads(text)
        except ValueError as error:  # TOMLDecodeError and JSONDecodeError are ValueErrors
            raise ValueError(f"{source} is not valid {suffix[1:].upper()}: {error}") from error
        if not isinstance(data, dict):
            raise ValueError(f"{source} must hold a table of config keys, got {type(data).__name__}.")
        return cls.from_dict(data)


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ValueError(f"Config file {str(path)!r} must end in .toml or .json.")
    return suffix


def _check_method_key(key: str, method: str) -> None:
    """A table key that must be a method spec written the canonical way; a ValueError names ``key`` otherwise."""
    canonical = check_method_specs([method], f"Config key `{key}`")[0]
    if canonical != method:
        raise ValueError(f"Config key `{key}`: write the method as {canonical!r}.")


# ---------------------------------------------------------------------- presets
def _paper_overrides(dataset: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Each method's official recipe where it differs from RSLAD's (the preset's own), as its registry record
    declares it (:func:`~art_rslad.trainers.registry.official_recipes`), and the note made of the recipes' phrases."""
    recipes = official_recipes()
    overrides = {spec: settings for spec, recipe in recipes.items() if (settings := recipe.settings(dataset))}
    note = f"Each method's official recipe: {_grouped((spec, recipe.note) for spec, recipe in recipes.items())}."
    differences = _grouped((spec, recipe.dataset_note(dataset)) for spec, recipe in recipes.items())
    return overrides, note + (f" On {dataset}, {differences}." if differences else "")


def _grouped(phrases: Iterable[tuple[str, str]]) -> str:
    """``"a, b: phrase; c: other phrase"``: each non-empty phrase after the specs it describes, in order of first
    appearance."""
    groups: dict[str, list[str]] = {}
    for spec, phrase in phrases:
        if phrase:
            groups.setdefault(phrase, []).append(spec)
    return "; ".join(f"{', '.join(specs)}: {phrase}" for phrase, specs in groups.items())


def _paper_preset(dataset: str, student: str, teacher: str, teacher_source: str, surrogate: str, clean_teacher: str
                  ) -> Config:
    overrides, note = _paper_overrides(dataset)
    try:
        return Config(
            name=f"{dataset}-{student}", dataset=dataset, student=student,
            teacher=TeacherConfig(model=teacher, source=teacher_source, method="trades", nb_epochs=100, lr=0.1,
                                  beta=6.0),
            transfer_surrogate=surrogate, clean_teacher=clean_teacher,
            nb_epochs=300, batch_size=128, lr=0.1, momentum=0.9, weight_decay=2e-4, lr_milestones=(215, 260, 285),
            lr_schedule_epochs=300, lr_gamma=0.1, eps=8 / 255, eps_step=2 / 255, max_iter=10, seed=0,
            val_fraction=0.1, augmentation="crop-flip",
            method_lr=dict.fromkeys([*preset_lr_methods(), *overrides], 0.1), method_lr_note=PAPER_NOTE,
            method_overrides=overrides, method_overrides_note=note,
        )
    except ValueError as error:  # a recipe its method cannot take: say where the recipes come from
        raise ValueError(f"Preset {dataset}-{student}: {error} The paper presets take each method's settings from "
                         "the recipe of its entry in art_rslad/trainers/registry.py.") from error


def _presets() -> dict[str, Config]:
    presets = {
        f"{dataset}-{student}": _paper_preset(dataset, student, teacher, source, surrogate, clean)
        # Transfer surrogate: a robust ResNet-50 (CIFAR-10 only). Clean teacher: RobustBench's WRN-28-10 (CIFAR-10).
        for dataset, teacher, source, surrogate, clean in (
            ("cifar10", "wrn-34-10", "robustbench:Zhang2019Theoretically", "robustbench:Engstrom2019Robustness",
             "robustbench:Standard"),
            ("cifar100", "wrn-70-16", "robustbench:Gowal2020Uncovering", "", ""))
        for student in ("resnet18", "mobilenetv2")
    }
    presets["fashion-mnist"] = Config(
        name="fashion-mnist", dataset="fashion-mnist", student="cnn-small",
        teacher=TeacherConfig(model="cnn-large", source="zoo:fashion-mnist-cnn-large", method="trades",
                              nb_epochs=10, lr=0.05, beta=6.0),
        transfer_surrogate="zoo:fashion-mnist-cnn-pool",
        clean_teacher="zoo:fashion-mnist-cnn-large-clean",
        nb_epochs=8, batch_size=128, lr=0.05, momentum=0.9, weight_decay=2e-4, lr_milestones=(215, 260, 285),
        lr_schedule_epochs=300, lr_gamma=0.1, eps=0.1, eps_step=0.025, max_iter=10, seed=0, val_fraction=0.1,
        augmentation="none", method_lr=tuned_lrs("fashion-mnist", TUNED_VARIANTS),
        method_lr_note=tuned_note("fashion-mnist", 2, "10,000", 1000, SECOND_ROUND),
    )
    presets["digits"] = Config(
        name="digits", dataset="digits", student="cnn-small",
        teacher=TeacherConfig(model="cnn-large", source="zoo:digits-cnn-large", method="trades", nb_epochs=40,
                              lr=0.05, beta=6.0),
        clean_teacher="zoo:digits-cnn-large-clean",
        nb_epochs=30, batch_size=64, lr=0.05, momentum=0.9, weight_decay=2e-4, lr_milestones=(215, 260, 285),
        lr_schedule_epochs=300, lr_gamma=0.1, eps=0.1, eps_step=0.025, max_iter=10, seed=0, val_fraction=0.1,
        augmentation="none", method_lr=tuned_lrs("digits", TUNED_VARIANTS),
        method_lr_note=tuned_note("digits", 10, "all 1,294", 144, SECOND_ROUND),
    )
    return presets


def preset_names() -> list[str]:
    """Names accepted by :func:`get_preset`."""
    return sorted(_presets())


def get_preset(name: str) -> Config:
    """A fresh copy of the named preset (mutating it changes nothing shared).

    :param name: One of :func:`preset_names`: ``cifar10-resnet18``, ``cifar10-mobilenetv2``, ``cifar100-resnet18``,
        ``cifar100-mobilenetv2`` (the paper's recipes) or ``fashion-mnist`` (CPU-sized).
    """
    presets = _presets()
    if name not in presets:
        raise ValueError(f"Unknown preset {name!r}; known presets: {', '.join(sorted(presets))}.")
    return presets[name]


__all__ = ["METHOD_SETTING_KEYS", "PRESET_LR_FAMILIES", "TEACHER_FAMILIES", "Config", "TeacherConfig", "dumps_toml",
           "get_preset", "parse_assignment", "preset_lr_methods", "preset_names", "teacher_method_names"]
