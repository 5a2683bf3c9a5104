"""ART trainers built on one shared epoch loop (:mod:`art_rslad.trainers.base`), one small module per method."""

from __future__ import annotations

from art_rslad.trainers.base import AdversarialTrainerBase, Batch
from art_rslad.trainers.rslad import AdversarialTrainerRSLAD

__all__ = ["AdversarialTrainerBase", "AdversarialTrainerRSLAD", "Batch"]
