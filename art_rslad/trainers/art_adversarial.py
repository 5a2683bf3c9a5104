"""ART's own adversarial trainers as peers of our methods: each adapter only maps our settings onto its ART class.

``AdversarialTrainerMadryPGD``, ``AdversarialTrainerTRADESPyTorch``, ``AdversarialTrainerAWPPyTorch``,
``AdversarialTrainerFBFPyTorch`` and ``AdversarialTrainerOAATPyTorch``, each run through its ART class with our
data, student, epoch budget, optimizer and validation by :class:`~art_rslad.trainers.art.ArtTrainerAdapter`.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.defences.trainer import (
    AdversarialTrainerAWPPyTorch,
    AdversarialTrainerFBFPyTorch,
    AdversarialTrainerMadryPGD,
    AdversarialTrainerOAATPyTorch,
    AdversarialTrainerTRADESPyTorch,
)
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_rslad.estimators import classifier_like, forward_logits, model_modes
from art_rslad.trainers.art import ArtTrainerAdapter, EpochBatches

logger = logging.getLogger(__name__)


def _pgd(classifier: PyTorchClassifier, eps: float, eps_step: float, max_iter: int, batch_size: int
         ) -> ProjectedGradientDescent:
    """ART's PGD as ART's own trainer examples build it: cross-entropy on the true labels, one uniform start."""
    return ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=eps_step, max_iter=max_iter,
                                    targeted=False, num_random_init=1, batch_size=batch_size, verbose=False)


def _sgd_settings(classifier: PyTorchClassifier, method: str) -> dict[str, float]:
    optimizer = classifier.optimizer
    if not isinstance(optimizer, torch.optim.SGD):
        raise ValueError(f"{method} needs `classifier` with a torch.optim.SGD optimizer (its ART class schedules and "
                         f"replaces an SGD), got {type(optimizer).__name__}.")
    group = optimizer.param_groups[0]
    return {"lr": float(group["lr"]), "momentum": float(group["momentum"]),
            "weight_decay": float(group["weight_decay"])}


def _trades_settings(beta: float, attack: Any) -> dict[str, Any]:
    """The settings ART's TRADES and AWP record: beta and the attack."""
    return {"beta": beta, "attack": type(attack).__name__ if attack else
            "ProjectedGradientDescent(CE, true labels, num_random_init=1)"}


# ---------------------------------------------------------------------- ART's adversarial trainers
class ArtMadryPGD(ArtTrainerAdapter):
    """ART's ``AdversarialTrainerMadryPGD`` (SAT: PGD on the cross-entropy, uniform start, train on x' only).

    Mapping: our eps / eps_step / max_iter replace its 0-255 defaults (8, 2, 7); its PGD's batch size is the
    training batch size. Its ``fit`` is called once per epoch (it has no epoch-dependent state; each call shuffles
    afresh), so our scheduler steps once per epoch, not once per batch as it would through its kwargs, and our
    validation runs after every epoch (it would silently drop ``validation_data``).

    | Paper link: https://arxiv.org/abs/1706.06083
    """

    method: ClassVar[str] = "art-madry-pgd"
    art_class: ClassVar[type] = AdversarialTrainerMadryPGD

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        trainer = AdversarialTrainerMadryPGD(classifier, nb_epochs=1, batch_size=batch_size, eps=self.eps,
                                             eps_step=self.eps_step, max_iter=self.max_iter, num_random_init=1)
        trainer.attack.set_params(batch_size=batch_size)
        return trainer

    def _art_epoch(self, batches: EpochBatches) -> None:
        self.art_trainer.fit(batches.x, batches.y)  # built for one epoch of the training batch size


class ArtTRADES(ArtTrainerAdapter):
    """ART's ``AdversarialTrainerTRADESPyTorch`` with beta = 6 (the TRADES paper's CIFAR-10 setting).

    Its attack is ART's PGD on the cross-entropy with the true labels from a uniform start (ART's own example), not
    the KL maximisation of the TRADES paper: this is ART's TRADES (our ``trades`` is the paper's). It trains one epoch
    per call of its ``fit_generator``, over the batches its ``fit`` would draw, so our scheduler and validation run
    between its epochs and the numbers are those of one ``fit`` over the run.

    | Paper link: https://proceedings.mlr.press/v97/zhang19p.html
    """

    method: ClassVar[str] = "art-trades"
    art_class: ClassVar[type] = AdversarialTrainerTRADESPyTorch
    accepts_attack: ClassVar[bool] = True
    needs_non_sequential: ClassVar[bool] = True
    beta: ClassVar[float] = 6.0

    def _art_settings(self) -> dict[str, Any]:
        return _trades_settings(self.beta, self.attack)

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        attack = self.attack or _pgd(classifier, self.eps, self.eps_step, self.max_iter, batch_size)  # type: ignore
        return AdversarialTrainerTRADESPyTorch(classifier, attack, beta=self.beta)


class ArtAWP(ArtTrainerAdapter):
    """ART's ``AdversarialTrainerAWPPyTorch`` in its PGD mode (AT-AWP).

    Settings from the AWP paper's official AT-AWP code: gamma = 0.01, warm-up 0 epochs, proxy model a copy of the
    student with SGD lr 0.01; the attack as for ``art-trades``. Run one epoch per call as ``art-trades``: with no
    warm-up, every call perturbs the weights from its first batch, as one call over the whole run would.

    | Paper link: https://proceedings.neurips.cc/paper/2020/file/1ef91c212e30e14bf125e9374262401f-Paper.pdf
    """

    method: ClassVar[str] = "art-awp"
    art_class: ClassVar[type] = AdversarialTrainerAWPPyTorch
    accepts_attack: ClassVar[bool] = True
    needs_non_sequential: ClassVar[bool] = False
    beta: ClassVar[float] = ArtTRADES.beta
    mode: ClassVar[str] = "PGD"
    gamma: ClassVar[float] = 0.01
    proxy_lr: ClassVar[float] = 0.01
    warmup: ClassVar[int] = 0  # ART counts the warm-up in epochs of one fit: a call per epoch needs 0

    def _art_settings(self) -> dict[str, Any]:
        return {**_trades_settings(self.beta, self.attack), "mode": self.mode, "gamma": self.gamma,
                "proxy_lr": self.proxy_lr, "warmup": self.warmup}

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        proxy_model = copy.deepcopy(classifier.model)
        proxy = classifier_like(classifier, proxy_model,
                                optimizer=torch.optim.SGD(proxy_model.parameters(), lr=self.proxy_lr))
        attack = self.attack or _pgd(classifier, self.eps, self.eps_step, self.max_iter, batch_size)  # type: ignore
        return AdversarialTrainerAWPPyTorch(classifier, proxy, attack, mode=self.mode, gamma=self.gamma,
                                            beta=self.beta, warmup=self.warmup)


class ArtFBF(ArtTrainerAdapter):
    """ART's ``AdversarialTrainerFBFPyTorch`` (fast is better than free: one FGSM step from a uniform start).

    Only eps is ours. It hard-codes the rest as its paper does: step 1.25 eps, a cyclic learning rate
    0 -> 0.21 -> 0 (peak at 2/5 of the epochs) that overwrites the optimizer's, gradient-norm clipping at 0.5. In
    ART 1.20 its update runs with the model in eval mode (``loss_gradient`` leaves it there), so BatchNorm
    statistics do not move. Its cyclic lr spans the whole run, so it runs in one call: validation after the last
    epoch only, and each epoch is credited the run's mean training time.

    | Paper link: https://openreview.net/forum?id=BJx040EFvH
    """

    method: ClassVar[str] = "art-fbf"
    art_class: ClassVar[type] = AdversarialTrainerFBFPyTorch
    fit_per_epoch: ClassVar[bool] = False
    needs_non_sequential: ClassVar[bool] = True
    fixed_settings: ClassVar[dict[str, str]] = {
        "eps_step": "FBF steps 1.25 * eps once",
        "max_iter": "FBF takes a single FGSM step",
        "scheduler": "FBF's own cyclic lr 0 -> 0.21 -> 0 overwrites the optimizer's lr",
    }

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        if any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in classifier.model.modules()):
            logger.warning("art-fbf: ART 1.20's FBF updates the model in eval mode, so this student's BatchNorm "
                           "running statistics stay at their initial values (docs/art-defences.md).")
        return AdversarialTrainerFBFPyTorch(classifier, eps=self.eps, use_amp=False)


class ArtOAAT(ArtTrainerAdapter):
    """ART's ``AdversarialTrainerOAATPyTorch`` (oracle-aligned adversarial training for large eps).

    ``train_params`` follow ART's CIFAR-10 example (eps 16/255) with every radius scaled by our eps: epsilon = eps,
    i_epsilon = eps / 4 (its ramp starts there and rises linearly after the first quarter), alternate_iter_eps =
    0.75 eps, mixup_epsilon = 1.5 eps (its LPIPS-phase attack goes beyond eps; the KL term is projected back to
    i_epsilon); max_iter ours; lr, momentum and weight decay read from the student's SGD, then OAAT's own cosine lr
    and a fresh SGD at 3/4 of the epochs; AWP gamma 0.005 (also the proxy's SGD lr, as in ART's example) with its
    warm-up 10 of 110 epochs scaled to ours; beta 1.5 -> 3.0, SWA tau 0.995 from epoch 0, LPIPS on the student's
    top-level convolutional blocks. Its SWA files go to a temporary folder. Its schedules span the whole run, so it
    runs in one call: validation after the last epoch only, and each epoch is credited the run's mean training time.

    | Paper link: https://link.springer.com/chapter/10.1007/978-3-031-20065-6_18
    """

    method: ClassVar[str] = "art-oaat"
    art_class: ClassVar[type] = AdversarialTrainerOAATPyTorch
    fit_per_epoch: ClassVar[bool] = False
    accepts_attack: ClassVar[bool] = True
    fixed_settings: ClassVar[dict[str, str]] = {
        "eps_step": "OAAT steps eps/4 (eps/2 in its first quarter) along its own eps ramp",
        "scheduler": "OAAT sets a cosine lr itself and swaps in a new SGD at 3/4 of the epochs",
    }

    def __init__(self, classifier: PyTorchClassifier, teacher: PyTorchClassifier | None = None,
                 **kwargs: Any) -> None:
        super().__init__(classifier, teacher, **kwargs)
        self._sgd = _sgd_settings(classifier, self.method)
        self.activation_layers = self._conv_blocks(classifier)

    @staticmethod
    def _conv_blocks(classifier: PyTorchClassifier) -> list[str]:
        """Top-level children of the model whose outputs are feature maps (N, C, H, W): OAAT's LPIPS layers."""
        model, shapes = classifier.model, {}
        hooks = [child.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, out.dim()))
                 for name, child in model.named_children()]
        try:
            with torch.no_grad(), model_modes((model, False)):
                forward_logits(classifier, torch.zeros(1, *classifier.input_shape, device=classifier.device))
        finally:
            for hook in hooks:
                hook.remove()
        layers = [name for name, dims in shapes.items() if dims == 4]
        if not layers:
            raise ValueError("art-oaat needs a student with a top-level convolutional block (a child module that "
                             "outputs feature maps) for OAAT's LPIPS distance.")
        return layers

    def _art_settings(self) -> dict[str, Any]:
        params = {key: value for key, value in self._train_params(0).items() if key != "models_path"}
        return {"train_params": {**params, "norm": "inf", "awp_warmup": "round(nb_epochs * 10 / 110)"}}

    def _train_params(self, nb_epochs: int, models_path: Path | None = None) -> dict[str, Any]:
        eps = self.eps
        return {
            "weight_decay": self._sgd["weight_decay"], "lr": self._sgd["lr"], "momentum": self._sgd["momentum"],
            "norm": np.inf, "epsilon": eps, "i_epsilon": eps / 4, "alternate_iter_eps": 0.75 * eps,
            "mixup_epsilon": 1.5 * eps, "max_iter": self.max_iter, "alpha": 1.0, "mixup_alpha": 0.2, "beta": 1.5,
            "beta_final": 3.0, "awp_gamma": 0.005, "awp_warmup": round(nb_epochs * 10 / 110), "lr_schedule": "cosine",
            "lpips_weight": 1.0, "i_lpips_weight": 1.0, "oaat_warmup": 0, "swa_save_epoch": 0, "list_swa_tau": [0.995],
            "list_swa_epoch": [0], "models_path": None if models_path is None else str(models_path),
            "load_swa_model_tau": 0.995, "layer_names_activation": self.activation_layers,
        }

    def _build(self, classifier: PyTorchClassifier, batch_size: int, nb_epochs: int, workdir: Path) -> Any:
        params = self._train_params(nb_epochs, workdir)
        copies = [copy.deepcopy(classifier.model) for _ in range(3)]
        proxy_optimizer = torch.optim.SGD(copies[0].parameters(), lr=params["awp_gamma"])  # as ART's OAAT example
        attack = self.attack or _pgd(classifier, self.eps, self.eps / 4, self.max_iter, batch_size)  # type: ignore
        return AdversarialTrainerOAATPyTorch(
            classifier, classifier_like(classifier, copies[0], optimizer=proxy_optimizer),
            classifier_like(classifier, copies[1]), [classifier_like(classifier, copies[2])], attack, params)
