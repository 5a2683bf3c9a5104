"""ART's own defences in our harness: each adapter runs its ART class, our eps on the [0, 1] scale, honest refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from art.defences.preprocessor.preprocessor import Preprocessor
from art.estimators.classification import PyTorchClassifier
from conftest import TinyCNN, make_classifier

from art_rslad.estimators import classifier_like
from art_rslad.evaluation import defended_classifier, evaluate_preprocessing_defence
from art_rslad.trainers.art import _seeded
from art_rslad.trainers.art_adversarial import ArtAWP, ArtFBF, ArtMadryPGD, ArtOAAT, ArtTRADES
from art_rslad.trainers.art_distillation import ArtDefensiveDistillation, SoftLabelNLL, TemperatureSoftmax
from art_rslad.trainers.registry import METHODS, get_method

EPS = 0.1
#: Largest |x' - x| each ART class reaches in one epoch, as a fraction of eps (OAAT starts its eps ramp at eps / 4).
REACH = {"art-madry-pgd": 1.0, "art-trades": 1.0, "art-awp": 1.0, "art-fbf": 1.0, "art-oaat": 0.25}


@pytest.fixture(scope="module")
def tiny(fmnist) -> tuple[np.ndarray, np.ndarray]:
    x, y, _, _ = fmnist
    return x[:128], y[:128]


def _classifier(model: torch.nn.Module | None = None, lr: float = 0.05):
    torch.manual_seed(0)
    return make_classifier(model if model is not None else TinyCNN(4), lr=lr)


def _spy(monkeypatch: pytest.MonkeyPatch, cls: type, *attributes: str) -> list[type]:
    """Record the class of every object whose ``attributes`` (e.g. ``fit``) ran, then run the original."""
    calls: list[type] = []

    def spy_on(original):
        def spy(self, *args, **kwargs):
            calls.append(type(self))
            return original(self, *args, **kwargs)

        return spy

    for attribute in attributes:
        if hasattr(cls, attribute):
            monkeypatch.setattr(cls, attribute, spy_on(getattr(cls, attribute)))
    return calls


@pytest.mark.parametrize("name", sorted(REACH))
def test_adapter_trains_through_its_art_class_within_eps(name, tiny, monkeypatch):
    x, y = tiny
    adapter_class = get_method(name).trainer
    calls = _spy(monkeypatch, adapter_class.art_class, "fit", "fit_generator")
    classifier = _classifier()
    before = {key: value.clone() for key, value in classifier.model.state_dict().items()}
    kwargs = {"eps": EPS} if "max_iter" in adapter_class.fixed_settings else {"eps": EPS, "max_iter": 2}
    adapter = adapter_class(classifier, seed=0, verbose=False, **kwargs)
    seen: list[torch.Tensor] = []
    classifier.model.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].detach().flatten(1)))
    adapter.fit(x, y, batch_size=64, nb_epochs=1)

    assert calls and all(cls is adapter_class.art_class for cls in calls)
    assert adapter.get_classifier() is classifier
    assert any(not torch.equal(before[key], value) for key, value in classifier.model.state_dict().items())
    # Every input the student saw lies within eps of a training image, and the attack reached the eps it was given:
    # eps is read on the [0, 1] scale (MadryPGD's 0-255 defaults would move pixels by up to 1).
    distance = torch.cdist(torch.cat(seen), torch.from_numpy(x).flatten(1), p=float("inf")).min(dim=1).values
    assert distance.max() <= EPS + 1e-5
    assert distance.max() >= 0.99 * REACH[name] * EPS
    assert len(adapter.history) == 1 and 0 < adapter.history[0]["train_seconds"] <= adapter.history[0]["seconds"]


@pytest.mark.parametrize("adapter_class", [ArtTRADES, ArtAWP])
def test_one_epoch_per_call_gives_the_numbers_of_one_art_fit_over_the_run(adapter_class, tiny, tmp_path):
    x, y = tiny[0][:80], tiny[1][:80]  # batches of 32: the last one is partial
    by_epoch = _classifier()
    adapter_class(by_epoch, eps=EPS, max_iter=2, verbose=False).fit(x, y, batch_size=32, nb_epochs=3)

    whole = _classifier()
    reference = adapter_class(whole, eps=EPS, max_iter=2, verbose=False)
    with _seeded(reference.seed):  # what the adapter's fit seeds
        art_trainer = reference._build(whole, 32, 3, tmp_path)
        art_trainer.fit(x, np.eye(10, dtype=np.float32)[y], batch_size=32, nb_epochs=3)
    trained = whole.model.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in by_epoch.model.state_dict().items())


def test_step_size_and_steps_reach_the_art_attack(tiny):
    x, y = tiny
    adapter = ArtMadryPGD(_classifier(), eps=EPS, eps_step=0.03, max_iter=2, verbose=False)
    adapter.fit(x[:64], y[:64], batch_size=64, nb_epochs=1)
    attack = adapter.art_trainer.attack
    assert (attack.eps, attack.eps_step, attack.max_iter) == (EPS, 0.03, 2)


def test_sequential_student_trains_through_art_trades_unchanged_in_structure(tiny):
    x, y = tiny
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    classifier = _classifier(model)
    keys = list(model.state_dict())
    scheduler = torch.optim.lr_scheduler.MultiStepLR(classifier.optimizer, milestones=[1], gamma=0.1)
    adapter = ArtTRADES(classifier, eps=EPS, max_iter=2, verbose=False)
    adapter.fit(x, y, validation_data=(x[:32], y[:32]), batch_size=64, nb_epochs=2, scheduler=scheduler)
    assert list(model.state_dict()) == keys and adapter.get_classifier().model is model
    # torch's MultiStepLR (refused by ART's own isinstance check) was stepped once per epoch
    assert [record["lr"] for record in adapter.history] == pytest.approx([0.05, 0.005])
    assert {"val_clean", "val_pgd"} <= set(adapter.history[-1]) and adapter.best_state_dict is not None


def test_temperature_softmax_is_papernots_soft_label():
    logits = torch.tensor([[2.0, -1.0, 0.5], [30.0, 10.0, -20.0]])
    temperature = 20.0
    expected = np.exp(logits.numpy() / temperature) / np.exp(logits.numpy() / temperature).sum(1, keepdims=True)
    module = TemperatureSoftmax(torch.nn.Identity(), temperature)
    np.testing.assert_allclose(module(logits).numpy(), expected, rtol=1e-6)
    assert not torch.allclose(module(logits), torch.softmax(logits, dim=1))
    # the distilled network's loss: cross-entropy of its probabilities against the teacher's soft labels
    soft_labels = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    nll = -(soft_labels.numpy() * np.log(expected)).sum(axis=1).mean()
    assert SoftLabelNLL()(module(logits), soft_labels).item() == pytest.approx(nll, rel=1e-6)


def test_defensive_distillation_runs_arts_transformer(tiny, monkeypatch):
    from art.defences.transformer.evasion import DefensiveDistillation

    x, y = tiny
    calls = _spy(monkeypatch, DefensiveDistillation, "__call__")
    classifier = _classifier()
    adapter = ArtDefensiveDistillation(classifier, temperature=50.0, verbose=False)
    adapter.fit(x, y, batch_size=64, nb_epochs=1)
    assert calls == [DefensiveDistillation]
    # the deployed student outputs logits at T = 1, its teacher was trained at T: both differ from probabilities
    outputs = classifier.predict(x[:8])
    assert not np.allclose(outputs.sum(axis=1), 1.0)
    assert adapter.teacher is not None and adapter.hyperparameters()["temperature"] == 50.0


def test_classifier_like_copies_the_wrapping_around_another_model():
    from art.defences.preprocessor import FeatureSqueezing

    own = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=4)
    student = _classifier()
    student = PyTorchClassifier(student.model, torch.nn.CrossEntropyLoss(), (1, 28, 28), 10,
                                optimizer=student.optimizer, clip_values=(0.0, 1.0), preprocessing=(0.5, 0.25),
                                preprocessing_defences=[own], device_type="cpu")
    other = TinyCNN(2)
    copy = classifier_like(student, other)
    assert copy.model is other and copy.optimizer is None and copy.loss is student.loss
    assert (copy.input_shape, copy.nb_classes, copy.channels_first, copy.device) == (
        student.input_shape, student.nb_classes, student.channels_first, student.device)
    np.testing.assert_array_equal(copy.clip_values, student.clip_values)
    assert copy.preprocessing_defences == [own] and copy.preprocessing is student.preprocessing
    bare = classifier_like(student, other, keep_preprocessing=False, loss=SoftLabelNLL())
    assert bare.preprocessing_operations == [] and isinstance(bare.loss, SoftLabelNLL)
    extra = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=1)
    assert classifier_like(student, defences=[extra]).preprocessing_defences == [extra, own]  # ``extra`` runs first


class _OpaqueDefence(Preprocessor):
    """A numpy defence with no gradient estimate: white-box attacks cannot reach through it."""

    def __init__(self) -> None:
        super().__init__(is_fitted=True, apply_predict=True)

    def __call__(self, x, y=None):
        return np.round(x * 4) / 4, y

    def estimate_gradient(self, x, grad):
        raise NotImplementedError


def test_masked_gradients_are_flagged_and_bpda_is_not_above_plain(fmnist):
    x, y, _, _ = fmnist
    classifier = _classifier(lr=0.1)
    classifier.fit(x[:512], y[:512], batch_size=64, nb_epochs=1, verbose=False)
    report = evaluate_preprocessing_defence(classifier, "jpeg", x[:12], y[:12], eps=EPS,
                                            attacks=("clean", "pgd_sat"), batch_size=12, verbose=False)
    assert report.accuracy["pgd_sat_bpda"] <= report.accuracy["pgd_sat"]
    assert report.worst_case_accuracy <= report.accuracy["pgd_sat_bpda"]
    assert any(w.startswith("[exact gradient]") and "all-zero input gradient" in w for w in report.warnings)
    assert not any(w.startswith("[bpda gradient]") and "all-zero" in w for w in report.warnings)
    if report.accuracy["pgd_sat"] > report.accuracy["pgd_sat_bpda"]:
        assert any("obfuscated gradients" in warning for warning in report.warnings)


def test_a_defence_without_gradient_gets_no_white_box_numbers(tiny):
    x, y = tiny
    classifier = _classifier()
    with pytest.raises(ValueError, match="no usable gradient estimate"):
        defended_classifier(classifier, _OpaqueDefence(), "bpda")
    with pytest.raises(ValueError, match="White-box attacks refused"):
        evaluate_preprocessing_defence(classifier, _OpaqueDefence(), x[:8], y[:8], eps=EPS, attacks=("pgd_sat",))
    report = evaluate_preprocessing_defence(classifier, _OpaqueDefence(), x[:8], y[:8], eps=EPS,
                                            attacks=("clean", "pgd_sat", "square"), n_queries=2, batch_size=8,
                                            verbose=False)
    assert set(report.attacks) == {"clean", "square"}
    assert any("White-box attacks refused" in warning for warning in report.warnings)


def test_bad_input_names_the_setting():
    classifier = _classifier()
    with pytest.raises(ValueError, match=r"known methods: .*art-madry-pgd, art-trades"):
        get_method("art-sat")
    with pytest.raises(ValueError, match=r"eps_step=0.02 .*1.25 \* eps"):
        ArtFBF(classifier, eps=EPS, eps_step=0.02)
    with pytest.raises(ValueError, match=r"max_iter=10 .*no adversarial step"):
        ArtDefensiveDistillation(classifier, eps=EPS, max_iter=10)
    with pytest.raises(ValueError, match="takes no `teacher`"):
        ArtTRADES(classifier, teacher=classifier)
    with pytest.raises(ValueError, match="SGD"):
        ArtOAAT(PyTorchClassifier(classifier.model, torch.nn.CrossEntropyLoss(), (1, 28, 28), 10,
                                  optimizer=torch.optim.Adam(classifier.model.parameters()), clip_values=(0.0, 1.0),
                                  device_type="cpu"),
                eps=EPS)
    x, y = np.zeros((4, 1, 28, 28), np.float32), np.zeros(4, np.int64)
    fbf = ArtFBF(classifier, eps=EPS)
    with pytest.raises(ValueError, match="cannot honour `scheduler`: FBF's own cyclic lr"):
        fbf.fit(x, y, scheduler=torch.optim.lr_scheduler.StepLR(classifier.optimizer, 1))
    kept, notes = ArtFBF.split_settings(eps=EPS, eps_step=0.025, max_iter=10, scheduler=None)
    assert kept == {"eps": EPS} and set(notes) == {"eps_step", "max_iter", "scheduler"}


def test_shared_settings_variant_drops_what_art_fixes_and_resumes_a_finished_run(tiny, tmp_path):
    x, y = tiny
    assert {"art-madry-pgd", "art-trades", "art-awp", "art-fbf", "art-oaat", "art-defensive-distillation"} <= set(
        METHODS)
    classifier = _classifier()
    scheduler = torch.optim.lr_scheduler.StepLR(classifier.optimizer, 1)
    trainer = METHODS["art-fbf"].trainer(classifier, eps=EPS, eps_step=0.025, max_iter=10, verbose=False)
    trainer.fit(x[:64], y[:64], validation_data=(x[:16], y[:16]), batch_size=32, nb_epochs=2, scheduler=scheduler,
                checkpoint_dir=tmp_path, checkpoint_interval=50)
    assert set(trainer.hyperparameters()["not_used"]) == {"eps_step", "max_iter", "scheduler"}
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file() and trainer.best_epoch == 2
    # FBF runs its whole schedule in one call: each epoch is credited the mean, and the record says so
    run_seconds = trainer.history[0]["run_train_seconds"]
    assert [record["train_seconds"] for record in trainer.history] == pytest.approx([run_seconds / 2] * 2)
    weights = {key: value.clone() for key, value in classifier.model.state_dict().items()}

    resumed = METHODS["art-fbf"].trainer(_classifier(), eps=EPS, eps_step=0.025, max_iter=10, verbose=False)
    resumed.fit(x[:64], y[:64], validation_data=(x[:16], y[:16]), batch_size=32, nb_epochs=2, scheduler=scheduler,
                resume_from=tmp_path / "last.pt")
    assert resumed.history == trainer.history
    assert all(torch.equal(weights[key], value) for key, value in resumed.get_classifier().model.state_dict().items())
    with pytest.raises(ValueError, match="only a finished run of the same settings"):
        resumed.fit(x[:64], y[:64], batch_size=32, nb_epochs=3, resume_from=tmp_path / "last.pt")


def test_cli_eval_with_a_defence_reports_both_views(tmp_path):
    from art_rslad.cli import main
    from art_rslad.models import create_model

    torch.manual_seed(0)
    weights = tmp_path / "student.pt"
    torch.save(create_model("cnn-small", 10, width=4).state_dict(), weights)
    arguments = ["eval", str(weights), "--model", "cnn-small", "--model-option", "width=4", "--dataset",
                 "fashion-mnist", "--nb-images", "8", "--batch-size", "8", "--attacks", "clean", "pgd_sat",
                 "--defence", "feature-squeezing", "--out", str(tmp_path / "eval"), "--quiet"]
    assert main(arguments) == 0
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert set(saved["accuracy"]) == {"clean", "pgd_sat", "pgd_sat_bpda"}
    assert {path.name for path in tmp_path.glob("eval.*.json")} == {"eval.exact.json", "eval.bpda.json"}
    assert main(arguments) == 2  # its files exist: refused without --resume
    (tmp_path / "eval.json").unlink()  # interrupted before the merge: the views' files alone are refused too
    assert main(arguments) == 2
    assert main([*arguments, "--resume"]) == 0
    resumed = json.loads((tmp_path / "eval.json").read_text())
    assert resumed["accuracy"] == saved["accuracy"] and resumed["seconds"] == saved["seconds"]  # restored, not rerun
