"""Robustness evaluation the way the RSLAD paper does it: white-box and black-box attacks in one report.

``evaluate_robustness(classifier, x, y, eps=8/255)`` runs the attacks named in :data:`ATTACKS` (default: the
paper's white-box table) and returns a :class:`RobustnessReport`, one :class:`AttackResult` per attack;
:func:`evaluate_robustness_distributed` shards it over the processes of a torchrun run. See ``docs/evaluation.md``.
"""

from __future__ import annotations

from art_rslad.evaluation.checks import check_model, consistency_warnings
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
    "DEFAULT_ATTACKS",
    "AttackContext",
    "AttackResult",
    "AttackSpec",
    "CWMarginLoss",
    "PreparedAttack",
    "RobustnessReport",
    "check_model",
    "consistency_warnings",
    "evaluate_robustness",
    "evaluate_robustness_distributed",
    "merge_reports",
    "pgd_attack",
    "pgd_step_sizes",
]
