"""Distributed training and evaluation: 2 CPU processes (gloo, torch.multiprocessing.spawn) against one process.

One spawned session (:func:`_worker`) runs every two-rank scenario, as torchrun would start it (environment
variables only; the trainers join the process group themselves) and saves what each rank saw; the tests compare
that with one-process runs made here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from art.data_generators import PyTorchDataGenerator
from conftest import make_classifier

from art_rslad import distributed
from art_rslad.attacks import InputGradientClassifier, InputGradientPGD, SoftLabelKLLoss
from art_rslad.checkpoint import load_checkpoint
from art_rslad.evaluation import evaluate_robustness
from art_rslad.evaluation.sharded import evaluate_robustness_distributed
from art_rslad.trainers import AdversarialTrainerRSLAD, ddp, loop
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.sat import AdversarialTrainerSAT
from bench.gpu_paths import interrupted_at

WORLD_SIZE = 2
SHAPE = (1, 8, 8)
BATCH = 8  # per rank; one process uses WORLD_SIZE * BATCH
EPS = 0.1
EVAL_INPUTS = 21  # not a multiple of the world size: shards of 11 and 10
NB_TRAIN = 48  # three global batches of WORLD_SIZE * BATCH per epoch


class Student(torch.nn.Module):
    """Conv and linear layers, no BatchNorm or dropout: per-sample losses, so gradients average exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.head = torch.nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))


class NormStudent(Student):
    """Adds BatchNorm (running statistics) and dropout (the global RNG), which a resume must restore."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.BatchNorm2d(4)
        self.dropout = torch.nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.nn.functional.max_pool2d(torch.relu(self.norm(self.conv(x))), 2).flatten(1)
        return self.head(self.dropout(features))


class Teacher(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1))


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((NB_TRAIN + EVAL_INPUTS, *SHAPE), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    return x[:NB_TRAIN], y[:NB_TRAIN], x[NB_TRAIN:], y[NB_TRAIN:]


def _teacher(seed: int = 100) -> Any:
    torch.manual_seed(seed)
    return make_classifier(Teacher(), input_shape=SHAPE)


def _student(model: type[Student] = Student, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return make_classifier(model(), lr=0.05, input_shape=SHAPE)


def _fixed_attack(student: Any) -> InputGradientPGD:
    """The default inner PGD without a random start: the same x' whatever the batch composition."""
    return InputGradientPGD(InputGradientClassifier(student, SoftLabelKLLoss()), eps=EPS, eps_step=EPS / 4,
                            max_iter=2, random_init="none")


def _trainer(method: str, student: Any, **kwargs: Any) -> AdversarialTrainerBase:
    settings = {"eps": EPS, "eps_step": EPS / 4, "max_iter": 2, "seed": 3, "verbose": False, **kwargs}
    if method == "rslad":
        return AdversarialTrainerRSLAD(student, _teacher(), scale=1.0, **settings)
    return AdversarialTrainerSAT(student, **settings)


def _train_fixed(method: str, batch_size: int, verbose: bool = False, **fit_kwargs: Any) -> AdversarialTrainerBase:
    """Two epochs of ``method`` on a no-BatchNorm student with a deterministic attack (the equivalence setting)."""
    x, y, _, _ = _data()
    student = _student()
    trainer = _trainer(method, student, attack=_fixed_attack(student), verbose=verbose)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(student.optimizer, milestones=[1], gamma=0.5)
    trainer.fit(x, y, batch_size=batch_size, nb_epochs=2, scheduler=scheduler, **fit_kwargs)
    return trainer


def _generator(batch_size: int, world: distributed.World) -> PyTorchDataGenerator:
    x, y, _, _ = _data()
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    if world.is_distributed:
        return ddp.distributed_generator(dataset, batch_size, seed=5)
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=1, rank=0, seed=5)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    return PyTorchDataGenerator(loader, size=len(dataset), batch_size=batch_size)


def _train_generator(batch_size: int, world: distributed.World) -> AdversarialTrainerBase:
    student = _student()
    trainer = _trainer("sat", student, attack=_fixed_attack(student))
    trainer.fit_generator(_generator(batch_size, world), nb_epochs=2)
    return trainer


def _resume_run(init_seed: int, **fit_kwargs: Any) -> AdversarialTrainerBase:
    """Two epochs of RSLAD with its default (Gaussian) start on a BatchNorm + dropout student."""
    x, y, x_val, y_val = _data()
    student = _student(NormStudent, seed=init_seed)
    trainer = _trainer("rslad", student)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(student.optimizer, milestones=[1], gamma=0.5)
    torch.manual_seed(7)  # the same global RNG on every rank, as a seeded script leaves it
    trainer.fit(x, y, validation_data=(x_val[:8], y_val[:8]), batch_size=BATCH, nb_epochs=2, scheduler=scheduler,
                **fit_kwargs)
    return trainer


def _averaged_run(weight_averaging: str) -> AdversarialTrainerBase:
    """Two epochs of SAT with weight averaging on a BatchNorm student (each rank normalises its own batches)."""
    x, y, _, _ = _data()
    trainer = _trainer("sat", _student(NormStudent), weight_averaging=weight_averaging)
    trainer.fit(x, y, batch_size=BATCH, nb_epochs=2)
    return trainer


def _weights(trainer: AdversarialTrainerBase) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in trainer.get_classifier().model.state_dict().items()}


def _eval_model(weights: Path) -> Any:
    """The classifier the evaluation tests attack, with weights fitted once (by the parent) to the first inputs."""
    student = _student(seed=11)
    if not weights.is_file():
        x, y, _, _ = _data()
        for _ in range(40):
            loss = torch.nn.functional.cross_entropy(student.model(torch.from_numpy(x)), torch.from_numpy(y))
            student.optimizer.zero_grad()
            loss.backward()
            student.optimizer.step()
        torch.save(student.model.state_dict(), weights)
    student.model.load_state_dict(torch.load(weights, weights_only=True))
    return student


def _error(run: Callable[[], Any]) -> str:
    """The message of the ValueError ``run`` raises ('' if none)."""
    try:
        run()
    except ValueError as error:
        return str(error)
    return ""


class _Terminal(io.StringIO):
    """Progress bars show on a terminal only: the captured stderr says it is one."""

    def isatty(self) -> bool:
        return True


def _worker(rank: int, folder: Path, port: int) -> None:
    """One rank of the two-process session; writes ``result_rank<r>.pt`` (the test's own file)."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD_SIZE)})
    torch.set_num_threads(1)
    log, progress = io.StringIO(), _Terminal()
    package_logger = logging.getLogger("art_rslad")
    package_logger.setLevel(logging.INFO)
    package_logger.addHandler(logging.StreamHandler(log))
    world = distributed.World(rank, WORLD_SIZE)
    result: dict[str, Any] = {}

    # Equivalence runs; RSLAD also writes checkpoints, logs and progress bars (rank 0 only).
    x, y, x_val, y_val = _data()
    with contextlib.redirect_stderr(progress):
        rslad = _train_fixed("rslad", BATCH, verbose=True, checkpoint_dir=folder / f"files_rank{rank}",
                             validation_data=(x_val, y_val))
    result["joined_group"] = dist.is_initialized() and dist.get_world_size() == WORLD_SIZE
    result["plain_student"] = type(rslad.get_classifier().model).__name__
    result["rslad"] = _weights(rslad)
    result["sat"] = _weights(_train_fixed("sat", BATCH, checkpoint_dir=folder / "sat"))
    result["generator"] = _weights(_train_generator(BATCH, world))
    result["averaged"] = {name: _weights(_averaged_run(name)) for name in ("ema", "swa")}
    result["log"], result["progress"] = log.getvalue(), progress.getvalue()

    # Resume: uninterrupted, then interrupted at step 2 (first epoch) and resumed from rank 0's last.pt.
    uninterrupted = _resume_run(init_seed=0)
    with interrupted_at(2), contextlib.suppress(KeyboardInterrupt):
        _resume_run(init_seed=0, checkpoint_dir=folder / "resume")
    dist.barrier()  # rank 0 has written last.pt
    resumed = _resume_run(init_seed=1, checkpoint_dir=folder / "resume", resume_from=folder / "resume" / "last.pt")
    result["resume"] = (_weights(uninterrupted), _weights(resumed), uninterrupted.history[-1], resumed.history[-1])

    # Distributed evaluation (every rank passes all inputs).
    report = evaluate_robustness_distributed(_eval_model(folder / "eval_model.pt"), x[:EVAL_INPUTS], y[:EVAL_INPUTS],
                                             eps=EPS, attacks=("clean", "fgsm"), batch_size=4, verbose=False)
    result["evaluation"] = report.to_dict()

    # Bad input: every rank must raise the same clear error, and nothing may be written.
    bad = folder / f"bad_rank{rank}"
    other_eps = EPS if rank == 0 else EPS / 2
    student = _student()
    result["errors"] = {
        "world_too_big": _error(lambda: _trainer("sat", _student()).fit(x[:1], y[:1], checkpoint_dir=bad)),
        "config": _error(lambda: _trainer("sat", _student(), eps=other_eps).fit(x, y, batch_size=BATCH,
                                                                                checkpoint_dir=bad)),
        "teacher": _error(lambda: AdversarialTrainerRSLAD(_student(), _teacher(seed=100 + rank), eps=EPS,
                                                          verbose=False).fit(x, y, checkpoint_dir=bad)),
        "checkpoint": _error(lambda: _train_fixed("rslad", BATCH, checkpoint_dir=bad,
                                                  resume_from=folder / "sat" / "last.pt")),
        "generator": _error(lambda: _trainer("sat", student).fit_generator(_generator(BATCH, distributed.World()))),
        "eval_models": _error(lambda: evaluate_robustness_distributed(
            _student(seed=rank), x_val, y_val, eps=EPS, attacks=("clean",), verbose=False)),
        "eval_too_few": _error(lambda: evaluate_robustness_distributed(
            student, x_val[:1], y_val[:1], eps=EPS, attacks=("clean",), verbose=False)),
    }
    result["bad_written"] = bad.exists()
    torch.save(result, folder / f"result_rank{rank}.pt")
    distributed.leave_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("distributed")
    _eval_model(folder / "eval_model.pt")
    torch.multiprocessing.spawn(_worker, args=(folder, _free_port()), nprocs=WORLD_SIZE, join=True)
    return folder, [torch.load(folder / f"result_rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


@pytest.fixture(scope="module")
def one_process_rslad() -> AdversarialTrainerBase:
    return _train_fixed("rslad", WORLD_SIZE * BATCH)


def _assert_close(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)


# ------------------------------------------------------------------------------------------- sharding rules
@pytest.mark.parametrize(("nb_samples", "world_size"), [(10, 4), (16, 2), (3, 3), (7, 2)])
def test_train_shards_match_distributed_sampler(nb_samples: int, world_size: int) -> None:
    order = torch.randperm(nb_samples, generator=torch.Generator().manual_seed(0))
    for rank in range(world_size):
        sampler = torch.utils.data.DistributedSampler(range(nb_samples), world_size, rank, shuffle=False)
        expected = order[list(sampler)]
        shard = distributed.World(rank, world_size).train_shard(order)
        assert torch.equal(shard, expected)
        assert len(shard) == distributed.World(rank, world_size).train_shard_size(nb_samples)


@pytest.mark.parametrize(("nb_samples", "world_size"), [(21, 2), (8, 4), (5, 3), (4, 1)])
def test_eval_slices_cover_every_input_once(nb_samples: int, world_size: int) -> None:
    covered = np.concatenate([np.arange(nb_samples)[distributed.World(rank, world_size).eval_slice(nb_samples)]
                              for rank in range(world_size)])
    assert np.array_equal(covered, np.arange(nb_samples))


def test_fit_resolves_the_world_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    def counted(device: Any = None) -> distributed.World:
        calls.append(device)
        return distributed.current_world(device)

    monkeypatch.setattr(loop, "current_world", counted)
    x, y, x_val, y_val = _data()
    trainer = _trainer("sat", _student())
    trainer.fit(x, y, validation_data=(x_val, y_val), batch_size=BATCH, nb_epochs=2)
    assert len(calls) == 1 and len(trainer.history) == 2 and "val_pgd" in trainer.history[-1]
    trainer.validate(x_val, y_val)  # outside fit: resolved by validate itself
    assert len(calls) == 2
    trainer.fit_generator(_generator(BATCH, distributed.World()), nb_epochs=2, validation_data=(x_val, y_val))
    assert len(calls) == 3


def test_one_process_world_changes_nothing() -> None:
    world = distributed.current_world(torch.device("cpu"))
    order = torch.arange(5)
    assert (world.rank, world.size, world.is_main) == (0, 1, True)
    assert world.train_shard(order) is order and world.eval_slice(5) == slice(0, 5)
    assert world.data_fingerprint() == {} and world.sum(torch.tensor(2.5), 3) == (2.5, 3.0)
    assert distributed.default_backend(torch.device("cpu")) == "gloo"


class _TwoArgumentError(Exception):
    """An exception that pickles but does not unpickle (its constructor takes two arguments)."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")


def _fail(error: Exception) -> None:
    raise error


def test_on_main_in_one_process_is_the_action_and_leaving_needs_no_group() -> None:
    world = distributed.World()
    assert distributed.on_main(world, max, 2, 5) == 5
    with pytest.raises(FileExistsError, match="already holds"):
        distributed.on_main(world, _fail, FileExistsError("run already holds a run"))
    distributed.leave_process_group()  # no group: nothing to wait for


def test_an_error_that_cannot_travel_to_other_ranks_becomes_a_runtime_error_naming_it() -> None:
    assert isinstance(distributed._transferable(ValueError("bad")), ValueError)
    error = distributed._transferable(_TwoArgumentError("disk", "full"))
    assert isinstance(error, RuntimeError) and str(error) == "_TwoArgumentError on rank 0: disk: full"


def test_sync_batchnorm_refused_on_cpu() -> None:
    with pytest.raises(ValueError, match="GPUs only"):
        ddp.convert_sync_batchnorm(_student(NormStudent))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="SyncBatchNorm needs CUDA")
def test_sync_batchnorm_on_cuda_keeps_parameters() -> None:
    torch.manual_seed(0)
    student = make_classifier(NormStudent(), input_shape=SHAPE, device_type="gpu")
    before = {key: value.clone() for key, value in student.model.state_dict().items()}
    ddp.convert_sync_batchnorm(student)
    assert isinstance(student.model.norm, torch.nn.SyncBatchNorm)
    _assert_close(before, student.model.state_dict())
    with pytest.raises(ValueError, match="no BatchNorm"):
        ddp.convert_sync_batchnorm(make_classifier(Student(), input_shape=SHAPE, device_type="gpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="SyncBatchNorm needs CUDA")
def test_sync_batchnorm_on_cuda_trains_with_train_mode_attacks(tmp_path: Path) -> None:
    """Forward and backward through SyncBatchNorm in a one-rank NCCL group, the attack in train mode (as ARD and
    IAD attack: each PGD step's forward then synchronises the batch statistics too)."""
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        student = ddp.convert_sync_batchnorm(make_classifier(NormStudent(), input_shape=SHAPE, device_type="gpu"))
        before = {key: value.clone() for key, value in student.model.state_dict().items()}
        x, y, _, _ = _data()
        _trainer("sat", student, attack_training_mode=True).fit(x, y, batch_size=BATCH, nb_epochs=1)
        after = student.model.state_dict()
        assert not torch.equal(before["norm.running_mean"], after["norm.running_mean"])
        assert all(torch.isfinite(value).all() for value in after.values() if value.is_floating_point())
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------- two ranks
def test_ranks_join_the_group_from_torchrun_variables_and_keep_the_plain_student(session: Any) -> None:
    _, results = session
    for result in results:
        assert result["joined_group"]
        assert result["plain_student"] == "Student"


@pytest.mark.parametrize("method", ["rslad", "sat"])
def test_two_ranks_with_half_the_batch_end_where_one_process_does(
    session: Any, one_process_rslad: AdversarialTrainerBase, method: str
) -> None:
    _, results = session
    one_process = _weights(one_process_rslad if method == "rslad" else _train_fixed(method, WORLD_SIZE * BATCH))
    before = _weights(_trainer(method, _student()))
    assert any(not torch.allclose(before[key], one_process[key]) for key in before)  # training moved the weights
    for result in results:
        _assert_close(one_process, result[method])


def test_fit_generator_with_distributed_sampler_matches_one_process(session: Any) -> None:
    _, results = session
    one_process = _weights(_train_generator(WORLD_SIZE * BATCH, distributed.World()))
    for result in results:
        _assert_close(one_process, result["generator"])


def test_only_rank_zero_writes_logs_and_shows_progress(session: Any) -> None:
    folder, results = session
    written = folder / "files_rank0"
    assert {path.name for path in written.iterdir()} >= {"last.pt", "best.pt", "metrics.jsonl"}
    assert not (folder / "files_rank1").exists()
    assert len((written / "metrics.jsonl").read_text().splitlines()) == 2
    assert load_checkpoint(written / "last.pt")["config"]["data"]["world_size"] == WORLD_SIZE
    assert "rslad epoch 1/2" in results[0]["log"] and results[1]["log"] == ""
    assert "rslad epochs" in results[0]["progress"] and "rslad epochs" not in results[1]["progress"]


def test_averaged_weights_and_batchnorm_statistics_agree_across_ranks(session: Any) -> None:
    """EMA averages after the buffers are synchronised; SWA's statistics recomputed on each shard are averaged."""
    _, results = session
    for name in ("ema", "swa"):
        first, second = results[0]["averaged"][name], results[1]["averaged"][name]
        assert all(torch.equal(first[key], second[key]) for key in first), name
        assert first["norm.running_mean"].abs().sum() > 0


def test_metrics_are_averaged_over_ranks(session: Any, one_process_rslad: AdversarialTrainerBase) -> None:
    folder, _ = session
    history = load_checkpoint(folder / "files_rank0" / "last.pt")["history"]
    for distributed_record, record in zip(history, one_process_rslad.history, strict=True):
        assert distributed_record["loss"] == pytest.approx(record["loss"], rel=1e-5)
        assert distributed_record["train_accuracy"] == pytest.approx(record["train_accuracy"])
    assert 0.0 <= history[-1]["val_pgd"] <= history[-1]["val_clean"] <= 1.0


def test_resumed_two_rank_run_ends_where_the_uninterrupted_one_does(session: Any) -> None:
    _, results = session
    for result in results:
        uninterrupted, resumed, last_record, resumed_last_record = result["resume"]
        for key in uninterrupted:
            assert torch.equal(uninterrupted[key], resumed[key]), key
        assert {k: v for k, v in last_record.items() if not k.endswith("seconds")} == \
            {k: v for k, v in resumed_last_record.items() if not k.endswith("seconds")}


def test_distributed_evaluation_gives_the_per_input_results_of_one_process(session: Any) -> None:
    folder, results = session
    x, y, _, _ = _data()
    one_process = evaluate_robustness(_eval_model(folder / "eval_model.pt"), x[:EVAL_INPUTS], y[:EVAL_INPUTS],
                                      eps=EPS, attacks=("clean", "fgsm"), batch_size=4, verbose=False)
    assert 0 < one_process.accuracy["fgsm"] < one_process.accuracy["clean"]  # a test that can tell inputs apart
    for result in results:
        assert result["evaluation"]["n_inputs"] == EVAL_INPUTS
        assert result["evaluation"]["correct"] == {name: flags.tolist() for name, flags in one_process.correct.items()}
        assert result["evaluation"]["worst_case_accuracy"] == pytest.approx(one_process.worst_case_accuracy)
        assert result["evaluation"]["labels"] == y[:EVAL_INPUTS].tolist()  # both shards' labels, in input order
        assert result["evaluation"]["worst_class"] == one_process.to_dict()["worst_class"]


@pytest.mark.parametrize(("case", "expected"), [
    ("world_too_big", "fewer than the 2 processes"),
    ("config", "rank 1: run.eps = 0.05 (rank 0: 0.1)"),
    ("teacher", "teacher_weights_sha256"),
    ("checkpoint", "different run"),
    ("generator", "DistributedSampler"),
    ("eval_models", "classifier_weights_sha256"),
    ("eval_too_few", "fewer than the 2 processes"),
])
def test_bad_distributed_input_fails_clearly_on_every_rank_and_writes_nothing(
    session: Any, case: str, expected: str
) -> None:
    _, results = session
    for result in results:
        assert expected in result["errors"][case]
        assert not result["bad_written"]
