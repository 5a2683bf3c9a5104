"""InputGradientPGD and InputGradientClassifier: ART internals pinned, eps ball, starts, and the plain RSLAD loop."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from art.attacks.evasion import ProjectedGradientDescentPyTorch
from art.estimators.classification import PyTorchClassifier

from art_rslad import AdversarialTrainerRSLAD
from art_rslad.attacks import InputGradientClassifier, InputGradientPGD
from art_rslad.losses import kl_per_sample
from art_rslad.trainers.base import Batch

SHAPE = (1, 8, 8)
EPS, EPS_STEP = 0.1, 0.025

# The ART 1.20 private methods InputGradientPGD overrides, with their parameters (name, kind). If ART changes any
# of them, the override may silently stop being called or be called wrongly: re-read ART and update both.
ART_PRIVATE_SIGNATURES = {
    "_compute_pytorch": ["self", "x", "x_init", "y", "mask", "eps", "eps_step", "random_init", "momentum"],
    "_compute_perturbation_pytorch": ["self", "x", "y", "mask", "momentum"],
    "_apply_perturbation_pytorch": ["self", "x", "perturbation", "eps_step"],
    "_projection": ["values", "eps", "norm_p", "suboptimal"],
}


class TinyNet(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.bn(self.conv(x))).flatten(1))


def classifier(seed: int = 0) -> PyTorchClassifier:
    model = TinyNet(seed)
    return PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=SHAPE, nb_classes=10,
                             optimizer=torch.optim.SGD(model.parameters(), lr=0.1), clip_values=(0.0, 1.0),
                             device_type="cpu")


def fixed_batch(nb: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.rand((nb, *SHAPE), generator=generator)
    x[:, :, 0] = 0.0  # pixels on the clip boundary, where an unclipped start leaves [0, 1]
    x[:, :, -1] = 1.0
    teacher_probs = F.softmax(3 * torch.randn(nb, 10, generator=generator), dim=1)
    return x, teacher_probs


def attack(target: PyTorchClassifier, random_init: str = "gaussian", seed: int = 3) -> InputGradientPGD:
    target.model.eval()
    return InputGradientPGD(InputGradientClassifier(target), eps=EPS, eps_step=EPS_STEP, max_iter=10,
                            random_init=random_init, seed=seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(ART_PRIVATE_SIGNATURES))
def test_art_private_methods_keep_the_signatures_we_override(name: str) -> None:
    art_method = inspect.getattr_static(ProjectedGradientDescentPyTorch, name)
    ours = inspect.getattr_static(InputGradientPGD, name)
    assert type(ours) is type(art_method), f"{name}: static/instance kind differs from ART's"
    art_parameters = list(inspect.signature(getattr(ProjectedGradientDescentPyTorch, name)).parameters)
    assert art_parameters == ART_PRIVATE_SIGNATURES[name], f"ART changed {name}; re-check InputGradientPGD"
    assert list(inspect.signature(getattr(InputGradientPGD, name)).parameters) == art_parameters
    assert name in vars(InputGradientPGD), f"InputGradientPGD no longer overrides {name}"


@pytest.mark.parametrize("random_init", ["gaussian", "uniform", "none"])
def test_adversarial_inputs_stay_in_eps_ball_and_clip_range(random_init: str) -> None:
    x, teacher_probs = fixed_batch()
    x_adv = attack(classifier(), random_init).generate_tensor(x, teacher_probs)
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= -1e-6 and x_adv.max() <= 1.0 + 1e-6
    assert not x_adv.requires_grad


def test_gaussian_start_is_unclipped_x_plus_small_noise_before_first_step() -> None:
    x, teacher_probs = fixed_batch()
    pgd = attack(classifier(), "gaussian", seed=3)
    seen: list[torch.Tensor] = []
    original = pgd.estimator.loss_gradient

    def record(x: torch.Tensor, y: torch.Tensor, **kwargs: object) -> torch.Tensor:
        seen.append(x.detach().clone())
        return original(x, y, **kwargs)

    pgd.estimator.loss_gradient = record  # type: ignore[method-assign]
    pgd.generate_tensor(x, teacher_probs)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    assert len(seen) == 10
    torch.testing.assert_close(seen[0], x + 0.001 * noise, rtol=0, atol=0)
    assert seen[0].min() < 0.0 and seen[0].max() > 1.0  # not clipped before the first step


def test_attack_raises_the_kl_on_average() -> None:
    x, teacher_probs = fixed_batch(32)
    target = classifier()
    x_adv = attack(target).generate_tensor(x, teacher_probs)
    with torch.no_grad():
        natural = kl_per_sample(teacher_probs, target.model(x))
        adversarial = kl_per_sample(teacher_probs, target.model(x_adv))
    assert adversarial.mean() > natural.mean() + 0.01
    assert (adversarial > natural).float().mean() > 0.9


def plain_rslad_inner_loop(model: torch.nn.Module, x: torch.Tensor, teacher_probs: torch.Tensor, seed: int
                           ) -> torch.Tensor:
    """The official RSLAD inner maximisation, written in plain PyTorch with a seeded start."""
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    x_adv = x.detach() + 0.001 * noise
    for _ in range(10):
        x_adv.requires_grad_(True)
        loss = F.kl_div(F.log_softmax(model(x_adv), dim=1), teacher_probs, reduction="sum")
        (grad,) = torch.autograd.grad(loss, [x_adv])
        x_adv = x_adv.detach() + EPS_STEP * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0.0, 1.0)
    return x_adv


def test_generate_tensor_reproduces_plain_rslad_inner_loop() -> None:
    x, teacher_probs = fixed_batch()
    target = classifier()
    x_adv = attack(target, "gaussian", seed=5).generate_tensor(x, teacher_probs)
    expected = plain_rslad_inner_loop(target.model, x, teacher_probs, seed=5)
    assert (x_adv - x).abs().max() > EPS / 2  # the attack moved
    torch.testing.assert_close(x_adv, expected, rtol=0, atol=1e-6)


def test_numpy_generate_matches_tensor_path() -> None:
    x, teacher_probs = fixed_batch()
    tensor_adv = attack(classifier(), "gaussian", seed=2).generate_tensor(x, teacher_probs)
    numpy_adv = attack(classifier(), "gaussian", seed=2).generate(x.numpy(), y=teacher_probs.numpy())
    np.testing.assert_allclose(numpy_adv, tensor_adv.numpy(), rtol=0, atol=1e-6)


def test_input_gradient_leaves_no_parameter_gradient_and_keeps_mode() -> None:
    x, teacher_probs = fixed_batch()
    target = classifier()
    target.model.train()
    grad = InputGradientClassifier(target).loss_gradient(x, teacher_probs)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in target.model.parameters())
    assert target.model.training


class ProbeRSLAD(AdversarialTrainerRSLAD):
    """Records the student's and teacher's state when the loss is built, i.e. right after the inner maximisation."""

    def _loss(self, batch: Batch, x_adv: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        models = {"student": self._classifier.model, "teacher": self.teacher.model}  # type: ignore[union-attr]
        self.after_attack = {
            name: ({k: v.clone() for k, v in model.state_dict().items()},
                   [p.grad for p in model.parameters()]) for name, model in models.items()
        }
        return super()._loss(batch, x_adv)


def test_inner_maximisation_changes_no_parameter_and_leaves_no_gradient() -> None:
    student, teacher = classifier(0), classifier(1)
    before = {name: {k: v.clone() for k, v in model.model.state_dict().items()}
              for name, model in (("student", student), ("teacher", teacher))}
    trainer = ProbeRSLAD(student, teacher, eps=EPS, eps_step=EPS_STEP, verbose=False)
    x, _ = fixed_batch()
    trainer.fit(x.numpy(), np.arange(len(x)) % 10, batch_size=len(x), nb_epochs=1)
    for name in ("student", "teacher"):
        state, grads = trainer.after_attack[name]
        assert all(grad is None for grad in grads), f"{name} has parameter gradients after the attack"
        for key, value in before[name].items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=f"{name}.{key} changed")


@pytest.mark.parametrize("preprocessing", [(0.0, 1.0), (0.5, 0.2)])
def test_input_gradient_goes_through_the_classifiers_preprocessing(preprocessing: tuple[float, float]) -> None:
    x, teacher_probs = fixed_batch()
    model = TinyNet(0).eval()
    target = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=SHAPE, nb_classes=10,
                               clip_values=(0.0, 1.0), preprocessing=preprocessing, device_type="cpu")
    grad = InputGradientClassifier(target).loss_gradient(x, teacher_probs)
    x_grad = x.clone().requires_grad_(True)
    mean, std = preprocessing
    F.kl_div(F.log_softmax(model((x_grad - mean) / std), dim=1), teacher_probs, reduction="sum").backward()
    assert x_grad.grad is not None
    torch.testing.assert_close(grad, x_grad.grad, rtol=1e-5, atol=1e-7)


def test_per_feature_clip_values_are_respected() -> None:
    x, teacher_probs = fixed_batch()
    x = x * 0.8
    high = np.full(SHAPE, 0.8, dtype=np.float32)
    high[:, :4] = 0.5
    model = TinyNet(0).eval()
    target = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=SHAPE, nb_classes=10,
                               clip_values=(np.zeros(SHAPE, dtype=np.float32), high), device_type="cpu")
    x = torch.minimum(x, torch.from_numpy(high))
    x_adv = InputGradientPGD(InputGradientClassifier(target), eps=EPS, eps_step=EPS_STEP,
                             random_init="uniform").generate_tensor(x, teacher_probs)
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= -1e-6 and (x_adv <= torch.from_numpy(high) + 1e-6).all()
