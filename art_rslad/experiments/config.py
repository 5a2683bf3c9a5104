"""Typed run configuration that round-trips to TOML and JSON, with a named preset per paper setting.

``get_preset("cifar10-resnet18")`` is the RSLAD paper's CIFAR-10 recipe; ``get_preset("fashion-mnist")`` the
CPU-sized one. ``Config.from_file(path)`` reads ``.toml`` or ``.json``; ``config.save(path)`` writes either.
Unknown keys and wrongly typed values raise a ValueError that names the key; ``config.with_overrides(["lr=0.1",
"teacher.nb_epochs=3"])`` is a copy with ``key=value`` overrides applied (what ``--set`` does on the command line).

A preset carries, per method, the learning rate chosen once by the validation rule (:attr:`Config.method_lr`), and
:attr:`Config.method_lr_note` says how those values were chosen (see docs/decisions.md, "Learning rate per method").
Method names come from the one registry of methods, :mod:`art_rslad.trainers.registry`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from art_rslad.trainers.registry import METHODS, method_names

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the optional backport, else TOML files cannot be read
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

#: The registry's family whose methods can train a teacher (``teacher.method``).
TEACHER_FAMILY = "adversarial training"
#: The registry's families whose methods a preset gives a learning rate of their own (``method_lr``).
PRESET_LR_FAMILIES: tuple[str, ...] = ("adversarial training", "distillation")


def preset_lr_methods() -> list[str]:
    """The methods a preset's ``method_lr`` covers: the registry's adversarial training and distillation methods."""
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
    :param method: Adversarial training method of a trained teacher (the registry's "adversarial training"
        family: ``"trades"`` or ``"sat"``).
    :param nb_epochs: Epochs of teacher training.
    :param lr: SGD learning rate of teacher training.
    :param beta: TRADES' robustness weight.
    """

    model: str = "cnn-large"
    source: str = ""
    method: str = "trades"
    nb_epochs: int = 10
    lr: float = 0.05
    beta: float = 6.0


@dataclass
class Config:
    """Everything a training run needs besides the data and the method.

    :param name: Preset or run name.
    :param dataset: Dataset name (see :func:`art_rslad.data.dataset_names`).
    :param student: Registry name of the student architecture.
    :param teacher: The teacher (:class:`TeacherConfig`).
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
    :param eps: L-inf budget of the training attack, on the [0, 1] scale.
    :param eps_step: Step size of the training attack.
    :param max_iter: Steps of the training attack.
    :param seed: Seed of initialisation, batch order, attacks and the validation split.
    :param val_fraction: Fraction of the training set held out for validation.
    :param augmentation: ``"none"``, ``"crop"`` or ``"crop-flip"`` (see :mod:`art_rslad.data`).
    :param method_lr: Method name -> learning rate chosen by the validation rule.
    :param method_lr_note: How the ``method_lr`` values were chosen (the command, or that they are untuned).
    """

    name: str = "custom"
    dataset: str = "fashion-mnist"
    student: str = "cnn-small"
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    transfer_surrogate: str = ""
    nb_epochs: int = 8
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 2e-4
    lr_milestones: tuple[int, ...] = (215, 260, 285)
    lr_schedule_epochs: int = 300
    lr_gamma: float = 0.1
    eps: float = 0.1
    eps_step: float = 0.025
    max_iter: int = 10
    seed: int = 0
    val_fraction: float = 0.1
    augmentation: str = "none"
    method_lr: dict[str, float] = field(default_factory=dict)
    method_lr_note: str = ""

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
                           "teacher.beta": self.teacher.beta}.items():
            if not value >= 0 or math.isinf(value):
                raise ValueError(f"Config key `{key}` must be a finite number >= 0, got {value}.")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"Config key `val_fraction` must be in (0, 1), got {self.val_fraction}.")
        if self.augmentation not in ("none", "crop", "crop-flip"):
            raise ValueError(f"Config key `augmentation` must be 'none', 'crop' or 'crop-flip', got "
                             f"{self.augmentation!r}.")
        teacher_methods = method_names(TEACHER_FAMILY)
        if self.teacher.method not in teacher_methods:
            raise ValueError(f"Config key `teacher.method` must be one of {', '.join(map(repr, teacher_methods))}, "
                             f"got {self.teacher.method!r}.")
        for method, lr in self.method_lr.items():  # every registered method, ART's trainers included
            if method not in METHODS:
                raise ValueError(f"Config key `method_lr.{method}`: unknown method; known: {', '.join(METHODS)}.")
            if not lr > 0:
                raise ValueError(f"Config key `method_lr.{method}` must be > 0, got {lr}.")

    # ------------------------------------------------------------------ derived values
    def lr_for(self, method: str) -> float:
        """The learning rate of ``method``: its ``method_lr`` entry, else :attr:`lr`."""
        return self.method_lr.get(method.lower(), self.lr)

    def milestones_for(self, nb_epochs: int | None = None) -> list[int]:
        """The lr milestones scaled from ``lr_schedule_epochs`` to ``nb_epochs`` (default :attr:`nb_epochs`).

        Milestones that would fall on or after the last epoch are dropped.
        """
        epochs = self.nb_epochs if nb_epochs is None else nb_epochs
        scaled = {round(milestone * epochs / self.lr_schedule_epochs) for milestone in self.lr_milestones}
        return sorted(milestone for milestone in scaled if 0 < milestone < epochs)

    def with_overrides(self, overrides: Sequence[str]) -> Config:
        """A copy with ``key=value`` overrides applied (dotted keys reach nested tables).

        Values are read by :func:`parse_assignment` and checked by :meth:`from_dict`, so a wrong key or type raises
        a ValueError naming it. Examples: ``nb_epochs=2``, ``method_lr.rslad=0.1``,
        ``teacher.source=zoo:fashion-mnist-cnn-large``, ``lr_milestones=[100,150]``.
        """
        data = self.to_dict()
        for override in overrides:
            key, value = parse_assignment(override)
            *parents, leaf = key.split(".")
            table = data
            for parent in parents:
                if not isinstance(table.get(parent), dict):
                    raise ValueError(f"Override {override!r}: `{parent}` is not a table of the config.")
                table = table[parent]
            table[leaf] = value
        return Config.from_dict(data)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists), the inverse of :meth:`from_dict`."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build a Config from a dict; unknown keys and wrong types raise a ValueError naming the key."""
        return _build(cls, data, "")

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
            data = _loads_toml(text) if suffix == ".toml" else json.loads(text)
        except ValueError as error:  # TOMLDecodeError and JSONDecodeError are ValueErrors
            raise ValueError(f"{source} is not valid {suffix[1:].upper()}: {error}") from error
        if not isinstance(data, dict):
            raise ValueError(f"{source} must hold a table of config keys, got {type(data).__name__}.")
        return cls.from_dict(data)


def _loads_toml(text: str) -> dict[str, Any]:
    if tomllib is None:
        raise ValueError("Reading TOML on Python 3.10 needs `pip install tomli`; or use a .json config.")
    return tomllib.loads(text)


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ValueError(f"Config file {str(path)!r} must end in .toml or .json.")
    return suffix


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"Config key `{prefix.rstrip('.')}` must be a table, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    known = [item.name for item in dataclasses.fields(cls)]
    values = {}
    for key, value in data.items():
        if key not in known:
            raise ValueError(f"Unknown config key `{prefix}{key}`; known keys: {', '.join(known)}.")
        values[key] = _coerce(f"{prefix}{key}", value, hints[key])
    return cls(**values)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against ``annotation`` (str, int, float, tuple[int, ...], dict[str, float], a dataclass)."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, f"{key}.")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"Config key `{key}` must be a list, got {type(value).__name__} {value!r}.")
        item_type = typing.get_args(annotation)[0]
        return tuple(_coerce(f"{key}[{index}]", item, item_type) for index, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"Config key `{key}` must be a table, got {type(value).__name__} {value!r}.")
        value_type = typing.get_args(annotation)[1]
        return {str(name): _coerce(f"{key}.{name}", item, value_type) for name, item in value.items()}
    valid = isinstance(value, annotation) and not isinstance(value, bool)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool:
        valid = isinstance(value, bool)
    if not valid:
        raise ValueError(f"Config key `{key}` must be {annotation.__name__}, got {type(value).__name__} {value!r}.")
    return value


# ---------------------------------------------------------------------- a small TOML writer
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise ValueError(f"Cannot write a {type(value).__name__} as a TOML value.")


def dumps_toml(data: dict[str, Any]) -> str:
    """Write a dict of scalars, lists of scalars and nested dicts (tables) as TOML."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []

    def emit(table: dict[str, Any], path: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                tables.append((f"{path}{_toml_key(key)}", value))
            else:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")

    emit(data, "")
    while tables:
        path, table = tables.pop(0)
        lines.extend(["", f"[{path}]"])
        emit(table, f"{path}.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- presets
_PAPER_NOTE = ("The paper's lr 0.1 for every method with each method's official loss scale (not tuned here; "
               "under this 300-epoch recipe the official code uses one lr for all).")
#: Chosen by `art-rslad tune` (art_rslad.experiments.tune.RULE); the scores are in studies/tune-<preset>/tuning.json.
_FASHION_MNIST_LR = {"sat": 0.03, "trades": 0.03, "ard": 0.3, "iad": 0.03, "adaad": 1.0, "rslad": 1.0}
_DIGITS_LR = {"sat": 0.03, "trades": 0.03, "ard": 1.0, "iad": 0.03, "adaad": 1.0, "rslad": 1.0}


def _tuned_note(preset: str, nb_epochs: int, train: str, val_size: int) -> str:
    return (
        "Chosen by the validation rule: for each method the lr in {0.01, 0.03, 0.1, 0.3, 1} "
        f"whose {nb_epochs}-epoch run on {train} training images had the highest PGD-10 accuracy on {val_size:,} "
        f"validation images; command: art-rslad tune --preset {preset} --methods sat trades ard iad adaad rslad "
        f"--epochs {nb_epochs} --train-size 10000 --val-size {val_size} --out studies/tune-{preset}. RSLAD and "
        "AdaAD keep the official loss scale 0.1, so their lr 1 is a batch-mean KL at lr 0.1."
    )


def _paper_preset(dataset: str, student: str, teacher: str, teacher_source: str, surrogate: str) -> Config:
    return Config(
        name=f"{dataset}-{student}", dataset=dataset, student=student,
        teacher=TeacherConfig(model=teacher, source=teacher_source, method="trades", nb_epochs=100, lr=0.1,
                              beta=6.0),
        transfer_surrogate=surrogate,
        nb_epochs=300, batch_size=128, lr=0.1, momentum=0.9, weight_decay=2e-4, lr_milestones=(215, 260, 285),
        lr_schedule_epochs=300, lr_gamma=0.1, eps=8 / 255, eps_step=2 / 255, max_iter=10, seed=0,
        val_fraction=0.1, augmentation="crop-flip", method_lr=dict.fromkeys(preset_lr_methods(), 0.1),
        method_lr_note=_PAPER_NOTE,
    )


def _presets() -> dict[str, Config]:
    presets = {
        f"{dataset}-{student}": _paper_preset(dataset, student, teacher, source, surrogate)
        # The paper's transfer surrogate is a robust ResNet-50; RobustBench has one for CIFAR-10 only.
        for dataset, teacher, source, surrogate in (
            ("cifar10", "wrn-34-10", "robustbench:Zhang2019Theoretically", "robustbench:Engstrom2019Robustness"),
            ("cifar100", "wrn-70-16", "robustbench:Gowal2020Uncovering", ""))
        for student in ("resnet18", "mobilenetv2")
    }
    presets["fashion-mnist"] = Config(
        name="fashion-mnist", dataset="fashion-mnist", student="cnn-small",
        teacher=TeacherConfig(model="cnn-large", source="zoo:fashion-mnist-cnn-large", method="trades",
                              nb_epochs=10, lr=0.05, beta=6.0),
        transfer_surrogate="zoo:fashion-mnist-cnn-pool",
        nb_epochs=8, batch_size=128, lr=0.05, momentum=0.9, weight_decay=2e-4, lr_milestones=(215, 260, 285),
        lr_schedule_epochs=300, lr_gamma=0.1, eps=0.1, eps_step=0.025, max_iter=10, seed=0, val_fraction=0.1,
        augmentation="none", method_lr=dict(_FASHION_MNIST_LR),
        method_lr_note=_tuned_note("fashion-mnist", 2, "10,000", 1000),
    )
    presets["digits"] = Config(
        name="digits", dataset="digits", student="cnn-small",
        teacher=TeacherConfig(model="cnn-large", source="zoo:digits-cnn-large", method="trades", nb_epochs=40,
                              lr=0.05, beta=6.0),
        nb_epochs=30, batch_size=64, lr=0.05, momentum=0.9, weight_decay=2e-4, lr_milestones=(215, 260, 285),
        lr_schedule_epochs=300, lr_gamma=0.1, eps=0.1, eps_step=0.025, max_iter=10, seed=0, val_fraction=0.1,
        augmentation="none", method_lr=dict(_DIGITS_LR), method_lr_note=_tuned_note("digits", 10, "all 1,294", 144),
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


__all__ = ["PRESET_LR_FAMILIES", "TEACHER_FAMILY", "Config", "TeacherConfig", "dumps_toml", "get_preset",
           "parse_assignment", "preset_lr_methods", "preset_names"]
