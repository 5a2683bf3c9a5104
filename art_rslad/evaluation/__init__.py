"""Robustness evaluation the way the RSLAD paper does it: white-box and black-box attacks in one report.

``evaluate_robustness(classifier, x, y, eps=8/255)`` runs the attacks named in :data:`ATTACKS` (default: the
paper's white-box table) and returns a :class:`RobustnessReport`, one :class:`AttackResult` per attack;
:func:`evaluate_robustness_distributed` shards it over the processes of a torchrun run. See ``docs/evaluation.md``.
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
from art_rslad.evaluation.report import AttackResult, RobustnessReport
from art_rslad.evaluation.sharded import evaluate_robustness_distributed, merge_reports

__all__ = [
    "ATTACKS",
    "BPDA_SUFFIX",
    "DEFAULT_ATTACKS",
    "DEFENCE_VIEWS",
    "PREPROCESSING_DEFENCES",
    "AttackContext",
    "AttackResult",
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
    "evaluate_robustness_distributed",
    "get_preprocessing_defence",
    "merge_reports",
    "pgd_attack",
    "pgd_step_sizes",
    "view_state_path",
]
