"""evaluate_robustness and RobustnessReport on tiny synthetic models (a few seconds on one thread)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from art.estimators.classification import BlackBoxClassifierNeuralNetwork, PyTorchClassifier
from pyautoattack import AutoAttack

from art_rslad.evaluation import (
    ATTACKS,
    AttackContext,
    AttackResult,
    CWMarginLoss,
    RobustnessReport,
    consistency_warnings,
    evaluate_robustness,
    pgd_step_sizes,
)
from art_rslad.losses import cw_margin_loss

SHAPE = (1, 8, 8)
EPS = 0.1
ALL_ATTACKS = tuple(ATTACKS)


def _mlp(seed: int, *head: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(*head, torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 10))


def _classifier(model: torch.nn.Module) -> PyTorchClassifier:
    return PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=SHAPE, nb_classes=10,
                             clip_values=(0.0, 1.0), device_type="cpu")


def _prototype_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten fixed class prototypes in [0.4, 0.6]^64 plus small noise: easy to learn, easy to attack."""
    prototypes = np.random.default_rng(123).uniform(0.4, 0.6, (10, *SHAPE))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    x = np.clip(prototypes[labels] + rng.normal(0, 0.02, (n, *SHAPE)), 0, 1).astype(np.float32)
    return x, labels


@pytest.fixture(scope="module")
def trained() -> tuple[PyTorchClassifier, np.ndarray, np.ndarray]:
    """An undefended MLP trained naturally on the prototype data, and 32 test inputs."""
    model = _mlp(0)
    x_train, y_train = _prototype_data(512, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(x_train)), torch.from_numpy(y_train)).backward()
        optimizer.step()
    x, y = _prototype_data(32, seed=2)
    return _classifier(model.eval()), x, y


@pytest.fixture(scope="module")
def full_report(trained: tuple[PyTorchClassifier, np.ndarray, np.ndarray]) -> RobustnessReport:
    classifier, x, y = trained
    return evaluate_robustness(classifier, x, y, eps=EPS, attacks=ALL_ATTACKS, surrogate=_classifier(_mlp(5)),
                               n_queries=100, batch_size=16, verbose=False)


@pytest.mark.parametrize("name", [name for name in ALL_ATTACKS if name != "autoattack"])
def test_each_attack_stays_in_eps_ball_and_clip_range(
    name: str, trained: tuple[PyTorchClassifier, np.ndarray, np.ndarray]
) -> None:
    classifier, x, y = trained
    context = AttackContext(classifier=classifier, eps=EPS, batch_size=16, seed=0, n_queries=100,
                            surrogate=_classifier(_mlp(5)), verbose=False)
    x_copy = x.copy()
    x_adv = ATTACKS[name].build(context).generate(x, y)
    assert np.array_equal(x, x_copy)
    assert x_adv.shape == x.shape
    assert np.abs(x_adv - x).max() <= EPS + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_report_bounds_and_accuracy_never_above_clean(full_report: RobustnessReport) -> None:
    assert full_report.attacks == list(ALL_ATTACKS)
    accuracy = full_report.accuracy
    assert accuracy["clean"] >= 0.9
    for name in ALL_ATTACKS:
        assert full_report.max_perturbation[name] <= EPS + 1e-6, name
        assert accuracy[name] <= accuracy["clean"], name
        assert full_report.correct[name].dtype == bool and full_report.correct[name].shape == (32,)
        assert full_report.seconds[name] >= 0
    # AutoAttack only ever replaces an input it has broken, so per input it cannot beat clean.
    assert not np.any(full_report.correct["autoattack"] & ~full_report.correct["clean"])
    assert full_report.worst_case_accuracy <= min(accuracy.values())


def test_report_keeps_the_labels_for_class_wise_accuracy(
    trained: tuple[PyTorchClassifier, np.ndarray, np.ndarray], full_report: RobustnessReport
) -> None:
    _, _, y = trained
    assert full_report.labels is not None and full_report.labels.tolist() == y.tolist()
    for name in ALL_ATTACKS:
        by_class = full_report.per_class_accuracy(name)
        counts = np.bincount(y)
        # the class accuracies weighted by the class sizes give back the overall accuracy
        assert np.nansum(np.asarray(by_class) * counts) / len(y) == pytest.approx(full_report.accuracy[name])
        assert full_report.to_dict()["worst_class"][name]["accuracy"] == pytest.approx(np.nanmin(by_class))


def test_undefended_model_drops_to_near_zero_under_pgd(full_report: RobustnessReport) -> None:
    assert full_report.accuracy["pgd_sat"] <= 0.1
    assert full_report.accuracy["autoattack"] <= full_report.accuracy["pgd_sat"] + 0.05
    assert full_report.checks["large_eps_accuracy"] <= 0.1
    assert full_report.checks["zero_gradient_inputs"] == 0


def test_pgd_parameters_follow_methods_md() -> None:
    steps = pgd_step_sizes(8 / 255)
    assert steps["pgd_sat"] == pytest.approx(2 / 255)
    assert steps["pgd_trades"] == pytest.approx(0.003)
    assert steps["cw_inf"] == pytest.approx(2 / 255)
    assert pgd_step_sizes(0.1)["pgd_trades"] == pytest.approx(0.003 * 0.1 / (8 / 255))
    classifier = _classifier(_mlp(0))
    context = AttackContext(classifier=classifier, eps=8 / 255, batch_size=4, seed=0, n_queries=10,
                            surrogate=None, verbose=False)
    for name, loss in (("pgd_sat", "SoftLabelKLLoss"), ("pgd_trades", "SoftLabelKLLoss"), ("cw_inf", "CWMarginLoss")):
        settings = ATTACKS[name].build(context).settings
        assert settings["max_iter"] == 20 and settings["random_init"] == "uniform", name
        assert settings["eps_step"] == pytest.approx(steps[name]) and settings["loss"] == loss, name
    assert ATTACKS["cw_inf"].build(context).settings["kappa"] == 50.0


def test_cw_loss_module_is_minus_the_summed_margin_and_pgd_lowers_the_margin(
    trained: tuple[PyTorchClassifier, np.ndarray, np.ndarray],
) -> None:
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    one_hot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert CWMarginLoss()(logits, one_hot).item() == pytest.approx(-(51.0 + 46.0))
    classifier, x, y = trained
    context = AttackContext(classifier=classifier, eps=EPS, batch_size=16, seed=0, n_queries=10, surrogate=None,
                            verbose=False)
    x_adv = ATTACKS["cw_inf"].build(context).generate(x, y)
    labels = torch.from_numpy(y)
    with torch.no_grad():
        before = cw_margin_loss(classifier.model(torch.from_numpy(x)), labels)
        after = cw_margin_loss(classifier.model(torch.from_numpy(x_adv)), labels)
    assert torch.all(after < before)


def test_autoattack_through_the_report_equals_pyautoattack_directly(
    trained: tuple[PyTorchClassifier, np.ndarray, np.ndarray],
) -> None:
    classifier, x, y = trained
    x, y = x[:8], y[:8]
    # At eps 0.035 APGD-CE breaks some inputs, APGD-T more, and FAB-T and Square run on the rest (~10 s).
    report = evaluate_robustness(classifier, x, y, eps=0.035, attacks="autoattack", batch_size=8, seed=3,
                                 verbose=False)
    adversary = AutoAttack(classifier.model.eval(), eps=0.035, norm="Linf", version="standard", seed=3)
    _, y_adv = adversary.run_standard_evaluation(torch.from_numpy(x), torch.from_numpy(y), batch_size=8)
    direct = (y_adv == torch.from_numpy(y)).numpy()
    assert np.array_equal(report.correct["autoattack"], direct)
    assert 0 < report.accuracy["autoattack"] < 1
    assert report.settings["autoattack"]["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]


def test_worst_case_is_the_per_input_and_over_attacks() -> None:
    report = RobustnessReport(eps=0.1, n_inputs=4)
    for name, kind, seconds, flags in [("clean", "clean", 0.0, [True, True, True, False]),
                                       ("pgd_sat", "white-box", 1.0, [True, False, True, False]),
                                       ("square", "black-box", 2.0, [False, True, True, False])]:
        report.add(AttackResult(name=name, kind=kind, correct=np.array(flags), seconds=seconds, max_perturbation=0.1))
    assert report.robust_to_all.tolist() == [False, False, True, False]
    assert report.worst_case_accuracy == 0.25
    assert min(report.accuracy.values()) == 0.5  # the worst case is below every single attack
    restored = RobustnessReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert restored.robust_to_all.tolist() == report.robust_to_all.tolist()
    assert restored.accuracy == report.accuracy
    table = report.to_markdown()
    assert "| pgd_sat | white-box | 50.00 | 1.0 |" in table and "| 25.00 |" in table


def test_gradient_masking_model_triggers_integrity_warnings() -> None:
    class Round(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.round(x * 4) / 4

    classifier = _classifier(_mlp(0, Round()).eval())
    x, _ = _prototype_data(16, seed=2)
    y = classifier.predict(x).argmax(1)
    report = evaluate_robustness(classifier, x, y, eps=0.2, attacks=("clean", "pgd_sat", "square"),
                                 n_queries=50, verbose=False)
    assert report.checks["zero_gradient_inputs"] == 16
    assert any("all-zero input gradient" in warning for warning in report.warnings)
    assert any("sign of gradient masking" in warning for warning in report.warnings)
    assert report.accuracy["pgd_sat"] > report.accuracy["square"]


def test_probability_outputs_and_pyautoattack_checks_are_reported() -> None:
    classifier = _classifier(torch.nn.Sequential(_mlp(0), torch.nn.Softmax(dim=1)).eval())
    x, _ = _prototype_data(6, seed=2)
    wrong = (classifier.predict(x).argmax(1) + 1) % 10  # all inputs misclassified: AutoAttack runs its checks only
    report = evaluate_robustness(classifier, x, wrong, eps=0.1, attacks=("clean", "autoattack"), verbose=False)
    assert report.checks["probability_outputs"]
    assert any(warning.startswith("The model's outputs look like probabilities") for warning in report.warnings)
    assert any(warning.startswith("pyautoattack: it seems that the output is a probability distribution")
               for warning in report.warnings)


def test_randomised_model_is_reported() -> None:
    class Noise(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 0.1 * torch.randn_like(x)

    classifier = _classifier(_mlp(0, Noise()).eval())
    x, y = _prototype_data(8, seed=2)
    report = evaluate_robustness(classifier, x, y, eps=0.1, attacks="clean", verbose=False)
    assert any("changed by" in warning for warning in report.warnings)


def test_consistency_warnings() -> None:
    kinds = {"fgsm": "white-box", "pgd_sat": "white-box", "autoattack": "white-box", "square": "black-box"}
    consistent = {"fgsm": 0.6, "pgd_sat": 0.5, "autoattack": 0.45, "square": 0.55}
    assert consistency_warnings(consistent, kinds) == []
    inverted = {"fgsm": 0.3, "pgd_sat": 0.5, "autoattack": 0.6, "square": 0.2}
    warnings = consistency_warnings(inverted, kinds)
    assert len(warnings) == 4  # AA > fgsm, AA > pgd_sat, fgsm < pgd_sat, square < strongest white-box
    assert sum("autoattack" in warning for warning in warnings) == 2


@pytest.mark.parametrize("training", [True, False])
def test_model_mode_is_restored(training: bool) -> None:
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(1), _mlp(0))
    classifier = _classifier(model.train(training))
    x, y = _prototype_data(8, seed=2)
    evaluate_robustness(classifier, x, y, eps=0.1, attacks=("clean", "fgsm", "pgd_sat"), verbose=False)
    assert all(module.training == training for module in model.modules())


def test_state_path_resumes_finished_attacks(
    trained: tuple[PyTorchClassifier, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    classifier, x, y = trained
    state = tmp_path / "state.json"
    first = evaluate_robustness(classifier, x, y, eps=EPS, attacks=("clean", "pgd_sat"), state_path=state,
                                verbose=False)
    second = evaluate_robustness(classifier, x, y, eps=EPS, attacks=("clean", "pgd_sat", "cw_inf"),
                                 state_path=state, verbose=False)
    assert second.seconds["pgd_sat"] == first.seconds["pgd_sat"]  # restored, not run again
    assert np.array_equal(second.correct["pgd_sat"], first.correct["pgd_sat"])
    assert second.attacks == ["clean", "pgd_sat", "cw_inf"]
    assert RobustnessReport.from_json(state).attacks == ["clean", "pgd_sat", "cw_inf"]
    with pytest.raises(ValueError, match="state_path"):
        evaluate_robustness(classifier, x, y, eps=2 * EPS, attacks="clean", state_path=state, verbose=False)


def test_bad_input_raises_clear_errors(trained: tuple[PyTorchClassifier, np.ndarray, np.ndarray]) -> None:
    classifier, x, y = trained
    with pytest.raises(ValueError, match="known attacks: clean, fgsm"):
        evaluate_robustness(classifier, x, y, eps=EPS, attacks=("pgd",))
    with pytest.raises(ValueError, match="surrogate"):
        evaluate_robustness(classifier, x, y, eps=EPS, attacks=("transfer_pgd",))
    with pytest.raises(ValueError, match="eps"):
        evaluate_robustness(classifier, x, y, eps=0.0, attacks="clean")
    with pytest.raises(ValueError, match="clip_values"):
        evaluate_robustness(classifier, x * 255, y, eps=EPS, attacks="clean")
    with pytest.raises(ValueError, match="do not match"):
        evaluate_robustness(classifier, x, y[:-1], eps=EPS, attacks="clean")
    black_box = BlackBoxClassifierNeuralNetwork(classifier.predict, SHAPE, 10, clip_values=(0.0, 1.0))
    with pytest.raises(ValueError, match="loss gradients"):
        evaluate_robustness(black_box, x, y, eps=EPS, attacks=("clean", "pgd_sat"))
    report = evaluate_robustness(black_box, x, y, eps=EPS, attacks=("clean", "square"), n_queries=20,
                                 verbose=False)
    assert report.accuracy["square"] <= report.accuracy["clean"]
