"""Bad input to evaluate_robustness is refused before any attack runs, with the argument named and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TinyCNN, make_classifier

from art_rslad.evaluation import evaluate_robustness


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((8, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 8)


@pytest.fixture
def classifier():
    torch.manual_seed(0)
    return make_classifier(TinyCNN(4))


def test_nan_inputs_are_refused(classifier, data):
    x, y = data
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`x` holds 1 NaN or infinite values"):
        evaluate_robustness(classifier, x, y, eps=0.1, attacks=["clean", "fgsm"], verbose=False)


def test_an_eps_beyond_the_input_range_is_refused(classifier, data):
    with pytest.raises(ValueError, match=r"`eps` must be in \(0, 1\].*got 2"):
        evaluate_robustness(classifier, *data, eps=2.0, attacks=["fgsm"], verbose=False)


def test_a_classifier_whose_model_has_other_outputs_names_nb_classes(data):
    torch.manual_seed(0)
    wrong = make_classifier(TinyCNN(4, nb_classes=7), nb_classes=10)
    with pytest.raises(ValueError, match=r"`classifier` announces nb_classes=10 but its model outputs shape \(1, 7\)"):
        evaluate_robustness(wrong, *data, eps=0.1, attacks=["clean"], verbose=False)


def test_a_corrupt_state_file_says_how_to_go_on(classifier, data, tmp_path: Path):
    state = tmp_path / "eval.json"
    state.write_text('{"format": 1, "eps": 0.1, "n_inp')
    with pytest.raises(ValueError, match=r"`state_path` .* not a readable evaluation state.*delete it"):
        evaluate_robustness(classifier, *data, eps=0.1, attacks=["clean"], state_path=state, verbose=False)
    assert state.read_text() == '{"format": 1, "eps": 0.1, "n_inp'  # left as it was


def test_an_unwritable_state_path_fails_before_the_first_attack(classifier, data, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    attacked = []
    monkeypatch.setattr("art_rslad.evaluation.evaluate._run_one", lambda *args: attacked.append(args))
    with pytest.raises(ValueError, match=r"`state_path` .* cannot be written"):
        evaluate_robustness(classifier, *data, eps=0.1, attacks=["clean"], state_path=blocker / "eval.json",
                            verbose=False)
    assert not attacked
