"""The benchmarks' plain PyTorch loops run the same recipe as our trainers: same loss, same weights after an epoch.

Each plain loop in ``bench/plain_loops.py`` is written from its method's formulas with torch alone. Here one epoch
of two batches (tiny BatchNorm CNN, 8x8 inputs, PGD-3) through our trainer's ``fit`` and through the plain loop,
from the same weights, seed and batch order, must give the same training loss and the same student (and peer)
state, BatchNorm statistics included. The speed ratios in docs/performance.md compare like with like only if so.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.trainers import AdversarialTrainerBase
from art_rslad.trainers.registry import METHODS, get_method
from bench.bench_methods import CASES, plain_setup, sgd, starts, trainer_networks
from bench.plain_loops import PlainEMA, batch_order, plain_epoch
from bench.plain_methods import PLAIN_METHODS

SHAPE = (1, 8, 8)
NB_SAMPLES, BATCH_SIZE = 16, 8
ATTACK = {"eps": 0.1, "eps_step": 0.025, "max_iter": 3, "seed": 0}


class TinyBatchNormCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                            torch.nn.ReLU())
        self.head = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def classifier(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> PyTorchClassifier:
    return PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), SHAPE, 10, optimizer=optimizer or sgd(model),
                             clip_values=(0.0, 1.0), device_type="cpu")


def assert_same_state(ours: dict[str, torch.Tensor], plain: dict[str, torch.Tensor]) -> None:
    assert ours.keys() == plain.keys()
    for name, tensor in ours.items():
        torch.testing.assert_close(tensor, plain[name], rtol=1e-4, atol=1e-5, msg=name)


def test_every_method_of_the_shared_loop_has_a_plain_loop_and_a_benchmark_case() -> None:
    shared = {name for name, method in METHODS.items() if issubclass(method.trainer, AdversarialTrainerBase)}
    assert shared == set(PLAIN_METHODS)
    assert shared <= {case.method for case in CASES.values()}


@pytest.mark.parametrize("case_name", list(CASES))
def test_plain_loop_computes_the_trainers_loss_and_weights(case_name: str) -> None:
    case = CASES[case_name]
    rng = np.random.default_rng(1)
    x = rng.random((NB_SAMPLES, *SHAPE), dtype=np.float32)
    y = rng.integers(0, 10, NB_SAMPLES)
    torch.manual_seed(0)
    initial, peer_initial, teacher = TinyBatchNormCNN(), TinyBatchNormCNN(), TinyBatchNormCNN().eval()
    models = starts(peer_initial, teacher, TinyBatchNormCNN().eval())
    method = get_method(case.method)
    partner = trainer_networks(method, models, classifier)
    trainer = method.trainer(classifier(copy.deepcopy(initial)), **partner, **ATTACK, verbose=False,
                             **case.trainer_options)
    trainer.fit(x, y, batch_size=BATCH_SIZE, nb_epochs=1)

    student = copy.deepcopy(initial)
    setup = plain_setup(case, student, models, eps=ATTACK["eps"], eps_step=ATTACK["eps_step"],
                        steps=ATTACK["max_iter"], seed=0)
    ema = PlainEMA(student, NB_SAMPLES // BATCH_SIZE) if case.ema else None
    loss = plain_epoch(setup, PLAIN_METHODS[case.method], torch.from_numpy(x), torch.from_numpy(y), BATCH_SIZE,
                       batch_order(NB_SAMPLES, 0, 0), igdm_alpha=case.igdm_alpha, ema=ema)

    assert trainer.history[0]["loss"] == pytest.approx(loss, rel=1e-4)  # float32 rounding (ARD: tau^2 = 900)
    plain_state = ema.state if ema is not None else student.state_dict()
    assert_same_state(trainer.get_classifier().model.state_dict(), plain_state)
    for net in method.trained_networks:  # PeerAiD's peer, CIARD's robust teacher
        assert_same_state(trainer.get_network(net.name).model.state_dict(), getattr(setup, net.name).state_dict())
