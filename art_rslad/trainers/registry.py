"""The one registry of training methods: name -> trainer class, whether it needs a teacher, its family, its paper.

The CLI's choices, config validation, learning-rate tuning, the run harness and ``art-rslad list`` all read
:data:`METHODS`; no other list of method names exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from art.defences.trainer import Trainer

from art_rslad.trainers.adaad import AdversarialTrainerAdaAD
from art_rslad.trainers.adaiad import AdversarialTrainerAdaIAD
from art_rslad.trainers.ard import AdversarialTrainerARD
from art_rslad.trainers.art import with_shared_settings
from art_rslad.trainers.art_adversarial import ArtAWP, ArtFBF, ArtMadryPGD, ArtOAAT, ArtTRADES
from art_rslad.trainers.art_distillation import ArtDefensiveDistillation
from art_rslad.trainers.iad import AdversarialTrainerIAD
from art_rslad.trainers.natural import NaturalTrainer
from art_rslad.trainers.peeraid import AdversarialTrainerPeerAiD
from art_rslad.trainers.rslad import AdversarialTrainerRSLAD
from art_rslad.trainers.sat import AdversarialTrainerSAT
from art_rslad.trainers.trades import AdversarialTrainerTRADES

#: Families, in the order ``art-rslad list`` shows them.
FAMILIES: tuple[str, ...] = ("natural", "adversarial training", "distillation", "peer distillation", "art")


@dataclass(frozen=True)
class Method:
    """One registered training method."""

    name: str
    trainer: type[Trainer]
    family: str
    paper: str

    @property
    def needs_teacher(self) -> bool:
        return bool(getattr(self.trainer, "needs_teacher", False))

    @property
    def needs_peer(self) -> bool:
        """True for a method trained with a peer network (passed as ``peer``) instead of a teacher."""
        return bool(getattr(self.trainer, "needs_peer", False))


def _methods(*entries: tuple[type[Trainer], str, str]) -> dict[str, Method]:
    methods = {}
    for trainer, family, paper in entries:
        name = str(trainer.method)  # type: ignore[attr-defined]
        methods[name] = Method(name, trainer, family, paper)
    return methods


#: Every method the CLI and the run harness know, by name, in the order ``art-rslad list`` shows them.
METHODS: dict[str, Method] = _methods(
    (NaturalTrainer, "natural", "-"),
    (AdversarialTrainerSAT, "adversarial training", "Madry et al., ICLR 2018"),
    (AdversarialTrainerTRADES, "adversarial training", "Zhang et al., ICML 2019"),
    (AdversarialTrainerARD, "distillation", "Goldblum et al., AAAI 2020"),
    (AdversarialTrainerIAD, "distillation", "Zhu et al., ICLR 2022"),
    (AdversarialTrainerAdaAD, "distillation", "Huang et al., CVPR 2023"),
    (AdversarialTrainerRSLAD, "distillation", "Zi et al., ICCV 2021"),
    (AdversarialTrainerAdaIAD, "distillation", "Huang et al., CVPR 2023 (AdaAD with IAD's introspection)"),
    (AdversarialTrainerPeerAiD, "peer distillation", "Jung et al., CVPR 2024"),
    # ART's own trainers, in the variants that drop (and record) the shared settings their ART class fixes
    *((with_shared_settings(adapter), "art", f"ART's {adapter.art_class.__name__}")
      for adapter in (ArtMadryPGD, ArtTRADES, ArtAWP, ArtFBF, ArtOAAT, ArtDefensiveDistillation)),
)


def method_names(family: str | None = None) -> list[str]:
    """Registered method names, all of them or one family's, in registry order."""
    return [name for name, method in METHODS.items() if family is None or method.family == family]


def get_method(name: str) -> Method:
    """The method registered as ``name`` (case-insensitive); a ValueError lists the known names otherwise."""
    key = str(name).lower()
    if key not in METHODS:
        raise ValueError(f"Unknown method {name!r}; known methods: {', '.join(METHODS)}.")
    return METHODS[key]


__all__ = ["FAMILIES", "METHODS", "Method", "get_method", "method_names"]
