"""The paper's evaluation attacks, one builder per name in :data:`ATTACKS`.

Every attack is an L-inf attack with budget ``eps`` on the scale of the classifier's ``clip_values``. Steps and
step sizes are the paper's at eps = 8/255 and scale with eps (see docs/decisions.md, "Step sizes scale with eps"):

========================  ===================================================================================
name                      attack
========================  ===================================================================================
``clean``                 no perturbation
``fgsm``                  ART ``FastGradientMethod``, one step ``eps * sign(grad CE)``
``pgd_sat``               20 steps of ``eps / 4`` on CE, uniform start (Madry et al.: 2/255 at 8/255)
``pgd_trades``            20 steps of ``0.003 * (255 / 8) * eps`` on CE, uniform start (TRADES: 0.003 at 8/255)
``cw_inf``                20 steps of ``eps / 4`` minimising the CW margin with kappa = 50, uniform start
                          (fixed-budget PGD, not ART's minimum-distortion ``CarliniLInfMethod``)
``autoattack``            standard AutoAttack of Croce & Hein through ``pyautoattack`` (APGD-CE, APGD-T,
                          FAB-T, Square 5000); needs clip_values (0, 1)
``square``                ART ``SquareAttack`` with ``max_iter = n_queries`` (query-based, black-box)
``transfer_pgd``          ``pgd_sat`` crafted on the surrogate, evaluated on the classifier
``transfer_cw``           ``cw_inf`` crafted on the surrogate, evaluated on the classifier
========================  ===================================================================================

The PGD attacks are :class:`~art_rslad.attacks.InputGradientPGD` (ART's PGD subclass) on an
:class:`~art_rslad.attacks.InputGradientClassifier` view whose loss is the attack's: no parameter gradients, and
the batch stays on the device between steps. Add an attack by putting an :class:`AttackSpec` into
:data:`ATTACKS`; its builder receives an :class:`AttackContext` and returns a :class:`PreparedAttack`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from art.attacks.evasion import FastGradientMethod, SquareAttack
from art.estimators.classification import PyTorchClassifier
from pyautoattack import AutoAttack
from tqdm.auto import tqdm

from art_rslad.attacks import InputGradientClassifier, InputGradientPGD, SoftLabelKLLoss
from art_rslad.estimators import clip_range, forward_logits, identity_preprocessing
from art_rslad.losses import cw_margin_loss

logger = logging.getLogger(__name__)

AttackKind = Literal["clean", "white-box", "black-box", "transfer"]
#: Steps of every PGD-type evaluation attack in the paper.
PAPER_MAX_ITER = 20
#: CW_inf confidence margin in the paper's evaluation.
CW_KAPPA = 50.0


@dataclass(frozen=True)
class AttackContext:
    """What a builder may use: the classifier under evaluation and the evaluation's settings.

    :param classifier: The ART classifier under evaluation (inputs in its ``clip_values``).
    :param eps: L-inf budget on the scale of ``clip_values``.
    :param batch_size: Batch size of the attacks and predictions.
    :param seed: Seed of the attacks' random starts and random searches.
    :param n_queries: Query budget of the black-box ``square`` attack.
    :param surrogate: The model the transfer attacks are crafted on, or None.
    :param verbose: Whether to show progress bars.
    """

    classifier: Any
    eps: float
    batch_size: int
    seed: int
    n_queries: int
    surrogate: PyTorchClassifier | None
    verbose: bool


@dataclass
class PreparedAttack:
    """A built attack: ``generate(x, labels) -> x_adv`` on numpy arrays (labels as class indices).

    :param generate: Crafts adversarial inputs for one batch (or the whole set, see :attr:`AttackSpec.whole_set`).
    :param settings: The attack's parameters as recorded in the report (steps, step size, loss, ...).
    :param messages: Warnings the attack raised while running (e.g. pyautoattack's checks), for the report.
    """

    generate: Callable[[np.ndarray, np.ndarray], np.ndarray]
    settings: dict[str, Any]
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AttackSpec:
    """One entry of :data:`ATTACKS`.

    :param build: Builds the attack for an evaluation.
    :param kind: ``clean``, ``white-box`` (needs loss gradients of a PyTorchClassifier), ``black-box`` (needs
        only predictions) or ``transfer`` (crafted on the surrogate).
    :param description: One line for tables and ``--help``.
    :param whole_set: Whether ``generate`` takes the whole set at once (it batches internally) instead of one
        batch per call.
    """

    build: Callable[[AttackContext], PreparedAttack]
    kind: AttackKind
    description: str
    whole_set: bool = False


class CWMarginLoss(torch.nn.Module):
    """Minus the summed CW margin (:func:`~art_rslad.losses.cw_margin_loss`), so that PGD's ascent minimises it.

    Targets are one-hot or probability rows (their argmax is the true class), as the PGD attacks here pass them.
    """

    def __init__(self, kappa: float = CW_KAPPA) -> None:
        super().__init__()
        self.kappa = kappa

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return -cw_margin_loss(logits, targets.argmax(dim=1), kappa=self.kappa).sum()


class LogitsModule(torch.nn.Module):
    """The classifier's ART preprocessing followed by its model, as the torch module pyautoattack attacks."""

    def __init__(self, classifier: PyTorchClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_logits(self.classifier, x)


def pgd_step_sizes(eps: float) -> dict[str, float]:
    """The evaluation PGD step sizes for budget ``eps`` (the paper's values at eps = 8/255)."""
    return {"pgd_sat": eps / 4, "pgd_trades": 0.003 * (255 / 8) * eps, "cw_inf": eps / 4}


def _one_hot(labels: np.ndarray, nb_classes: int) -> np.ndarray:
    return np.eye(nb_classes, dtype=np.float32)[labels]


def pgd_attack(
    classifier: PyTorchClassifier, loss: torch.nn.Module, eps: float, eps_step: float, *, batch_size: int, seed: int
) -> PreparedAttack:
    """PGD-20 with a uniform start on ``loss`` (a module taking logits and one-hot targets) against ``classifier``.

    :param classifier: The model the adversarial inputs are crafted on.
    :param loss: The loss PGD ascends, e.g. :class:`~art_rslad.attacks.SoftLabelKLLoss` or :class:`CWMarginLoss`.
    :param eps: L-inf budget.
    :param eps_step: Step size.
    :param batch_size: Batch size (only used by ART's numpy path).
    :param seed: Seed of the random start.
    """
    view = InputGradientClassifier(classifier, loss=loss)
    attack = InputGradientPGD(view, eps=eps, eps_step=eps_step, max_iter=PAPER_MAX_ITER, random_init="uniform",
                              batch_size=batch_size, seed=seed)

    def generate(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        x_tensor = torch.as_tensor(x, device=classifier.device)
        targets = F.one_hot(torch.as_tensor(labels, device=classifier.device), classifier.nb_classes).float()
        return attack.generate_tensor(x_tensor, targets).cpu().numpy()

    settings = {"attack": "InputGradientPGD", "loss": type(loss).__name__, "eps_step": eps_step,
                "max_iter": PAPER_MAX_ITER, "random_init": "uniform"}
    return PreparedAttack(generate, settings)


def _pgd(classifier: PyTorchClassifier, loss: torch.nn.Module, name: str, context: AttackContext) -> PreparedAttack:
    prepared = pgd_attack(classifier, loss, context.eps, pgd_step_sizes(context.eps)[name],
                          batch_size=context.batch_size, seed=context.seed)
    if isinstance(loss, CWMarginLoss):
        prepared.settings["kappa"] = loss.kappa
    return prepared


def _surrogate(context: AttackContext) -> PyTorchClassifier:
    if context.surrogate is None:  # evaluate_robustness checks this first; builders may be called directly
        raise ValueError("transfer attacks need `surrogate`: pass a PyTorchClassifier to craft them on.")
    return context.surrogate


def _build_clean(context: AttackContext) -> PreparedAttack:
    return PreparedAttack(lambda x, labels: x, {})


def _build_fgsm(context: AttackContext) -> PreparedAttack:
    classifier = context.classifier
    attack = FastGradientMethod(InputGradientClassifier(classifier, loss=SoftLabelKLLoss()), norm=np.inf,
                                eps=context.eps, eps_step=context.eps, num_random_init=0,
                                batch_size=context.batch_size)
    return PreparedAttack(
        lambda x, labels: attack.generate(x, y=_one_hot(labels, classifier.nb_classes)),
        {"attack": "art.attacks.evasion.FastGradientMethod", "loss": "cross-entropy", "max_iter": 1},
    )


def _build_pgd_sat(context: AttackContext) -> PreparedAttack:
    return _pgd(context.classifier, SoftLabelKLLoss(), "pgd_sat", context)


def _build_pgd_trades(context: AttackContext) -> PreparedAttack:
    return _pgd(context.classifier, SoftLabelKLLoss(), "pgd_trades", context)


def _build_cw_inf(context: AttackContext) -> PreparedAttack:
    return _pgd(context.classifier, CWMarginLoss(), "cw_inf", context)


def _build_transfer_pgd(context: AttackContext) -> PreparedAttack:
    return _pgd(_surrogate(context), SoftLabelKLLoss(), "pgd_sat", context)


def _build_transfer_cw(context: AttackContext) -> PreparedAttack:
    return _pgd(_surrogate(context), CWMarginLoss(), "cw_inf", context)


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (which ART's SquareAttack draws from) for the block, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _build_square(context: AttackContext) -> PreparedAttack:
    classifier = context.classifier
    attack = SquareAttack(classifier, norm=np.inf, eps=context.eps, max_iter=context.n_queries, p_init=0.8,
                          nb_restarts=1, batch_size=context.batch_size, verbose=False)
    seeds = np.random.default_rng(context.seed)

    def generate(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        with _numpy_seed(int(seeds.integers(2**31))):
            return attack.generate(x, y=_one_hot(labels, classifier.nb_classes))

    return PreparedAttack(generate, {"attack": "art.attacks.evasion.SquareAttack", "max_iter": context.n_queries,
                                     "p_init": 0.8, "nb_restarts": 1})


class _AutoAttackLog(logging.Handler):
    """Collects pyautoattack's warnings and advances a progress bar at the end of each of its attacks."""

    def __init__(self, bar: tqdm) -> None:
        super().__init__(level=logging.DEBUG)
        self.bar = bar
        self.messages: list[str] = []
        self.results: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.messages.append(f"pyautoattack: {message}")
        elif message.startswith("robust accuracy after "):
            name, result = message.removeprefix("robust accuracy after ").split(":", 1)
            self.results[name.lower()] = float(result.split("%", 1)[0]) / 100
            self.bar.update(1)


@contextlib.contextmanager
def _autoattack_log(bar: tqdm) -> Iterator[_AutoAttackLog]:
    """Route the ``auto-attack`` logger (DEBUG included) into an :class:`_AutoAttackLog` for the block only."""
    aa_logger = logging.getLogger("auto-attack")
    saved = (aa_logger.level, aa_logger.propagate)
    handler = _AutoAttackLog(bar)
    aa_logger.addHandler(handler)
    aa_logger.setLevel(logging.DEBUG)
    aa_logger.propagate = False
    try:
        yield handler
    finally:
        aa_logger.removeHandler(handler)
        aa_logger.setLevel(saved[0])
        aa_logger.propagate = saved[1]


def _build_autoattack(context: AttackContext) -> PreparedAttack:
    classifier = context.classifier
    if clip_range(classifier) != (0.0, 1.0) or np.ndim(classifier.clip_values[0]) != 0:
        raise ValueError(
            f"`attacks`: autoattack (pyautoattack) clamps inputs to [0, 1], but the classifier's clip_values are "
            f"{classifier.clip_values}; use clip_values=(0, 1) and put any scaling into `preprocessing`."
        )
    # With identity preprocessing pyautoattack gets the bare model: a wrapper call around each of its thousands of
    # small forwards cost ~4% (docs/performance.md).
    model = classifier.model if identity_preprocessing(classifier) else LogitsModule(classifier)
    adversary = AutoAttack(model, eps=context.eps, norm="Linf", version="standard",
                           device=classifier.device, seed=context.seed)
    settings: dict[str, Any] = {"attack": "pyautoattack.AutoAttack", "version": "standard",
                                "attacks": list(adversary.attacks_to_run), "batch_size": context.batch_size}
    messages: list[str] = []

    def generate(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        bar = tqdm(total=len(adversary.attacks_to_run), desc="autoattack", unit="attack",
                   disable=not context.verbose)
        with bar, _autoattack_log(bar) as log:
            x_adv, _ = adversary.run_standard_evaluation(torch.as_tensor(x), torch.as_tensor(labels),
                                                         batch_size=context.batch_size)
        messages.extend(log.messages)
        settings["robust_accuracy_after"] = log.results
        return x_adv.cpu().numpy()

    return PreparedAttack(generate, settings, messages)


#: Attack name -> how to build it. Add entries here to extend :func:`~art_rslad.evaluate_robustness`.
ATTACKS: dict[str, AttackSpec] = {
    "clean": AttackSpec(_build_clean, "clean", "no perturbation"),
    "fgsm": AttackSpec(_build_fgsm, "white-box", "FGSM, one step eps * sign(grad CE) (ART)"),
    "pgd_sat": AttackSpec(_build_pgd_sat, "white-box", "PGD-20 on CE, step eps/4, uniform start"),
    "pgd_trades": AttackSpec(_build_pgd_trades, "white-box",
                             "PGD-20 on CE, step 0.003*(255/8)*eps, uniform start"),
    "cw_inf": AttackSpec(_build_cw_inf, "white-box", "PGD-20 on the CW margin (kappa 50), step eps/4"),
    "autoattack": AttackSpec(_build_autoattack, "white-box",
                             "standard AutoAttack (pyautoattack: APGD-CE, APGD-T, FAB-T, Square)", whole_set=True),
    "square": AttackSpec(_build_square, "black-box", "Square attack, n_queries iterations (ART)"),
    "transfer_pgd": AttackSpec(_build_transfer_pgd, "transfer", "pgd_sat crafted on the surrogate"),
    "transfer_cw": AttackSpec(_build_transfer_cw, "transfer", "cw_inf crafted on the surrogate"),
}

#: The paper's white-box table, the default of :func:`~art_rslad.evaluate_robustness`.
DEFAULT_ATTACKS: tuple[str, ...] = ("clean", "fgsm", "pgd_sat", "pgd_trades", "cw_inf", "autoattack")
