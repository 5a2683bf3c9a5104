""":func:`evaluate_robustness`: run the paper's attacks on one classifier and report each and their worst case."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from art.estimators.classification.classifier import ClassifierMixin
from tqdm.auto import tqdm

from art_rslad.estimators import check_classifier, clip_range, model_modes
from art_rslad.evaluation.checks import check_model, consistency_warnings
from art_rslad.evaluation.registry import ATTACKS, DEFAULT_ATTACKS, AttackContext, PreparedAttack
from art_rslad.evaluation.report import AttackResult, RobustnessReport, stored_report
from art_rslad.progress import show_progress

logger = logging.getLogger(__name__)

#: Slack for float32 round-off when checking x against clip_values and x' against the eps ball.
_BOUND_TOLERANCE = 1e-5


def _attack_names(attacks: Iterable[str] | str, surrogate: object) -> tuple[str, ...]:
    names = tuple(dict.fromkeys([attacks] if isinstance(attacks, str) else attacks))
    unknown = [name for name in names if name not in ATTACKS]
    if unknown or not names:
        raise ValueError(f"`attacks`: unknown or no attack names {unknown}; known attacks: {', '.join(ATTACKS)}.")
    transfer = [name for name in names if ATTACKS[name].kind == "transfer"]
    if transfer and surrogate is None:
        raise ValueError(f"`surrogate` is needed by the transfer attacks {transfer}: pass a PyTorchClassifier to "
                         "craft them on (the paper uses a robust model of another architecture), or drop them.")
    return names


def _has_gradients(classifier: object) -> bool:
    return isinstance(classifier, PyTorchClassifier) and classifier.all_framework_preprocessing


def _check_classifiers(classifier: Any, surrogate: Any, names: tuple[str, ...]) -> None:
    if not isinstance(classifier, ClassifierMixin) or getattr(classifier, "clip_values", None) is None:
        raise ValueError(f"`classifier` must be an ART classifier with clip_values (e.g. PyTorchClassifier(..., "
                         f"clip_values=(0, 1))), got {type(classifier).__name__}.")
    white_box = [name for name in names if ATTACKS[name].kind == "white-box"]
    if white_box and not _has_gradients(classifier):
        others = [name for name, spec in ATTACKS.items() if spec.kind != "white-box"]
        raise ValueError(
            f"`classifier` ({type(classifier).__name__}) has no torch loss gradients, which the white-box attacks "
            f"{white_box} need: pass a PyTorchClassifier whose preprocessing is torch-native, or choose from "
            f"{others}."
        )
    if surrogate is not None:
        check_classifier(surrogate, "surrogate")
        if not _has_gradients(surrogate):
            raise ValueError("`surrogate` needs torch loss gradients: its preprocessing must be torch-native.")
        if surrogate.nb_classes != classifier.nb_classes or clip_range(surrogate) != clip_range(classifier):
            raise ValueError(
                f"`surrogate` must have the classifier's classes and clip_values: {surrogate.nb_classes} classes "
                f"in {clip_range(surrogate)} against {classifier.nb_classes} in {clip_range(classifier)}."
            )


def _check_data(classifier: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (x as float32, labels as int64 indices) or raise ValueError."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0 or tuple(x.shape[1:]) != tuple(classifier.input_shape):
        raise ValueError(f"`x` must be a non-empty array of shape (N, *{tuple(classifier.input_shape)}), "
                         f"got {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"`x` holds {int((~np.isfinite(x)).sum())} NaN or infinite values; evaluate finite inputs "
                         "only (an attack on NaN measures nothing).")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == classifier.nb_classes:
        labels = y.argmax(axis=1)
    elif y.ndim == 1 and np.all(np.mod(y, 1) == 0):
        labels = y.astype(np.int64)
    else:
        raise ValueError(f"`y` must hold class indices (N,) or one-hot rows (N, {classifier.nb_classes}), "
                         f"got shape {y.shape}.")
    if len(labels) != len(x):
        raise ValueError(f"`x` and `y` do not match: {len(x)} inputs but {len(labels)} labels.")
    if labels.min() < 0 or labels.max() >= classifier.nb_classes:
        raise ValueError(f"`y` has labels outside [0, {classifier.nb_classes}).")
    low, high = classifier.clip_values
    if np.any(x < np.asarray(low) - _BOUND_TOLERANCE) or np.any(x > np.asarray(high) + _BOUND_TOLERANCE):
        raise ValueError(f"`x` lies outside the classifier's clip_values {classifier.clip_values} (its range is "
                         f"[{x.min():g}, {x.max():g}]); scale x to that range, e.g. divide 0-255 images by 255.")
    return x, labels


def _check_outputs(classifier: Any, x: np.ndarray) -> None:
    """The classifier's model must output one score per class its ``nb_classes`` announces."""
    outputs = np.asarray(classifier.predict(x[:1], batch_size=1))
    if outputs.ndim != 2 or outputs.shape[1] != classifier.nb_classes:
        raise ValueError(f"`classifier` announces nb_classes={classifier.nb_classes} but its model outputs shape "
                         f"{tuple(outputs.shape)} for one input; build the PyTorchClassifier with the model's number "
                         "of classes.")


def _check_state_path(path: Path | None) -> None:
    """Fail before the first attack, not after it, when the state file cannot be written."""
    if path is None:
        return
    if path.is_dir():
        raise ValueError(f"`state_path` {path} is a folder; give a file name such as {path / 'eval.json'}.")
    probe = path.with_name(f".{path.name}.write-test-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"`state_path` {path} cannot be written ({error.strerror or error}); choose a writable "
                         "folder.") from error


def _fingerprint(x: np.ndarray, labels: np.ndarray, settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(x.tobytes())
    digest.update(labels.tobytes())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def _restore(state_path: Path | None, fresh: RobustnessReport,
             names: tuple[str, ...]) -> tuple[RobustnessReport, bool]:
    """``fresh`` with the results of ``names`` found in a matching state file copied in, and False; or the saved
    report and True when it holds exactly ``names`` (nothing is left to run, and nothing is to be written). The
    state is the JSON at ``state_path`` or, once the evaluation was stored as finished, its compact form (see
    :func:`~art_rslad.evaluation.report.stored_report`)."""
    source = None if state_path is None else stored_report(state_path)
    if source is None:
        return fresh, False
    try:
        saved = RobustnessReport.load(source)
    except (ValueError, KeyError, TypeError, OSError) as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"`state_path` {state_path} is not a readable evaluation state (corrupt or truncated: "
                         f"{error}); delete it to start the evaluation afresh, or choose another state_path."
                         ) from error
    if saved.fingerprint != fresh.fingerprint:
        raise ValueError(f"`state_path` {state_path} holds an evaluation of other inputs or settings; delete it "
                         "or choose another state_path.")
    if saved.attacks == list(names):
        logger.info("The evaluation in %s is finished: it is read back, and the file is left as it is", source)
        return saved, True
    for name in names:
        if name in saved.results:
            logger.info("%s: restored from %s", name, source)
            fresh.add(saved.results[name])
    return fresh, False


def _run_attack(
    name: str, prepared: PreparedAttack, whole_set: bool, classifier: Any, x: np.ndarray, labels: np.ndarray,
    batch_size: int, verbose: bool,
) -> tuple[np.ndarray, float, bool]:
    """Return (per-input correctness, largest |x' - x|, whether x' left clip_values)."""
    low, high = (np.asarray(bound) for bound in classifier.clip_values)
    correct = np.empty(len(x), dtype=bool)
    max_perturbation, outside = 0.0, False
    chunk = len(x) if whole_set else batch_size
    with tqdm(total=len(x), desc=name, unit="img", disable=not verbose) as bar:
        for start in range(0, len(x), chunk):
            x_batch, labels_batch = x[start:start + chunk], labels[start:start + chunk]
            x_adv = prepared.generate(x_batch, labels_batch)
            correct[start:start + chunk] = classifier.predict(x_adv, batch_size=batch_size).argmax(1) == labels_batch
            max_perturbation = max(max_perturbation, float(np.abs(x_adv - x_batch).max()))
            outside |= bool(np.any(x_adv < low - _BOUND_TOLERANCE) or np.any(x_adv > high + _BOUND_TOLERANCE))
            bar.update(len(x_batch))
    return correct, max_perturbation, outside


def _run_one(name: str, context: AttackContext, x: np.ndarray, labels: np.ndarray) -> AttackResult:
    """Build and run one attack of :data:`ATTACKS` on every input; its result, with its own warnings."""
    spec = ATTACKS[name]
    start = perf_counter()
    prepared = spec.build(context)
    correct, max_perturbation, outside = _run_attack(name, prepared, spec.whole_set, context.classifier, x, labels,
                                                     context.batch_size, context.verbose)
    if max_perturbation > context.eps + _BOUND_TOLERANCE:
        prepared.messages.append(f"{name} left the eps ball: max |x' - x| = {max_perturbation:.6g}.")
    if outside:
        prepared.messages.append(f"{name} produced inputs outside clip_values.")
    result = AttackResult(name=name, kind=spec.kind, correct=correct, seconds=perf_counter() - start,
                          max_perturbation=max_perturbation, settings=prepared.settings, messages=prepared.messages)
    logger.info("%s: %.2f%% (%.1f s)", name, 100 * result.accuracy, result.seconds)
    return result


def evaluate_robustness(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    attacks: Iterable[str] | str = DEFAULT_ATTACKS,
    batch_size: int = 128,
    surrogate: PyTorchClassifier | None = None,
    n_queries: int = 5000,
    seed: int = 0,
    state_path: str | os.PathLike[str] | None = None,
    verbose: bool = True,
) -> RobustnessReport:
    """Accuracy of ``classifier`` under each attack, the per-input worst case, timings and integrity warnings.

    The models are evaluated in eval mode; their previous train/eval modes are restored afterwards. Attack
    settings follow the paper and scale with eps (see :mod:`art_rslad.evaluation.registry`).

    :param classifier: The ART classifier to evaluate (a PyTorchClassifier for the white-box attacks; any ART
        classifier with clip_values for ``clean`` and ``square``), outputting logits.
    :param x: Inputs, shape ``(N, *input_shape)``, within the classifier's clip_values.
    :param y: True labels, class indices (N,) or one-hot (N, nb_classes).
    :param eps: L-inf budget on the scale of clip_values (8/255 for CIFAR in [0, 1]; 0.1 for Fashion-MNIST).
    :param attacks: Names from :data:`~art_rslad.evaluation.ATTACKS`, run in this order; default the paper's
        white-box table.
    :param batch_size: Batch size of the attacks and predictions (AutoAttack gets it as its batch size and runs
        once on the whole set).
    :param surrogate: The PyTorchClassifier the transfer attacks are crafted on.
    :param n_queries: Query budget (iterations) of ``square``.
    :param seed: Seed of every random start and random search.
    :param state_path: JSON file updated after each attack; an evaluation given the same file, inputs and
        settings skips the attacks it already holds (resume after an interruption), and reads the compact form
        beside it (``.npz``) where the JSON is absent. A resume with nothing left to run writes nothing.
    :param verbose: Show a progress bar per attack.
    :return: A :class:`RobustnessReport`.

    | Paper link: https://arxiv.org/abs/2108.07969 (evaluation protocol of RSLAD)
    """
    names = _attack_names(attacks, surrogate)
    x, labels, models = _checked_inputs(classifier, surrogate, names, x, y, eps, batch_size, n_queries)
    context = AttackContext(classifier=classifier, eps=float(eps), batch_size=batch_size, seed=seed,
                            n_queries=n_queries, surrogate=surrogate, verbose=show_progress(verbose))
    path = None if state_path is None else Path(state_path)
    _check_state_path(path)
    fingerprint = _fingerprint(x, labels, {"eps": float(eps), "seed": seed, "n_queries": n_queries})
    fresh = RobustnessReport(eps=float(eps), n_inputs=len(x), labels=labels, fingerprint=fingerprint)
    report, finished = _restore(path, fresh, names)
    if finished:
        return report
    with model_modes(*[(model, False) for model in models]):
        model_warnings = _check_model_into(report, classifier, x, labels, names, batch_size, seed)
        _run_missing(report, names, context, x, labels, path)
    _close_report(report, names, model_warnings, path)
    return report


def _checked_inputs(classifier: Any, surrogate: PyTorchClassifier | None, names: tuple[str, ...], x: np.ndarray,
                    y: np.ndarray, eps: float, batch_size: int, n_queries: int
                    ) -> tuple[np.ndarray, np.ndarray, list[torch.nn.Module]]:
    """The checked inputs and labels, and the torch models whose modes the evaluation holds; a ValueError names a
    bad setting, classifier, input or output."""
    if batch_size < 1 or n_queries < 1:
        raise ValueError(f"`batch_size` and `n_queries` must be >= 1, got {batch_size} and {n_queries}.")
    _check_classifiers(classifier, surrogate, names)
    low, high = clip_range(classifier)
    if not 0 < eps <= high - low:
        raise ValueError(f"`eps` must be in (0, {high - low:g}] (the width of the classifier's clip_values "
                         f"{clip_range(classifier)}), got {eps}; it is on the scale of clip_values.")
    x, labels = _check_data(classifier, x, y)
    models = [model.model for model in (classifier, surrogate) if isinstance(model, PyTorchClassifier)]
    with model_modes(*[(model, False) for model in models]):  # predict sets eval mode and never restores it
        _check_outputs(classifier, x)
    return x, labels, models


def _check_model_into(report: RobustnessReport, classifier: Any, x: np.ndarray, labels: np.ndarray,
                      names: tuple[str, ...], batch_size: int, seed: int) -> list[str]:
    """The model's integrity checks, timed, into ``report.checks``; their warnings."""
    white_box = any(ATTACKS[name].kind == "white-box" for name in names)
    start = perf_counter()
    report.checks, model_warnings = check_model(classifier, x, labels, white_box=white_box, batch_size=batch_size,
                                                seed=seed)
    report.checks["seconds"] = perf_counter() - start
    return model_warnings


def _run_missing(report: RobustnessReport, names: tuple[str, ...], context: AttackContext, x: np.ndarray,
                 labels: np.ndarray, path: Path | None) -> None:
    """Run each attack the report does not hold yet, saving the state after each where ``path`` is given."""
    for name in names:
        if name in report.results:
            continue
        report.add(_run_one(name, context, x, labels))
        if path is not None:
            report.to_json(path)


def _close_report(report: RobustnessReport, names: tuple[str, ...], model_warnings: list[str],
                  path: Path | None) -> None:
    """Order the results as asked (restored attacks were filled in first), gather and log the warnings, save."""
    report.results = {name: report.results[name] for name in names}
    messages = [message for result in report.results.values() for message in result.messages]
    report.warnings = [*model_warnings, *messages, *consistency_warnings(report.accuracy, report.kinds)]
    for warning in report.warnings:
        logger.warning(warning)
    if path is not None:
        report.to_json(path)
