"""art-rslad: robust soft label adversarial distillation (RSLAD) and its baselines as ART trainers.

Public names: :class:`AdversarialTrainerRSLAD` and the other trainers in :mod:`art_rslad.trainers`,
:func:`evaluate_robustness`, :mod:`art_rslad.losses`, :func:`art_rslad.data.load_dataset`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it; imported on first use so that `import art_rslad` stays cheap.
_EXPORTS = {
    "AdversarialTrainerRSLAD": "art_rslad.trainers",
    "AdversarialTrainerSAT": "art_rslad.trainers",
    "AdversarialTrainerTRADES": "art_rslad.trainers",
    "AdversarialTrainerARD": "art_rslad.trainers",
    "AdversarialTrainerIAD": "art_rslad.trainers",
    "AdversarialTrainerAdaAD": "art_rslad.trainers",
    "AdversarialTrainerAdaIAD": "art_rslad.trainers",
    "AdversarialTrainerPeerAiD": "art_rslad.trainers",
    "AdversarialTrainerMTARD": "art_rslad.trainers",
    "AdversarialTrainerABSLD": "art_rslad.trainers",
    "AdversarialTrainerDGAD": "art_rslad.trainers",
    "AdversarialTrainerCIARD": "art_rslad.trainers",
    "AdversarialTrainerSAAD": "art_rslad.trainers",
    "NaturalTrainer": "art_rslad.trainers",
    "evaluate_robustness": "art_rslad.evaluation", "RobustnessReport": "art_rslad.evaluation",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'art_rslad' has no attribute {name!r}")
