"""ART trainers built on one shared epoch loop (:mod:`art_rslad.trainers.base`), one small module per method.

:data:`TRAINERS` maps each method's name (as the CLI spells it) to its trainer class.
"""

from __future__ import annotations

from art_rslad.trainers.adaad import AdversarialTrainerAdaAD
from art_rslad.trainers.ard import AdversarialTrainerARD
from art_rslad.trainers.base import AdversarialTrainerBase, Batch
from art_rslad.trainers.iad import AdversarialTrainerIAD
from art_rslad.trainers.natural import NaturalTrainer
from art_rslad.trainers.rslad import AdversarialTrainerRSLAD
from art_rslad.trainers.sat import AdversarialTrainerSAT
from art_rslad.trainers.trades import AdversarialTrainerTRADES

TRAINERS: dict[str, type[AdversarialTrainerBase]] = {
    trainer.method: trainer
    for trainer in (NaturalTrainer, AdversarialTrainerSAT, AdversarialTrainerTRADES, AdversarialTrainerARD,
                    AdversarialTrainerIAD, AdversarialTrainerAdaAD, AdversarialTrainerRSLAD)
}

__all__ = ["TRAINERS", "AdversarialTrainerARD", "AdversarialTrainerAdaAD", "AdversarialTrainerBase",
           "AdversarialTrainerIAD", "AdversarialTrainerRSLAD", "AdversarialTrainerSAT", "AdversarialTrainerTRADES",
           "Batch", "NaturalTrainer"]

# ART's own trainers (art-madry-pgd, art-trades, art-awp, art-fbf, art-oaat, art-defensive-distillation), run through
# their ART classes by the adapters of art_rslad.art_defences.
from art_rslad.art_defences import SHARED_SETTINGS_TRAINERS  # noqa: E402

TRAINERS.update(SHARED_SETTINGS_TRAINERS)  # type: ignore[arg-type]
