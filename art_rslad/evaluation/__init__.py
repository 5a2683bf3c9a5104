"""Robustness evaluation the way the RSLAD paper does it: white-box and black-box attacks in one report.

``evaluate_robustness(classifier, x, y, eps=8/255)`` runs the attacks named in :data:`ATTACKS` (default: the
paper's white-box table) and returns a :class:`RobustnessReport`. See ``docs/evaluation.md``.
:func:`evaluate_preprocessing_defence` does the same for a student behind an ART preprocessing defence, through the
defence's exact gradient and through BPDA (:mod:`art_rslad.evaluation.defences`).
"""

from __future__ import annotations

from art_rslad.evaluation.checks import check_model, consistency_warnings
from art_rslad.evaluation.defences import (
    BPDA_SUFFIX,
    DEFENCE_VIEWS,
    PREPROCESSING_DEFENCES,
    DefenceSpec,
    DefendedModel,
    defended_classifier,
    evaluate_preprocessing_defence,
    get_preprocessing_defence,
    view_state_path,
)
from art_rslad.evaluation.evaluate import evaluate_robustness
from art_rslad.evaluation.registry import (
    ATTACKS,
    DEFAULT_ATTACKS,
    AttackContext,
    AttackSpec,
    CWMarginLoss,
    PreparedAttack,
    pgd_attack,
    pgd_step_sizes,
)
from art_rslad.evaluation.report import RobustnessReport

__all__ = [
    "ATTACKS",
    "BPDA_SUFFIX",
    "DEFAULT_ATTACKS",
    "DEFENCE_VIEWS",
    "PREPROCESSING_DEFENCES",
    "AttackContext",
    "AttackSpec",
    "CWMarginLoss",
    "DefenceSpec",
    "DefendedModel",
    "PreparedAttack",
    "RobustnessReport",
    "check_model",
    "consistency_warnings",
    "defended_classifier",
    "evaluate_preprocessing_defence",
    "evaluate_robustness",
    "get_preprocessing_defence",
    "pgd_attack",
    "pgd_step_sizes",
    "view_state_path",
]
