"""What a new user's mistakes meet in the trainers: a clear error naming the argument, or a warning where a
setting is legal but probably not meant; and records that say what actually ran."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.data_generators import PyTorchDataGenerator
from conftest import TinyCNN, make_classifier
from torch.utils.data import DataLoader, TensorDataset

from art_rslad import AdversarialTrainerRSLAD, AdversarialTrainerSAT


@pytest.fixture
def student():
    torch.manual_seed(0)
    return make_classifier(TinyCNN(4))


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((16, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 16)


def test_cifars_default_eps_on_other_data_warns_and_an_explicit_eps_does_not(student, caplog):
    with caplog.at_level(logging.WARNING):
        trainer = AdversarialTrainerSAT(student, verbose=False)
    assert trainer.eps == pytest.approx(8 / 255) and trainer.eps_step == pytest.approx(2 / 255)
    assert "CIFAR's 8/255" in caplog.text and "0.1 for Fashion-MNIST" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        trainer = AdversarialTrainerSAT(student, eps=0.1, verbose=False)
    assert not caplog.text
    assert trainer.eps_step == pytest.approx(0.025)  # the step scales with eps


def test_an_attack_on_another_estimator_is_refused(student):
    torch.manual_seed(1)
    other = make_classifier(TinyCNN(4))
    attack = ProjectedGradientDescent(other, eps=0.1, eps_step=0.025, max_iter=2, verbose=False)
    with pytest.raises(ValueError, match="`attack` was built on another estimator than the student"):
        AdversarialTrainerSAT(student, eps=0.1, attack=attack, verbose=False)


def test_a_users_attack_is_recorded_with_the_budget_it_runs_with(student):
    attack = ProjectedGradientDescent(student, eps=0.2, eps_step=0.05, max_iter=3, verbose=False)
    trainer = AdversarialTrainerSAT(student, eps=0.1, attack=attack, verbose=False)
    settings = trainer.hyperparameters()["attack_settings"]
    assert settings["eps"] == pytest.approx(0.2) and settings["max_iter"] == 3 and settings["eps_step"] == 0.05


def test_soft_label_rows_are_refused_and_one_hot_rows_accepted(student, data):
    x, y = data
    trainer = AdversarialTrainerSAT(student, eps=0.1, max_iter=1, verbose=False)
    soft = np.full((len(y), 10), 0.1, dtype=np.float32)
    with pytest.raises(ValueError, match=r"`y` has rows that are not one-hot"):
        trainer.fit(x, soft, nb_epochs=1, batch_size=8)
    trainer.fit(x, np.eye(10, dtype=np.float32)[y], nb_epochs=1, batch_size=8)


def test_label_errors_name_the_labels_argument(student, data):
    x, y = data
    trainer = AdversarialTrainerSAT(student, eps=0.1, max_iter=1, verbose=False)
    with pytest.raises(ValueError, match=r"^`y` must lie in \[0, 9\]"):
        trainer.fit(x, y + 10, nb_epochs=1)
    with pytest.raises(ValueError, match=r"^The labels of `validation_data` must lie in"):
        trainer.fit(x, y, validation_data=(x, y - 20), nb_epochs=1)


def test_the_student_as_its_own_teacher_is_refused(student):
    with pytest.raises(ValueError, match="`teacher` is the student itself"):
        AdversarialTrainerRSLAD(student, student, eps=0.1, verbose=False)


def test_a_batch_size_of_zero_names_the_argument(student, data):
    trainer = AdversarialTrainerSAT(student, eps=0.1, max_iter=1, verbose=False)
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer, got 0"):
        trainer.fit(*data, batch_size=0, nb_epochs=1)


def test_an_attack_step_beyond_the_budget_is_refused(student):
    with pytest.raises(ValueError, match=r"`eps_step` \(0.2\) must not exceed `eps` \(0.1\)"):
        AdversarialTrainerSAT(student, eps=0.1, eps_step=0.2, verbose=False)


def test_restore_best_ends_with_the_best_epochs_weights_and_needs_validation_data(student, data):
    trainer = AdversarialTrainerSAT(student, eps=0.1, max_iter=1, verbose=False)
    with pytest.raises(ValueError, match=r"`restore_best=True` needs `validation_data`"):
        trainer.fit(*data, batch_size=16, nb_epochs=1, restore_best=True)
    trainer.fit(*data, validation_data=data, batch_size=16, nb_epochs=2, restore_best=True)
    assert trainer.best_state_dict is not None
    weights = student.model.state_dict()
    assert all(torch.equal(weights[key], trainer.best_state_dict[key]) for key in weights)


def test_fit_generator_restores_the_best_epoch_too(student, data):
    x, y = data
    generator = PyTorchDataGenerator(DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                                batch_size=16), size=len(x), batch_size=16)
    trainer = AdversarialTrainerSAT(student, eps=0.1, max_iter=1, verbose=False)
    with pytest.raises(ValueError, match=r"`restore_best=True` needs `validation_data`"):
        trainer.fit_generator(generator, nb_epochs=1, restore_best=True)
    trainer.fit_generator(generator, nb_epochs=3, validation_data=data, restore_best=True)
    weights = student.model.state_dict()
    assert all(torch.equal(weights[key], trainer.best_state_dict[key]) for key in weights)


def test_a_second_fit_records_its_own_epochs_from_one(student, data):
    trainer = AdversarialTrainerSAT(student, eps=0.1, max_iter=1, verbose=False)
    trainer.fit(*data, batch_size=16, nb_epochs=2)
    trainer.fit(*data, batch_size=16, nb_epochs=1)
    assert [record["epoch"] for record in trainer.history] == [1]


def test_a_users_attack_gives_the_run_its_budget_where_none_is_passed(student, caplog):
    attack = ProjectedGradientDescent(student, eps=0.05, eps_step=0.01, max_iter=3, verbose=False)
    with caplog.at_level(logging.WARNING):
        trainer = AdversarialTrainerSAT(student, attack=attack, verbose=False)
    settings = trainer.hyperparameters()
    assert (settings["eps"], settings["eps_step"]) == (0.05, 0.01)  # not CIFAR's unused 8/255
    assert "CIFAR" not in caplog.text


def test_resuming_into_a_student_of_another_width_names_resume_from(student, data, tmp_path):
    AdversarialTrainerSAT(student, eps=0.1, max_iter=1, verbose=False).fit(*data, batch_size=16, nb_epochs=1,
                                                                          checkpoint_dir=tmp_path)
    wider = make_classifier(TinyCNN(8))
    trainer = AdversarialTrainerSAT(wider, eps=0.1, max_iter=1, verbose=False)
    with pytest.raises(ValueError, match=r"`resume_from` .*last\.pt holds weights of another model: .*shape "
                                         r"mismatches.*Resume with the student"):
        trainer.fit(*data, batch_size=16, nb_epochs=1, resume_from=tmp_path / "last.pt")
