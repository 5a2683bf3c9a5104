"""The inner maximisation as an ART attack, made as cheap as a plain PyTorch loop.

Two pieces:

* :class:`InputGradientClassifier`: a :class:`~art.estimators.classification.PyTorchClassifier` that shares
  another classifier's model and preprocessing but has its own loss (by default :class:`SoftLabelKLLoss`) and
  whose ``loss_gradient`` on tensors differentiates with respect to the input only: no parameter gradient is
  computed or left in ``.grad``, and the model's train/eval mode is left as the caller set it. Its forward pass
  can run under bf16 autocast and in channels_last memory format (:func:`model_forward`, off by default).
* :class:`InputGradientPGD`: ART's :class:`ProjectedGradientDescentPyTorch` with the random starts of the papers
  (``gaussian``: x + std * N(0, I), not clipped before the first step, as in RSLAD and TRADES; ``uniform``: as
  ART and Madry et al.) drawn from its own seeded torch generator, and :meth:`InputGradientPGD.generate_tensor`,
  which keeps the batch on the device from the first step to the last.

The subclass overrides ART's private per-step methods ``_compute_pytorch``, ``_compute_perturbation_pytorch``,
``_apply_perturbation_pytorch`` and ``_projection``: that is how ART's attack reaches the speed of a plain loop, and
users may still pass any ART attack. ART is pinned to ``>=1.20,<1.21``; ``tests/test_attacks.py`` fails if the
signatures of those methods change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescentPyTorch
from art.estimators.classification import PyTorchClassifier
from art.utils import random_sphere

from art_rslad.estimators import classifier_settings, forward_logits, identity_preprocessing
from art_rslad.losses import kl_per_sample

logger = logging.getLogger(__name__)

RandomInit = Literal["gaussian", "uniform", "none"]
RANDOM_INITS: tuple[str, ...] = ("gaussian", "uniform", "none")
AMP_DTYPES: tuple[torch.dtype, ...] = (torch.bfloat16,)
ClipBounds = tuple[float, float] | tuple[torch.Tensor, torch.Tensor] | None


def check_speed_options(amp_dtype: torch.dtype | None, channels_last: bool, input_shape: tuple[int, ...]) -> None:
    """Raise a ValueError naming the argument if ``amp_dtype`` or ``channels_last`` cannot apply."""
    if amp_dtype is not None and amp_dtype not in AMP_DTYPES:
        raise ValueError(f"`amp_dtype` must be None or torch.bfloat16, got {amp_dtype}; float16 would need loss "
                         "scaling, which the training loop does not do.")
    if channels_last and len(input_shape) != 3:
        raise ValueError(f"`channels_last` needs image inputs of shape (C, H, W), the classifier has {input_shape}; "
                         "pass channels_last=False.")


def model_forward(
    model: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """``model(inputs)`` as float32 logits, optionally under autocast to ``amp_dtype`` and in channels_last format.

    With the defaults this is exactly ``model(inputs)``.
    """
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    if amp_dtype is None:
        return model(inputs)
    with torch.autocast(inputs.device.type, dtype=amp_dtype):
        return model(inputs).float()


class SoftLabelKLLoss(torch.nn.Module):
    """``sum_i KL(y_i || softmax(logits_i))`` for probability targets ``y`` of shape (B, C).

    With one-hot targets this is the summed cross-entropy, so one loss drives both the soft-label attacks
    (RSLAD, TRADES) and the hard-label ones (SAT, ARD).
    """

    def forward(self, logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
        return kl_per_sample(target_probs, logits).sum()


class InputGradientClassifier(PyTorchClassifier):
    """A view of ``classifier`` (same model object, clip values and preprocessing) with its own loss.

    ``loss_gradient`` on torch tensors returns only the input gradient and leaves the model's mode unchanged;
    numpy inputs take ART's own path.

    :param classifier: The classifier whose model, clip values and preprocessing are shared.
    :param loss: Loss module called as ``loss(logits, y)``; :class:`SoftLabelKLLoss` by default.
    :param amp_dtype: Run the model's forward pass under autocast to this dtype (``torch.bfloat16``) in the tensor
        path; the loss is computed in float32. None (default): float32.
    :param channels_last: Feed the model channels_last inputs in the tensor path (convert the model with
        ``model.to(memory_format=torch.channels_last)`` to benefit).
    """

    def __init__(
        self,
        classifier: PyTorchClassifier,
        loss: torch.nn.Module | None = None,
        *,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool = False,
    ) -> None:
        check_speed_options(amp_dtype, channels_last, tuple(classifier.input_shape))
        self.amp_dtype = amp_dtype
        self.channels_last = channels_last
        super().__init__(**classifier_settings(classifier, loss=loss if loss is not None else SoftLabelKLLoss()))
        self._forward: Callable[[torch.Tensor], torch.Tensor] = (
            self.model if identity_preprocessing(self) else lambda inputs: forward_logits(self, inputs)
        )

    def loss_gradient(  # type: ignore[override]
        self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, training_mode: bool = False, **kwargs
    ) -> np.ndarray | torch.Tensor:
        if not isinstance(x, torch.Tensor) or not self.all_framework_preprocessing:
            return super().loss_gradient(x, y, training_mode=training_mode, **kwargs)
        target = y if isinstance(y, torch.Tensor) else torch.as_tensor(y, device=x.device)
        with torch.enable_grad():
            x_grad = x.detach().requires_grad_(True)
            loss = self._loss(model_forward(self._forward, x_grad, self.amp_dtype, self.channels_last), target)
            (grad,) = torch.autograd.grad(loss, x_grad)
        return grad


class InputGradientPGD(ProjectedGradientDescentPyTorch):
    """ART's PyTorch PGD with the papers' random starts and a tensor-in, tensor-out path.

    :param estimator: The classifier to attack; wrap it in :class:`InputGradientClassifier` for input-only
        gradients.
    :param norm: ``np.inf`` (default) or 2.
    :param eps: Radius of the perturbation ball, on the scale of ``clip_values``.
    :param eps_step: Step size per iteration.
    :param max_iter: Number of iterations.
    :param random_init: ``"gaussian"`` (x + init_std * N(0, I), unclipped), ``"uniform"`` (in the eps ball,
        clipped) or ``"none"``.
    :param init_std: Standard deviation of the Gaussian start (0.001 in RSLAD and TRADES).
    :param batch_size: Batch size of :meth:`generate` (numpy path).
    :param seed: Seed of the generator that draws the random starts.

    | Paper link: https://arxiv.org/abs/1706.06083 (PGD), https://arxiv.org/abs/2108.07969 (RSLAD's start)
    """

    def __init__(
        self,
        estimator: PyTorchClassifier,
        norm: float | str = np.inf,
        eps: float = 8 / 255,
        eps_step: float = 2 / 255,
        max_iter: int = 10,
        random_init: RandomInit = "gaussian",
        init_std: float = 0.001,
        batch_size: int = 128,
        seed: int | None = 0,
        verbose: bool = False,
    ) -> None:
        if random_init not in RANDOM_INITS:
            raise ValueError(f"`random_init` must be one of {RANDOM_INITS}, got {random_init!r}.")
        if init_std < 0:
            raise ValueError(f"`init_std` must be >= 0, got {init_std}.")
        super().__init__(
            estimator,
            norm=norm,
            eps=eps,
            eps_step=eps_step,
            max_iter=max_iter,
            num_random_init=0 if random_init == "none" else 1,
            batch_size=batch_size,
            verbose=verbose,
        )
        self.random_init = random_init
        self.init_std = init_std
        self.generator = torch.Generator(device=estimator.device)
        if seed is not None:
            self.generator.manual_seed(seed)
        self._clip_cache: dict[torch.device, ClipBounds] = {}

    def _clip_bounds(self, device: torch.device) -> ClipBounds:
        # Python floats for scalar clip values: clamp's scalar kernel is faster than its tensor-bound one.
        if device not in self._clip_cache:
            clip = self.estimator.clip_values
            if clip is None:
                self._clip_cache[device] = None
            elif np.ndim(clip[0]) == 0 and np.ndim(clip[1]) == 0:
                self._clip_cache[device] = (float(clip[0]), float(clip[1]))
            else:
                self._clip_cache[device] = (
                    torch.as_tensor(np.asarray(clip[0], dtype=np.float32), device=device),
                    torch.as_tensor(np.asarray(clip[1], dtype=np.float32), device=device),
                )
        return self._clip_cache[device]

    def _clip(self, x: torch.Tensor) -> torch.Tensor:
        bounds = self._clip_bounds(x.device)
        return x if bounds is None else torch.clamp(x, bounds[0], bounds[1])  # type: ignore[arg-type]

    def _random_start(self, x: torch.Tensor, eps: float | np.ndarray) -> torch.Tensor:
        if self.random_init == "gaussian":
            noise = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
            return x + self.init_std * noise
        if self.norm in (np.inf, "inf") and np.isscalar(eps):
            noise = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
            return self._clip(x + (2.0 * noise - 1.0) * float(eps))
        flat = random_sphere(x.shape[0], int(np.prod(x.shape[1:])), eps, self.norm)
        return self._clip(x + torch.from_numpy(flat.reshape(x.shape).astype(np.float32)).to(x.device))

    def _compute_pytorch(  # type: ignore[override]
        self,
        x: torch.Tensor,
        x_init: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor | None,
        eps: float | np.ndarray,
        eps_step: float | np.ndarray,
        random_init: bool,
        momentum: torch.Tensor,
    ) -> torch.Tensor:
        x_adv = self._random_start(x, eps) if random_init else x
        perturbation = self._compute_perturbation_pytorch(x_adv, y, mask, momentum)
        x_adv = self._apply_perturbation_pytorch(x_adv, perturbation, eps_step)
        return x_init + self._projection(x_adv - x_init, eps, self.norm)

    def _compute_perturbation_pytorch(  # type: ignore[override]
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None, momentum: torch.Tensor
    ) -> torch.Tensor:
        # ART's L-inf step is sign(grad) after a NaN check that waits for the device on every step; NaN signs are
        # zeroed in _apply_perturbation_pytorch instead, as ART zeroes NaN gradients. Other cases go to ART.
        if self.norm not in (np.inf, "inf") or mask is not None or self.decay is not None \
                or self.summary_writer is not None:
            return super()._compute_perturbation_pytorch(x, y, mask, momentum)
        sign = self.estimator.loss_gradient(x=x, y=y).sign()
        return -sign if self.targeted else sign

    def _apply_perturbation_pytorch(  # type: ignore[override]
        self, x: torch.Tensor, perturbation: torch.Tensor, eps_step: float | np.ndarray
    ) -> torch.Tensor:
        direction = torch.nan_to_num(perturbation, nan=0.0)
        if np.isscalar(eps_step):
            return self._clip(torch.add(x, direction, alpha=float(eps_step)))  # one fused kernel for x + step * d
        step = direction * torch.as_tensor(np.asarray(eps_step, dtype=np.float32), device=x.device)
        return self._clip(x + step)

    @staticmethod
    def _projection(  # type: ignore[override]
        values: torch.Tensor, eps: float | np.ndarray, norm_p: float | str, *, suboptimal: bool = True
    ) -> torch.Tensor:
        if norm_p in (np.inf, "inf") and np.isscalar(eps):
            return values.clamp(-float(eps), float(eps))
        return ProjectedGradientDescentPyTorch._projection(values, eps, norm_p, suboptimal=suboptimal)

    def generate_tensor(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Craft x' for one batch that is already on the device; ``y`` as the estimator's loss expects it.

        Returns a detached tensor on the same device. No numpy round trip and no success-rate predictions.
        """
        x_init = x.detach()
        x_adv = x_init
        momentum = torch.zeros_like(x_init) if self.decay is not None else x_init
        for step in range(self.max_iter):
            self._i_max_iter = step
            x_adv = self._compute_pytorch(
                x_adv, x_init, y, None, self.eps, self.eps_step, self.num_random_init > 0 and step == 0, momentum
            )
        return x_adv.detach()
