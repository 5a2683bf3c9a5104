"""The one registry of training methods: one typed record per method (its trainer, networks, family, paper, ...).

The CLI's choices, config validation, learning-rate tuning, the paper presets' official recipes, the run harness
and ``art-rslad list`` all read :data:`METHODS`; no other list of method names exists.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field

from art.defences.trainer import Trainer

from art_rslad.trainers.absld import AdversarialTrainerABSLD
from art_rslad.trainers.adaad import AdversarialTrainerAdaAD
from art_rslad.trainers.adaiad import AdversarialTrainerAdaIAD
from art_rslad.trainers.ard import AdversarialTrainerARD
from art_rslad.trainers.art import with_shared_settings
from art_rslad.trainers.art_adversarial import ArtAWP, ArtFBF, ArtMadryPGD, ArtOAAT, ArtTRADES
from art_rslad.trainers.art_distillation import ArtDefensiveDistillation
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.ciard import AdversarialTrainerCIARD
from art_rslad.trainers.dgad import AdversarialTrainerDGAD
from art_rslad.trainers.iad import AdversarialTrainerIAD
from art_rslad.trainers.mtard import AdversarialTrainerMTARD
from art_rslad.trainers.natural import NaturalTrainer
from art_rslad.trainers.networks import Network, teacher_declared
from art_rslad.trainers.peeraid import AdversarialTrainerPeerAiD
from art_rslad.trainers.recipes import NO_RECIPE, PRESET_SCHEDULE, TWO_HUNDRED_EPOCHS, Recipe
from art_rslad.trainers.records import RecordedTrainer
from art_rslad.trainers.rslad import AdversarialTrainerRSLAD
from art_rslad.trainers.saad import AdversarialTrainerSAAD
from art_rslad.trainers.sat import AdversarialTrainerSAT
from art_rslad.trainers.terms import IGDM_CIFAR100, IGDM_RECIPE
from art_rslad.trainers.trades import AdversarialTrainerTRADES

#: Families, in the order ``art-rslad list`` shows them.
FAMILIES: tuple[str, ...] = ("natural", "adversarial training", "distillation", "peer distillation", "art")


@dataclass(frozen=True)
class Method:
    """One registered training method: what the CLI, the config and the run harness know of it.

    :param name: The registry name (the trainer's ``method``).
    :param trainer: The trainer class, called as ``trainer(classifier, **{network.name: ...}, eps=..., ...)``.
    :param family: One of :data:`FAMILIES`.
    :param paper: The paper it reproduces.
    :param networks: The networks it uses beside the student (the trainer's declaration; none for ART's trainers).
    :param distributed_ok: Whether it can run under torchrun.
    :param fixed_settings: Shared settings its trainer cannot honour, mapped to what it does instead.
    :param shared_loop: Whether it runs in the package's loop (weight averaging, TensorBoard) rather than ART's.
    :param takes_terms: Whether attachable terms (IGDM's) apply to it (its trainer's ``takes_terms``).
    :param lr: Preset name -> the learning rate chosen for it by the validation rule, for the presets whose rates
        were tuned (``fashion-mnist``, ``digits``); the paper's presets give every method its lr by a rule of their
        own (``art_rslad.experiments.config``), and methods outside its tuned families use the preset's lr.
    :param variant_lr: Variant suffix (``igdm``, ``ema``, ...) -> preset name -> lr of ``NAME+suffix``, where a
        variant was tuned on its own.
    :param recipe: Its official CIFAR recipe where it differs from the paper presets' own (RSLAD's), with the phrase
        that describes it; the paper presets train it so (``method_overrides``).
    :param variant_recipe: Variant suffix -> the official recipe of ``NAME+suffix``, applied over :attr:`recipe`
        (e.g. IGDM's, ``art_rslad.trainers.terms.IGDM_RECIPE``).
    """

    name: str
    trainer: type[Trainer]
    family: str
    paper: str
    networks: tuple[Network, ...] = ()
    distributed_ok: bool = True
    fixed_settings: Mapping[str, str] = field(default_factory=dict)
    shared_loop: bool = True
    takes_terms: bool = True
    lr: Mapping[str, float] = field(default_factory=dict)
    variant_lr: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    recipe: Recipe = NO_RECIPE
    variant_recipe: Mapping[str, Recipe] = field(default_factory=dict)

    @property
    def needs_teacher(self) -> bool:
        """Whether it always distils from a frozen teacher (IGDM's term then applies to it)."""
        return teacher_declared(self.networks)

    @property
    def loads_teacher(self) -> bool:
        """Whether a run of it needs the config's teacher (a network it always uses starts from it)."""
        return any(net.required and net.start == "teacher" for net in self.networks)

    @property
    def trained_networks(self) -> tuple[Network, ...]:
        """The networks it trains beside the student (each kept as ``<name>.pt`` in a run folder)."""
        return tuple(net for net in self.networks if net.trained)

    def takes(self, option: str) -> bool:
        """Whether its trainer's constructor has the keyword ``option`` (e.g. TRADES' ``beta``)."""
        return option in inspect.signature(self.trainer.__init__).parameters

    @property
    def takes_loss_scale(self) -> bool:
        """Whether its trainer has a loss ``scale``."""
        return self.takes("scale")


def _record(trainer: type[Trainer], family: str, paper: str, lr: Mapping[str, float] | None = None,
            variant_lr: Mapping[str, Mapping[str, float]] | None = None, recipe: Recipe = NO_RECIPE,
            variant_recipe: Mapping[str, Recipe] | None = None) -> Method:
    """The record of ``trainer``, read from its declaration, with its tuned learning rates and official recipe."""
    if family not in FAMILIES:
        raise ValueError(f"Family {family!r} of {trainer.__name__} is not one of {', '.join(FAMILIES)}.")
    if not issubclass(trainer, RecordedTrainer):
        raise ValueError(f"{trainer.__name__} does not implement the trainers' protocol: mix in RecordedTrainer "
                         "(subclass AdversarialTrainerBase, or ArtTrainerAdapter for an ART trainer).")
    shared_loop = issubclass(trainer, AdversarialTrainerBase)
    return Method(
        name=str(trainer.method), trainer=trainer, family=family, paper=paper, networks=tuple(trainer.networks),
        distributed_ok=trainer.distributed_ok,
        fixed_settings=dict(getattr(trainer, "fixed_settings", {})), shared_loop=shared_loop, lr=dict(lr or {}),
        variant_lr={suffix: dict(rates) for suffix, rates in (variant_lr or {}).items()},
        takes_terms=bool(getattr(trainer, "takes_terms", True)), recipe=recipe,
        variant_recipe=dict(variant_recipe or {}))


def _methods(*records: Method) -> dict[str, Method]:
    return {record.name: record for record in records}


def register(trainer: type[Trainer], family: str, paper: str, lr: Mapping[str, float] | None = None,
             variant_lr: Mapping[str, Mapping[str, float]] | None = None, recipe: Recipe = NO_RECIPE,
             variant_recipe: Mapping[str, Recipe] | None = None) -> Method:
    """Add a method to :data:`METHODS` (e.g. a method defined outside the package); a ValueError if its name is
    taken. Returns its record."""
    record = _record(trainer, family, paper, lr, variant_lr, recipe, variant_recipe)
    if record.name in METHODS:
        raise ValueError(f"Method {record.name!r} is registered already.")
    METHODS[record.name] = record
    return record


def unregister(name: str) -> None:
    """Remove a method added by :func:`register`."""
    METHODS.pop(name)


#: The official CIFAR recipes several methods share (each method's record names its own).
_WEIGHT_DECAY_5E4 = TWO_HUNDRED_EPOCHS.plus("weight decay 5e-4", weight_decay=5e-4)
_SWA = "the student averaged by SWA from the first lr drop"

#: Every method the CLI and the run harness know, by name, in the order ``art-rslad list`` shows them.
#: The learning rates below were chosen by ``art-rslad tune`` (art_rslad.experiments.tune.RULE) on each preset;
#: the scores are in studies/tune-<preset>/tuning.json, for the methods since RSLAD (and the variants) in
#: studies/tune-<preset>-new/tuning.json, and for the methods since 2022 in studies/tune-<preset>-2022/tuning.json.
METHODS: dict[str, Method] = _methods(
    _record(NaturalTrainer, "natural", "-"),
    _record(AdversarialTrainerSAT, "adversarial training", "Madry et al., ICLR 2018",
            lr={"fashion-mnist": 0.03, "digits": 0.03}, variant_lr={"ema": {"fashion-mnist": 0.03, "digits": 0.1}},
            recipe=PRESET_SCHEDULE),
    _record(AdversarialTrainerTRADES, "adversarial training", "Zhang et al., ICML 2019",
            lr={"fashion-mnist": 0.03, "digits": 0.03}, recipe=PRESET_SCHEDULE),
    _record(AdversarialTrainerARD, "distillation", "Goldblum et al., AAAI 2020",
            lr={"fashion-mnist": 0.3, "digits": 1.0}, variant_recipe={"igdm": IGDM_RECIPE},
            recipe=Recipe(nb_epochs=200, lr_schedule_epochs=200, lr_milestones=(100,),
                          note="200 epochs, one lr decay after 100")),
    _record(AdversarialTrainerIAD, "distillation", "Zhu et al., ICLR 2022",
            lr={"fashion-mnist": 0.03, "digits": 0.03}, recipe=TWO_HUNDRED_EPOCHS,
            variant_recipe={"igdm": IGDM_RECIPE}),
    _record(AdversarialTrainerAdaAD, "distillation", "Huang et al., CVPR 2023",
            lr={"fashion-mnist": 1.0, "digits": 1.0}, variant_recipe={"igdm": IGDM_RECIPE},
            recipe=_WEIGHT_DECAY_5E4.on("cifar100", Recipe(
                loss_scale=1.0, note="a batch-mean KL (loss scale 1, as its official CIFAR-100 code; see "
                                     "docs/decisions.md, \"Loss scales and reductions\")"))),
    _record(AdversarialTrainerRSLAD, "distillation", "Zi et al., ICCV 2021",
            lr={"fashion-mnist": 1.0, "digits": 1.0},
            variant_lr={"igdm": {"fashion-mnist": 0.3, "digits": 1.0}, "ema": {"fashion-mnist": 1.0, "digits": 1.0}},
            recipe=PRESET_SCHEDULE, variant_recipe={"igdm": PRESET_SCHEDULE.on("cifar100", IGDM_CIFAR100)}),
    _record(AdversarialTrainerAdaIAD, "distillation", "Huang et al., CVPR 2023 (AdaAD with IAD's introspection)",
            lr={"fashion-mnist": 0.03, "digits": 0.3}, variant_lr={"igdm": {"fashion-mnist": 0.03, "digits": 0.03}},
            recipe=_WEIGHT_DECAY_5E4, variant_recipe={"igdm": IGDM_RECIPE}),
    _record(AdversarialTrainerMTARD, "distillation", "Zhao et al., ECCV 2022",
            lr={"fashion-mnist": 0.3, "digits": 1.0},
            recipe=PRESET_SCHEDULE.on("cifar100", Recipe(
                loss_scale=10.0, note="loss scaled by 10 (its official CIFAR-100 code)"))),
    _record(AdversarialTrainerABSLD, "distillation", "Zhao et al., NeurIPS 2024",
            lr={"fashion-mnist": 1.0, "digits": 0.3}, recipe=PRESET_SCHEDULE),
    _record(AdversarialTrainerDGAD, "distillation", "Park and Min, ECCV 2024",
            lr={"fashion-mnist": 0.03, "digits": 0.1}, recipe=_WEIGHT_DECAY_5E4),
    _record(AdversarialTrainerCIARD, "distillation", "Lu et al., ICCV 2025",
            lr={"fashion-mnist": 0.3, "digits": 1.0},
            recipe=Recipe(lr_schedule="cosine", lr_cosine_start=150,
                          note="300 epochs, the student's lr constant for 150, then a cosine-times-Gaussian decay")),
    _record(AdversarialTrainerSAAD, "distillation", "Lee and Chung, TMLR 2026",
            lr={"fashion-mnist": 0.01, "digits": 0.03},
            # SWA from the 95th epoch (its code's 1-based `--swa_epoch 95`): after the first 94
            recipe=TWO_HUNDRED_EPOCHS.plus("the student averaged by SWA from epoch 95", weight_averaging="swa",
                                           weight_averaging_start=94)),
    _record(AdversarialTrainerPeerAiD, "peer distillation", "Jung et al., CVPR 2024",
            lr={"fashion-mnist": 0.1, "digits": 0.03}, recipe=PRESET_SCHEDULE.plus(_SWA, weight_averaging="swa")),
    # ART's own trainers, in the variants that drop (and record) the shared settings their ART class fixes
    *(_record(with_shared_settings(adapter), "art", f"ART's {adapter.art_class.__name__}")
      for adapter in (ArtMadryPGD, ArtTRADES, ArtAWP, ArtFBF, ArtOAAT, ArtDefensiveDistillation)),
)


def tuned_lrs(preset: str, variants: tuple[str, ...]) -> dict[str, float]:
    """Method spec -> the learning rate the registry records for ``preset``: the methods in registry order, then
    each of ``variants`` (suffixes, in this order) of the methods in registry order."""
    rates = {name: method.lr[preset] for name, method in METHODS.items() if preset in method.lr}
    for suffix in variants:
        rates.update({f"{name}+{suffix}": method.variant_lr[suffix][preset] for name, method in METHODS.items()
                      if preset in method.variant_lr.get(suffix, {})})
    return rates


def official_recipes() -> dict[str, Recipe]:
    """Method spec -> its official recipe, for every record that declares one: the methods in registry order, then
    each variant suffix (in the order the records first name it) of the methods in registry order."""
    recipes = {name: method.recipe for name, method in METHODS.items() if method.recipe != NO_RECIPE}
    suffixes = dict.fromkeys(suffix for method in METHODS.values() for suffix in method.variant_recipe)
    for suffix in suffixes:
        recipes.update({f"{name}+{suffix}": method.variant_recipe[suffix] for name, method in METHODS.items()
                        if suffix in method.variant_recipe})
    return recipes


def method_names(family: str | None = None) -> list[str]:
    """Registered method names, all of them or one family's, in registry order."""
    return [name for name, method in METHODS.items() if family is None or method.family == family]


def get_method(name: str) -> Method:
    """The method registered as ``name`` (case-insensitive); a ValueError lists the known names otherwise."""
    key = str(name).lower()
    if key not in METHODS:
        raise ValueError(f"Unknown method {name!r}; known methods: {', '.join(METHODS)}.")
    return METHODS[key]


__all__ = ["FAMILIES", "METHODS", "Method", "get_method", "method_names", "official_recipes", "register", "tuned_lrs",
           "unregister"]
