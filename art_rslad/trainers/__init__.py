"""ART trainers: one small declaration per method (:mod:`art_rslad.trainers.base`, one module each), run by one
training loop (:mod:`art_rslad.trainers.loop`).

ART's own trainers run through the adapters of :mod:`art_rslad.trainers.art`. The methods the CLI and the run
harness know, with their names, are listed once, in :data:`art_rslad.trainers.registry.METHODS`.
"""

from __future__ import annotations

from art_rslad.trainers.absld import AdversarialTrainerABSLD
from art_rslad.trainers.adaad import AdversarialTrainerAdaAD
from art_rslad.trainers.adaiad import AdversarialTrainerAdaIAD
from art_rslad.trainers.ard import AdversarialTrainerARD
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.batches import Batch
from art_rslad.trainers.ciard import AdversarialTrainerCIARD
from art_rslad.trainers.dgad import AdversarialTrainerDGAD
from art_rslad.trainers.iad import AdversarialTrainerIAD
from art_rslad.trainers.mtard import AdversarialTrainerMTARD
from art_rslad.trainers.natural import NaturalTrainer
from art_rslad.trainers.networks import TEACHER, Network
from art_rslad.trainers.peeraid import AdversarialTrainerPeerAiD
from art_rslad.trainers.rslad import AdversarialTrainerRSLAD
from art_rslad.trainers.saad import AdversarialTrainerSAAD
from art_rslad.trainers.sat import AdversarialTrainerSAT
from art_rslad.trainers.trades import AdversarialTrainerTRADES

__all__ = ["TEACHER", "AdversarialTrainerABSLD", "AdversarialTrainerARD", "AdversarialTrainerAdaAD",
           "AdversarialTrainerAdaIAD", "AdversarialTrainerBase", "AdversarialTrainerCIARD", "AdversarialTrainerDGAD",
           "AdversarialTrainerIAD", "AdversarialTrainerMTARD", "AdversarialTrainerPeerAiD", "AdversarialTrainerRSLAD",
           "AdversarialTrainerSAAD", "AdversarialTrainerSAT", "AdversarialTrainerTRADES", "Batch", "NaturalTrainer",
           "Network"]
