"""Integrity checks of a robustness evaluation, after AutoAttack's ``checks.py``.

Two groups, both reported as warnings (never errors: a flawed evaluation is still worth reading):

* :func:`check_model` looks at the model on the first batch before any attack: probability outputs instead of
  logits, randomised outputs, inputs whose margin gradient is exactly zero (a non-differentiable layer masks
  gradients), and accuracy under PGD at an eps as large as the whole input range, which must be near 0.
* :func:`consistency_warnings` compares the accuracies of the attacks afterwards: AutoAttack above a PGD
  attack, FGSM below PGD, or a black-box/transfer attack below the best white-box one each point to a weak
  white-box evaluation, typically gradient masking.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_rslad.attacks import InputGradientClassifier, SoftLabelKLLoss
from art_rslad.estimators import clip_range
from art_rslad.evaluation.registry import CWMarginLoss, pgd_attack

#: Accuracy gap (absolute) below which two attacks count as equal; AutoAttack's check_square_sr uses 0.002.
ACCURACY_TOLERANCE = 0.002
#: Largest accuracy accepted under PGD at an eps spanning the whole input range.
LARGE_EPS_MAX_ACCURACY = 0.1
#: Relative change of the outputs between two identical predictions above which the model counts as randomised.
RANDOMISED_TOLERANCE = 1e-4
_PROBABILITY_TOLERANCE = 1e-5


def _looks_like_probabilities(outputs: np.ndarray) -> bool:
    return bool(outputs.max() < 1 + _PROBABILITY_TOLERANCE and outputs.min() > -_PROBABILITY_TOLERANCE
                and np.all(np.abs(outputs.sum(axis=1) - 1) < _PROBABILITY_TOLERANCE))


def _max_output_change(first: np.ndarray, second: np.ndarray) -> float:
    def unit(outputs: np.ndarray) -> np.ndarray:
        return outputs / (np.linalg.norm(outputs, axis=1, keepdims=True) + 1e-10)

    return float(np.linalg.norm(unit(first) - unit(second), axis=1).max())


def check_model(
    classifier: Any, x: np.ndarray, labels: np.ndarray, *, white_box: bool, batch_size: int, seed: int
) -> tuple[dict[str, Any], list[str]]:
    """Check the model on the first ``batch_size`` inputs; return (measured values, warnings).

    :param classifier: The ART classifier under evaluation, in the mode it is evaluated in.
    :param x: Inputs in the classifier's clip_values.
    :param labels: True class indices.
    :param white_box: Whether gradients are available (a PyTorchClassifier): adds the gradient checks.
    :param batch_size: Number of inputs checked.
    :param seed: Seed of the large-eps PGD.
    """
    x_check, labels_check = x[:batch_size], labels[:batch_size]
    first = classifier.predict(x_check, batch_size=batch_size)
    second = classifier.predict(x_check, batch_size=batch_size)
    change = _max_output_change(first, second)
    results: dict[str, Any] = {
        "checked_inputs": len(x_check),
        "probability_outputs": _looks_like_probabilities(first),
        "output_change_between_identical_calls": change,
    }
    warnings = []
    if results["probability_outputs"]:
        warnings.append("The model's outputs look like probabilities (in [0, 1], rows summing to 1); the attacks "
                        "and AutoAttack need logits: remove the final softmax.")
    if change > RANDOMISED_TOLERANCE or np.any(first.argmax(1) != second.argmax(1)):
        warnings.append(f"The model's outputs changed by {change:.2g} between two identical calls: a randomised "
                        "model needs EOT attacks (e.g. AutoAttack version='rand'); these results overestimate it.")
    if not white_box:
        return results, warnings

    device = classifier.device
    targets = F.one_hot(torch.as_tensor(labels_check, device=device), classifier.nb_classes).float()
    gradients = InputGradientClassifier(classifier, loss=CWMarginLoss()).loss_gradient(
        torch.as_tensor(x_check, device=device), targets)
    zero = int((gradients.flatten(1).abs().sum(dim=1) == 0).sum())
    results["zero_gradient_inputs"] = zero
    if zero:
        warnings.append(f"{zero} of {len(x_check)} inputs have an all-zero input gradient of the CW margin: "
                        "gradients are masked (e.g. a non-differentiable layer), so white-box accuracies are "
                        "upper bounds; use black-box or adaptive (BPDA) attacks.")

    low, high = clip_range(classifier)
    large_eps = high - low
    x_adv = pgd_attack(classifier, SoftLabelKLLoss(), large_eps, large_eps / 4, batch_size=batch_size,
                       seed=seed).generate(x_check, labels_check)
    accuracy = float(np.mean(classifier.predict(x_adv, batch_size=batch_size).argmax(1) == labels_check))
    results["large_eps"] = large_eps
    results["large_eps_accuracy"] = accuracy
    if accuracy > LARGE_EPS_MAX_ACCURACY:
        warnings.append(f"PGD-20 at eps = {large_eps:g} (the whole input range) leaves {accuracy:.1%} accuracy; "
                        "it should be near 0: gradients are masked or the attack is broken.")
    return results, warnings


def consistency_warnings(
    accuracy: Mapping[str, float], kinds: Mapping[str, str], tolerance: float = ACCURACY_TOLERANCE
) -> list[str]:
    """Warnings for attack accuracies that contradict each other (a weaker attack doing better).

    :param accuracy: Attack name -> accuracy in [0, 1].
    :param kinds: Attack name -> kind (``clean``, ``white-box``, ``black-box``, ``transfer``).
    :param tolerance: Absolute accuracy gap ignored.
    """
    warnings = []
    if "autoattack" in accuracy:
        for name in ("fgsm", "pgd_sat", "pgd_trades", "cw_inf"):
            if name in accuracy and accuracy["autoattack"] > accuracy[name] + tolerance:
                warnings.append(f"autoattack ({accuracy['autoattack']:.2%}) is above {name} "
                                f"({accuracy[name]:.2%}); AutoAttack should be the strongest attack.")
    if "fgsm" in accuracy:
        for name in ("pgd_sat", "pgd_trades"):
            if name in accuracy and accuracy["fgsm"] < accuracy[name] - tolerance:
                warnings.append(f"fgsm ({accuracy['fgsm']:.2%}) is below {name} ({accuracy[name]:.2%}); "
                                "a single step beating 20 steps points to gradient masking.")
    white_box = {name: value for name, value in accuracy.items() if kinds[name] == "white-box"}
    if white_box:
        strongest = min(white_box, key=white_box.__getitem__)
        for name, value in accuracy.items():
            if kinds[name] in ("black-box", "transfer") and value < white_box[strongest] - tolerance:
                warnings.append(f"{kinds[name]} attack {name} ({value:.2%}) is below the strongest white-box "
                                f"attack {strongest} ({white_box[strongest]:.2%}): a sign of gradient masking.")
    return warnings
