"""ART preprocessing defences around a student, seen through their exact gradient and through BPDA.

:data:`PREPROCESSING_DEFENCES` names ART's ``FeatureSqueezing`` and ``JpegCompression`` with the settings of their
papers (see ``docs/art-defences.md``). :func:`evaluate_preprocessing_defence` evaluates the defended student twice,
once through the defence's exact gradient (zero almost everywhere for these quantisers: what autograd sees) and
once with BPDA (ART's ``estimate_gradient``), and puts both into one :class:`~art_rslad.evaluation.RobustnessReport`
whose warnings explain any gap as obfuscated gradients. A defence with neither gives no white-box numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from art.defences.preprocessor import FeatureSqueezing, JpegCompression
from art.defences.preprocessor.preprocessor import Preprocessor, PreprocessorPyTorch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_rslad.estimators import check_classifier, classifier_like, clip_range, forward_logits
from art_rslad.evaluation.checks import ACCURACY_TOLERANCE
from art_rslad.evaluation.registry import ATTACKS, DEFAULT_ATTACKS
from art_rslad.evaluation.report import RobustnessReport
from art_rslad.evaluation.sharded import evaluate_robustness_distributed

logger = logging.getLogger(__name__)

DefenceGradient = Literal["exact", "bpda"]
#: The views :func:`evaluate_preprocessing_defence` may run, each with its own resume file: the two gradients, and
#: ``no`` (gradient-free attacks only) when the defence has neither.
DEFENCE_VIEWS: tuple[str, ...] = ("exact", "bpda", "no")


@dataclass(frozen=True)
class DefenceSpec:
    """One entry of :data:`PREPROCESSING_DEFENCES`.

    :param build: Builds the ART preprocessor for a classifier (its clip values and channels).
    :param description: One line for tables and ``--help``.
    """

    build: Callable[[PyTorchClassifier], Preprocessor]
    description: str


def _feature_squeezing(classifier: PyTorchClassifier) -> Preprocessor:
    channels = classifier.input_shape[0] if classifier.channels_first else classifier.input_shape[-1]
    return FeatureSqueezing(clip_values=classifier.clip_values, bit_depth=1 if channels == 1 else 5)


def _jpeg(classifier: PyTorchClassifier) -> Preprocessor:
    return JpegCompression(clip_values=classifier.clip_values, quality=75, channels_first=classifier.channels_first)


#: Defence name -> how to build it around a student. Settings from each defence's paper (docs/art-defences.md).
PREPROCESSING_DEFENCES: dict[str, DefenceSpec] = {
    "feature-squeezing": DefenceSpec(
        _feature_squeezing, "ART FeatureSqueezing: bit-depth 1 for grey-scale, 5 for colour (Xu et al. 2018)"),
    "jpeg": DefenceSpec(_jpeg, "ART JpegCompression, quality 75 (Dziugaite et al. 2016, Guo et al. 2018)"),
}
#: ART numpy defences that are constant between quantisation steps: their exact gradient is zero almost
#: everywhere, which is what the ``exact`` view back-propagates.
PIECEWISE_CONSTANT: tuple[type[Preprocessor], ...] = (FeatureSqueezing, JpegCompression)


def get_preprocessing_defence(name: str, classifier: PyTorchClassifier) -> Preprocessor:
    """The ART preprocessor registered as ``name``, built for ``classifier``; a ValueError lists the names."""
    if name not in PREPROCESSING_DEFENCES:
        raise ValueError(f"Unknown preprocessing defence {name!r}; known: {', '.join(PREPROCESSING_DEFENCES)}.")
    return PREPROCESSING_DEFENCES[name].build(classifier)


class _NumpyDefence(torch.autograd.Function):
    """An ART numpy preprocessor inside autograd: forward runs it; backward is zero (``exact`` for a piecewise-
    constant defence) or ART's ``estimate_gradient`` (``bpda``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, defence: Preprocessor, gradient: DefenceGradient) -> torch.Tensor:
        ctx.defence, ctx.gradient, ctx.x_numpy = defence, gradient, x.detach().cpu().numpy()
        defended, _ = defence(ctx.x_numpy)
        return torch.as_tensor(np.asarray(defended, dtype=np.float32), device=x.device)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        if ctx.gradient == "exact":
            return torch.zeros(ctx.x_numpy.shape, dtype=grad_output.dtype, device=grad_output.device), None, None
        grad = ctx.defence.estimate_gradient(ctx.x_numpy, grad_output.detach().cpu().numpy())
        return torch.as_tensor(np.asarray(grad), dtype=grad_output.dtype, device=grad_output.device), None, None


class DefendedModel(nn.Module):
    """The student behind an ART preprocessing defence, as one differentiable torch module.

    ``forward(x)`` = the student's logits (after its own ART preprocessing) on ``defence(x)``. Gradients with
    respect to x: ``exact`` differentiates the defence itself (autograd through an ART ``PreprocessorPyTorch``;
    zero for a piecewise-constant numpy defence); ``bpda`` uses ART's approximation (``estimate_forward`` of a
    PyTorch defence, ``estimate_gradient`` of a numpy one).

    :param classifier: The student; its model is registered here, so mode switches reach it.
    :param defence: An ART preprocessor.
    :param gradient: ``exact`` or ``bpda``.
    """

    def __init__(self, classifier: PyTorchClassifier, defence: Preprocessor, gradient: DefenceGradient) -> None:
        super().__init__()
        self.model = classifier.model
        self._classifier = classifier
        self.defence = defence
        self.gradient = gradient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.defence, PreprocessorPyTorch):
            defended = self.defence.forward(x)[0] if self.gradient == "exact" else self.defence.estimate_forward(x)
        else:
            defended = _NumpyDefence.apply(x, self.defence, self.gradient)
        return forward_logits(self._classifier, defended)


def defended_classifier(
    classifier: PyTorchClassifier, defence: str | Preprocessor, gradient: DefenceGradient = "bpda"
) -> PyTorchClassifier:
    """``classifier`` behind ``defence`` as a PyTorchClassifier that white-box attacks can differentiate.

    :param classifier: The student (logits, clip_values).
    :param defence: A name from :data:`PREPROCESSING_DEFENCES` or an ART preprocessor.
    :param gradient: ``exact`` (the defence's own gradient) or ``bpda`` (ART's approximation).
    :raises ValueError: When the chosen gradient does not exist: ``exact`` of a numpy defence not known to be
        piecewise constant (:data:`PIECEWISE_CONSTANT`), or ``bpda`` of a defence whose ``estimate_gradient`` is
        missing or returns the wrong shape. Then no white-box number can be given for that view.
    """
    check_classifier(classifier, "classifier")
    if isinstance(defence, str):
        defence = get_preprocessing_defence(defence, classifier)
    if not isinstance(defence, Preprocessor):
        raise ValueError(f"`defence` must be a name ({', '.join(PREPROCESSING_DEFENCES)}) or an ART Preprocessor, got "
                         f"{type(defence).__name__}.")
    if gradient not in ("exact", "bpda"):
        raise ValueError(f"`gradient` must be 'exact' or 'bpda', got {gradient!r}.")
    name = type(defence).__name__
    if gradient == "exact" and not isinstance(defence, (PreprocessorPyTorch, *PIECEWISE_CONSTANT)):
        raise ValueError(f"{name} runs in numpy and is not known to be piecewise constant, so its exact gradient is "
                         "unknown: use gradient='bpda', or black-box attacks only.")
    if gradient == "bpda" and not isinstance(defence, PreprocessorPyTorch):
        probe = np.full((1, *classifier.input_shape), 0.5 * sum(clip_range(classifier)), dtype=np.float32)
        try:
            estimate = np.asarray(defence.estimate_gradient(probe, np.ones_like(defence(probe)[0])))
        except NotImplementedError:
            estimate = None
        if estimate is None or estimate.shape != probe.shape:
            raise ValueError(f"{name} offers no usable gradient estimate (estimate_gradient is missing or returns the "
                             "wrong shape), so it cannot be attacked by BPDA: no white-box numbers; use black-box "
                             "attacks only.")
    # DefendedModel applies the student's own preprocessing after the defence: the view adds none of its own
    return classifier_like(classifier, DefendedModel(classifier, defence, gradient), keep_preprocessing=False)


#: Suffix of the BPDA view's attack names in :func:`evaluate_preprocessing_defence`'s report.
BPDA_SUFFIX = "_bpda"


def _merge(reports: dict[str, RobustnessReport], eps: float, n_inputs: int) -> RobustnessReport:
    """One report holding the exact view's attacks under their names and the BPDA view's under name + _bpda
    (attacks that use no gradient only once); checks per view; warnings prefixed with their view."""
    merged = RobustnessReport(eps=eps, n_inputs=n_inputs)
    for view, report in reports.items():
        for result in report.results.values():
            if result.kind != "white-box" and result.name in merged.results:
                continue
            bpda = view == "bpda" and result.kind == "white-box"
            merged.add(dataclasses.replace(result, name=f"{result.name}{BPDA_SUFFIX}" if bpda else result.name,
                                           settings={**result.settings, "defence_gradient": view}))
        merged.checks[view] = report.checks
        merged.warnings += [f"[{view} gradient] {warning}" for warning in report.warnings]
        merged.fingerprint, merged.labels = report.fingerprint, report.labels
    return merged


def view_state_path(state_path: str | os.PathLike[str] | None, view: str) -> Path | None:
    """The resume file of one view (``exact``, ``bpda`` or ``no``) of
    :func:`evaluate_preprocessing_defence`: ``eval.json`` -> ``eval.<view>.json``."""
    if view not in DEFENCE_VIEWS:
        raise ValueError(f"`view` must be one of {', '.join(DEFENCE_VIEWS)}, got {view!r}.")
    if state_path is None:
        return None
    path = Path(state_path)
    return path.with_name(f"{path.stem}.{view}{path.suffix or '.json'}")


def _gap_warnings(report: RobustnessReport, defence_name: str) -> list[str]:
    accuracy, warnings = report.accuracy, []
    for name, kind in report.kinds.items():
        bpda = f"{name}{BPDA_SUFFIX}"
        if kind != "white-box" or bpda not in accuracy:
            continue
        if accuracy[name] > accuracy[bpda] + ACCURACY_TOLERANCE:
            warnings.append(
                f"{name}: {accuracy[name]:.2%} through {defence_name}'s exact gradient but {accuracy[bpda]:.2%} with "
                f"BPDA ({bpda}): the higher number comes from obfuscated gradients (the defence's gradient is zero "
                "almost everywhere), not from robustness. Only the lower one is a robustness claim.")
        elif accuracy[bpda] > accuracy[name] + ACCURACY_TOLERANCE:
            warnings.append(f"{bpda} ({accuracy[bpda]:.2%}) is above {name} ({accuracy[name]:.2%}): BPDA's "
                            "approximation of the defence is poor here; the lower number is the one to report.")
    return warnings


def _gradient_free_view(classifier: PyTorchClassifier, defence: str | Preprocessor, names: list[str],
                        refused: list[str]) -> tuple[PyTorchClassifier, list[str]]:
    """The ``no`` view, for a defence with neither gradient: the student behind the defence in ART's own
    preprocessing path, and the attacks of ``names`` that need no gradient (a ValueError, after ``refused``, if
    there are none)."""
    gradient_free = [name for name in names if ATTACKS[name].kind != "white-box"]
    if not gradient_free:
        raise ValueError(" ".join(refused) + " Choose attacks that need no gradient (e.g. clean, square).")
    art_defence = get_preprocessing_defence(defence, classifier) if isinstance(defence, str) else defence
    return classifier_like(classifier, defences=[art_defence]), gradient_free


def evaluate_preprocessing_defence(
    classifier: PyTorchClassifier,
    defence: str | Preprocessor,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    attacks: Iterable[str] | str = DEFAULT_ATTACKS,
    state_path: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> RobustnessReport:
    """Robustness of ``classifier`` behind ``defence``, white-box both through the defence's exact gradient and by
    BPDA, in one report.

    The exact view keeps the attack names (``pgd_sat``, ...); the BPDA view's white-box attacks are named
    ``pgd_sat_bpda``, ...; clean and black-box attacks run once. The per-input worst case covers both views. A
    warning names every attack whose exact-gradient accuracy lies above its BPDA accuracy (obfuscated gradients),
    and each view's own integrity warnings are kept, prefixed with the view. A view whose gradient does not exist
    is skipped with a warning; with neither, only the attacks that need no gradient run (white-box numbers are
    refused, not faked). Under torchrun each view is sharded over the ranks like
    :func:`~art_rslad.evaluation.evaluate_robustness_distributed`, and every rank returns the merged report.

    :param classifier: The undefended student (logits, clip_values).
    :param defence: A name from :data:`PREPROCESSING_DEFENCES` or an ART preprocessor.
    :param x: Inputs within clip_values.
    :param y: Labels (indices or one-hot).
    :param eps: L-inf budget on the scale of clip_values.
    :param attacks: Attack names of :func:`~art_rslad.evaluate_robustness`.
    :param state_path: Resume file stem: each view keeps its own state, ``eval.json`` becoming ``eval.exact.json``
        and ``eval.bpda.json`` (``eval.no.json`` for the gradient-free fallback), updated after every attack
        (under torchrun one per rank and view: ``eval.exact.rank0of2.json``, ...).
    :param kwargs: Other arguments of :func:`~art_rslad.evaluate_robustness` (batch_size, seed, surrogate, ...).
    """
    names = [attacks] if isinstance(attacks, str) else list(attacks)
    unknown = [name for name in names if name not in ATTACKS]
    if unknown:
        raise ValueError(f"`attacks`: unknown attack names {unknown}; known attacks: {', '.join(ATTACKS)}.")
    defence_name = defence if isinstance(defence, str) else type(defence).__name__
    reports: dict[str, RobustnessReport] = {}
    refused: list[str] = []
    for gradient in ("exact", "bpda"):
        try:
            view = defended_classifier(classifier, defence, gradient)  # type: ignore[arg-type]
        except ValueError as error:
            refused.append(f"[{gradient} gradient] not evaluated: {error}")
            continue
        logger.info("%s behind %s, %s gradient", type(classifier.model).__name__, defence_name, gradient)
        reports[gradient] = evaluate_robustness_distributed(view, x, y, eps=eps, attacks=names,
                                                            state_path=view_state_path(state_path, gradient), **kwargs)
    if not reports:
        refused.append(f"White-box attacks refused: {defence_name} has no gradient and no gradient estimate.")
        numpy_defended, gradient_free = _gradient_free_view(classifier, defence, names, refused)
        reports["no"] = evaluate_robustness_distributed(numpy_defended, x, y, eps=eps, attacks=gradient_free,
                                                        state_path=view_state_path(state_path, "no"), **kwargs)
    report = _merge(reports, float(eps), len(x))
    gaps = _gap_warnings(report, defence_name)
    report.warnings = [*refused, *report.warnings, *gaps]
    for warning in refused + gaps:
        logger.warning(warning)
    return report
