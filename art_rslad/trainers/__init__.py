"""ART trainers built on one shared epoch loop (:mod:`art_rslad.trainers.base`), one small module per method."""

from __future__ import annotations

from art_rslad.trainers.base import AdversarialTrainerBase, Batch
from art_rslad.trainers.rslad import AdversarialTrainerRSLAD
from art_rslad.trainers.sat import AdversarialTrainerSAT
from art_rslad.trainers.trades import AdversarialTrainerTRADES

__all__ = ["AdversarialTrainerBase", "AdversarialTrainerRSLAD", "AdversarialTrainerSAT", "AdversarialTrainerTRADES",
           "Batch"]
