"""Evaluation sharded over the processes of a torchrun run, and the merging of the shards' reports.

Every rank passes the same inputs; rank ``r`` evaluates its contiguous block (no padding, as
:meth:`~art_rslad.distributed.World.eval_slice`), and the per-input results of all ranks are gathered into one
report in input order. See ``docs/distributed.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from art.estimators.classification import PyTorchClassifier

from art_rslad.distributed import check_agreement, current_world, state_checksum
from art_rslad.evaluation.checks import consistency_warnings
from art_rslad.evaluation.evaluate import evaluate_robustness
from art_rslad.evaluation.report import AttackResult, RobustnessReport


def _merge_results(results: Sequence[AttackResult]) -> AttackResult:
    """One attack's results on consecutive shards: flags concatenated, the slowest shard's seconds, the largest
    perturbation, the first shard's settings and the union of the messages."""
    first = results[0]
    return dataclasses.replace(
        first,
        correct=np.concatenate([result.correct for result in results]),
        seconds=max(result.seconds for result in results),
        max_perturbation=max(result.max_perturbation for result in results),
        settings=dict(first.settings),
        messages=list(dict.fromkeys(message for result in results for message in result.messages)),
    )


def merge_reports(reports: Sequence[RobustnessReport]) -> RobustnessReport:
    """One report from the reports of consecutive shards of the inputs (in order).

    Per-input results and labels are concatenated (the labels are known when every shard knows its own);
    ``seconds`` is the slowest shard's (the wall-clock time of the run) and ``max_perturbation`` the largest;
    settings and the integrity checks' values are the first shard's; messages and warnings are the union. The
    fingerprint hashes the shards' fingerprints.
    """
    first = reports[0]
    names = first.attacks
    if any(report.attacks != names or report.eps != first.eps for report in reports):
        raise ValueError("`reports` must come from the same evaluation (same attacks and eps) on different shards.")
    labels = [report.labels for report in reports if report.labels is not None]
    merged = RobustnessReport(
        eps=first.eps,
        n_inputs=sum(report.n_inputs for report in reports),
        labels=np.concatenate(labels) if len(labels) == len(reports) else None,
        checks=dict(first.checks),
        fingerprint=hashlib.sha256("".join(report.fingerprint for report in reports).encode()).hexdigest(),
    )
    for name in names:
        merged.add(_merge_results([report.results[name] for report in reports]))
    per_shard = [warning for report in reports for warning in report.warnings]
    merged.warnings = list(dict.fromkeys([*per_shard, *consistency_warnings(merged.accuracy, merged.kinds)]))
    return merged


def evaluate_robustness_distributed(
    classifier: Any, x: np.ndarray, y: np.ndarray, *, state_path: str | os.PathLike[str] | None = None,
    verbose: bool = True, **kwargs: Any,
) -> RobustnessReport:
    """:func:`~art_rslad.evaluation.evaluate_robustness` with the inputs sharded over the ranks of this run.

    Every rank passes the same ``x`` and ``y``; rank ``r`` attacks its contiguous block (no padding), and the
    per-input results of all ranks are gathered and merged (:func:`merge_reports`) into the report every rank
    returns, in the order of ``x``. So AutoAttack on a full test set takes about 1/N of the time on N GPUs. In a
    one-process run this is ``evaluate_robustness`` itself. Attacks with random starts draw them per shard, so their
    per-input results can differ from a one-process run's (as they do with another batch size).

    :param classifier: As in ``evaluate_robustness``, on this rank's device.
    :param x: All inputs (the same on every rank).
    :param y: All labels.
    :param state_path: Resume file; each rank keeps its own, named ``<stem>.rank<r>of<N><suffix>``.
    :param verbose: Progress bars (rank 0 only).
    :param kwargs: ``eps``, ``attacks``, ``batch_size``, ``surrogate``, ``n_queries``, ``seed``, as in
        ``evaluate_robustness``.
    """
    world = current_world(getattr(classifier, "device", None))
    if not world.is_distributed:
        return evaluate_robustness(classifier, x, y, state_path=state_path, verbose=verbose, **kwargs)
    world.check_fits(len(x), "x")
    if len(y) != len(x):
        raise ValueError(f"`x` has {len(x)} inputs but `y` has {len(y)} labels.")
    models = {"classifier": classifier, "surrogate": kwargs.get("surrogate")}
    check_agreement(world, {
        "inputs": len(x), "settings": {k: v for k, v in kwargs.items() if k != "surrogate"},
        **{f"{name}_weights_sha256": state_checksum(model.model) for name, model in models.items()
           if isinstance(model, PyTorchClassifier)},
    })
    if state_path is not None:
        path = Path(state_path)
        state_path = path.with_name(f"{path.stem}.rank{world.rank}of{world.size}{path.suffix}")
    rows = world.eval_slice(len(x))
    report = evaluate_robustness(classifier, x[rows], y[rows], state_path=state_path,
                                 verbose=verbose and world.is_main, **kwargs)
    return merge_reports(world.all_gather(report))
