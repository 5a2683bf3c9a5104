"""Training and evaluation on several processes with torch.distributed (DDP, torchrun).

Run any script that calls a trainer's ``fit`` / ``fit_generator`` under ``torchrun --nproc-per-node N script.py``
and the shared loop (:mod:`art_rslad.trainers.base`) does the rest through this module:

* :func:`current_world` joins the process group that torchrun describes in the environment (``RANK``,
  ``WORLD_SIZE``, ``MASTER_ADDR``...), with backend ``nccl`` on CUDA and ``gloo`` on CPU, unless the script
  initialised one itself. Without a group and without torchrun's variables the world is one process and nothing
  below changes a thing.
* :meth:`World.train_shard` splits each epoch's permutation (the same on every rank: same seed, the epoch as
  its second seed) like ``DistributedSampler``: padded to a multiple of the world size, every ``size``-th index.
  ``batch_size`` is per rank, so the global batch is ``batch_size * world_size`` and the number of optimizer steps
  per epoch (hence the learning-rate schedule) is that of one process with the global batch.
* :func:`wrap_student` checks that every rank runs the same configuration and teacher (checksums compared across
  ranks) and wraps the student in ``DistributedDataParallel``. Only the training loss's forward passes go through
  the wrapper (so their gradients are averaged over ranks); the inner attack differentiates the plain student with
  input-only gradients, and :meth:`~art.defences.trainer.Trainer.get_classifier` keeps the plain student.
* Rank 0 alone writes checkpoints and metrics, logs and shows progress bars; validation and
  :func:`evaluate_robustness_distributed` shard their inputs without padding and combine the per-input results.
* :func:`on_main` runs an action (preparing or writing a run folder) on rank 0 alone and hands its result, or
  its exception, to every rank; :func:`command_world` is the process group of one command-line command
  (``art-rslad train``, ``compare``, ``eval``), joined at its start and left at its end with
  :func:`leave_process_group`, which a torchrun script also calls last.

See ``docs/distributed.md`` for the commands.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import inspect
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from art.estimators.classification import PyTorchClassifier

from art_rslad.estimators import forward_logits

if TYPE_CHECKING:
    from art.data_generators import DataGenerator, PyTorchDataGenerator

    from art_rslad.evaluation import RobustnessReport
    from art_rslad.trainers.base import AdversarialTrainerBase

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Environment variables torchrun sets for every worker.
TORCHRUN_VARIABLES: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def default_backend(device: torch.device | str | None = None) -> str:
    """``nccl`` for a CUDA device (or, with no device given, when CUDA is available), else ``gloo``."""
    if device is None:
        return "nccl" if torch.cuda.is_available() else "gloo"
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def launched_by_torchrun() -> bool:
    """Whether the environment describes a process group of more than one process (as torchrun's does)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


def init_distributed(backend: str | None = None, timeout: timedelta | None = None) -> World:
    """Join the process group torchrun describes (idempotent) and return this process's :class:`World`.

    Call it at the top of a torchrun script, before building classifiers: on CUDA it selects the GPU
    ``LOCAL_RANK`` (``torch.cuda.set_device``), so that ``PyTorchClassifier(..., device_type="gpu")`` places each
    rank's models on its own GPU. Without torchrun's variables (and no group initialised) it returns the
    one-process world.

    :param backend: ``nccl`` or ``gloo``; default ``nccl`` when CUDA is available, else ``gloo``.
    :param timeout: Timeout of collective operations (torch's default when None).
    """
    joining = dist.is_available() and not dist.is_initialized() and launched_by_torchrun()
    if joining:
        backend = backend or default_backend()
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    world = _world()
    _quiet_other_ranks(world)
    if joining:
        logger.info("Joined a process group of %d processes (backend %s)", world.size, backend)
    return world


def current_world(device: torch.device | None = None) -> World:
    """This process's :class:`World`, joining torchrun's process group first if it is not yet initialised.

    :param device: The device the models run on; selects the backend and, on CUDA under torchrun, must be the GPU
        of this process's ``LOCAL_RANK``.
    """
    world = init_distributed(None if device is None else default_backend(device))
    if world.is_distributed and device is not None and torch.device(device).type == "cuda" \
            and "LOCAL_RANK" in os.environ and torch.device(device).index != int(os.environ["LOCAL_RANK"]):
        raise ValueError(
            f"The classifier is on {device} but this process has LOCAL_RANK {os.environ['LOCAL_RANK']}: call "
            "art_rslad.distributed.init_distributed() at the top of the script, before building the classifiers, "
            "so that each rank uses its own GPU."
        )
    return world


#: Seconds a process waits, GIL released, after its last collective before it exits (see :func:`leave_process_group`).
GLOO_SETTLE_SECONDS = 0.2


def leave_process_group() -> None:
    """Wait for every rank, destroy the process group, and let gloo's worker threads finish before this process exits.

    Call it on every rank at the end of a torchrun script, once no rank needs the group any more (a collective).
    A process that exits straight after a collective can abort ("terminate called without an active exception",
    exit code -6): a gloo worker thread still releases the last collective's work, whose tensors belong to Python,
    and takes the GIL while the interpreter shuts down. So after the barrier, reference cycles that hold the group
    (DistributedDataParallel wrappers) are collected, the group is destroyed, and the process sleeps a moment with
    the GIL released so those threads can finish. Without an initialised group it does nothing.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    gc.collect()
    dist.destroy_process_group()
    time.sleep(GLOO_SETTLE_SECONDS)


@contextlib.contextmanager
def command_world() -> Iterator[World]:
    """The :class:`World` of one command-line command: joins torchrun's process group for the block, leaves it after.

    When the block ends normally every rank calls :func:`leave_process_group`. When it raises (on every rank when
    the error came from :func:`on_main`), the group is not destroyed, since a rank that failed alone must not wait
    for ranks that are still inside a collective; the process only gives gloo's threads a moment before it exits
    with the error. A group initialised before the block is left as it is, and in a one-process run nothing happens.
    """
    joined = not (dist.is_available() and dist.is_initialized())
    world = init_distributed()
    leave = joined and world.is_distributed
    try:
        yield world
    except BaseException:
        if leave:
            time.sleep(GLOO_SETTLE_SECONDS)
        raise
    if leave:
        leave_process_group()


def on_main(world: World, action: Callable[..., T], *args: Any) -> T:
    """Run ``action(*args)`` on rank 0 alone and return its result on every rank (a collective in a distributed run).

    An exception raised by ``action`` is raised on every rank, with its type and message (rank 0 raises the
    original), so that after a failure on rank 0 (a run folder that exists, a disk that is full) no rank waits for
    it and every process exits with the same error. The result must be picklable. In a one-process run this is
    ``action(*args)``.

    :param world: This process's world.
    :param action: What rank 0 does, typically preparing or writing files of a run folder.
    :param args: Its arguments.
    """
    if not world.is_distributed:
        return action(*args)
    outcome: list[Any] = [None]
    failure: Exception | None = None
    if world.is_main:
        try:
            outcome[0] = (action(*args), None)
        except Exception as error:
            failure = error
            outcome[0] = (None, _transferable(error))
    dist.broadcast_object_list(outcome, src=0)
    if failure is not None:
        raise failure
    value, error = outcome[0]
    if error is not None:
        raise error
    return value  # type: ignore[no-any-return]


def _transferable(error: Exception) -> Exception:
    """``error`` when it survives pickling (to another rank), else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__} on rank 0: {error}")
    return error


def _world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(rank=dist.get_rank(), size=dist.get_world_size())
    return World()


@dataclasses.dataclass(frozen=True)
class World:
    """The processes of a run: this one's ``rank`` among ``size``. ``World()`` is a one-process run."""

    rank: int = 0
    size: int = 1

    @property
    def is_distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files, logs and shows progress bars."""
        return self.rank == 0

    def check_fits(self, nb_samples: int, argument: str) -> None:
        """Raise a ValueError when ``nb_samples`` cannot give every rank at least one input of its own."""
        if nb_samples < self.size:
            raise ValueError(
                f"`{argument}` has {nb_samples} samples, fewer than the {self.size} processes of this run: each rank "
                f"needs at least one sample of its own. Pass at least {self.size} samples or run fewer processes "
                "(torchrun --nproc-per-node)."
            )

    def data_fingerprint(self) -> dict[str, int]:
        """What a checkpoint records about the sharding: nothing in a one-process run, else the world size."""
        return {"world_size": self.size} if self.is_distributed else {}

    def train_shard_size(self, nb_samples: int) -> int:
        """Number of training samples per rank per epoch (padded, as ``DistributedSampler``)."""
        return math.ceil(nb_samples / self.size)

    def train_shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's part of an epoch's permutation ``order`` (the same on every rank).

        As ``DistributedSampler(drop_last=False)``: ``order`` is padded with its own first entries to a multiple of
        the world size and rank ``r`` takes entries ``r, r + size, ...``. With ``batch_size`` per rank, the ranks'
        ``k``-th batches together hold the ``k``-th batch of ``batch_size * size`` of a one-process run whenever
        that many samples divide the data.
        """
        if not self.is_distributed:
            return order
        padding = self.train_shard_size(len(order)) * self.size - len(order)
        padded = torch.cat([order, order.repeat(math.ceil(padding / len(order)))[:padding]]) if padding else order
        return padded[self.rank::self.size]

    def eval_slice(self, nb_samples: int) -> slice:
        """This rank's contiguous block of ``nb_samples`` evaluation inputs (no padding; as ``np.array_split``)."""
        base, extra = divmod(nb_samples, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def sum(self, *values: float | torch.Tensor) -> tuple[float, ...]:
        """Each value summed over the ranks (float64 all-reduce; a collective: every rank must call it)."""
        totals = torch.tensor([float(value) for value in values], dtype=torch.float64)
        if self.is_distributed:
            totals = _to_backend_device(totals)
            dist.all_reduce(totals)
        return tuple(float(total) for total in totals.cpu())

    def all_gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order (a collective)."""
        if not self.is_distributed:
            return [value]
        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, value)
        return gathered


def _to_backend_device(tensor: torch.Tensor) -> torch.Tensor:
    if dist.get_backend() == "nccl":
        return tensor.to(torch.device("cuda", torch.cuda.current_device()))
    return tensor


# --------------------------------------------------------------------------------------- agreement between ranks
def state_checksum(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and values), equal on ranks with equal weights."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _same(value: Any, reference: Any) -> bool:
    """Equal, floats up to a relative 1e-9 (data sums may differ in the last bits between CPU types of nodes)."""
    if isinstance(value, float) and isinstance(reference, float):
        return math.isclose(value, reference, rel_tol=1e-9)
    return bool(value == reference)


def check_agreement(world: World, config: dict[str, Any]) -> None:
    """Raise the same ValueError on every rank when the ranks' ``config`` dicts differ (a collective).

    The message names each setting that differs from rank 0's, so a script started with other arguments (or
    another teacher file) on one node is caught before any step is taken or any file written.
    """
    flat = _flatten(json.loads(json.dumps(config, sort_keys=True, default=str)))
    gathered = world.all_gather(flat)
    differences = [
        f"rank {rank}: {key} = {other.get(key)!r} (rank 0: {gathered[0].get(key)!r})"
        for rank, other in enumerate(gathered[1:], start=1)
        for key in sorted(set(other) | set(gathered[0]))
        if not _same(other.get(key), gathered[0].get(key))
    ]
    if differences:
        raise ValueError(
            "The ranks of this distributed run disagree on its configuration; start every process with the same "
            "arguments, data and teacher weights. Differences: " + "; ".join(differences)
        )


def training_config(trainer: AdversarialTrainerBase, run_config: dict[str, Any],
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> dict[str, Any]:
    """What every rank of a training run must agree on: the run's settings, optimizer, scheduler and teacher."""
    optimizer = trainer.get_classifier().optimizer
    return {
        "run": run_config,
        "optimizer": {"type": type(optimizer).__name__,
                      "groups": [{k: v for k, v in group.items() if k != "params"}
                                 for group in optimizer.param_groups]},
        "scheduler": None if scheduler is None else type(scheduler).__name__,
        "teacher_weights_sha256": None if trainer.teacher is None else state_checksum(trainer.teacher.model),
    }


# --------------------------------------------------------------------------------------- the student under DDP
class _StudentForward(torch.nn.Module):
    """The student with its classifier's ART preprocessing, as one module for DistributedDataParallel."""

    def __init__(self, classifier: PyTorchClassifier) -> None:
        super().__init__()
        self.student = classifier.model
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_logits(self.classifier, x)


def _quiet_other_ranks(world: World) -> None:
    """On ranks other than 0, keep only errors from art_rslad's loggers (rank 0 logs for the run)."""
    package_logger = logging.getLogger("art_rslad")
    if not world.is_main and package_logger.getEffectiveLevel() < logging.ERROR:
        package_logger.setLevel(logging.ERROR)


def wrap_student(trainer: AdversarialTrainerBase, world: World, run_config: dict[str, Any],
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> torch.nn.Module | None:
    """The student wrapped in DistributedDataParallel for the training loss, or None in a one-process run.

    First checks that all ranks agree (:func:`check_agreement` on :func:`training_config`), then wraps; DDP's
    constructor broadcasts rank 0's student weights, and :func:`sync_buffers` its buffers, to the other ranks.
    Buffers are not broadcast at every forward: the loop calls :func:`sync_buffers` after every step instead. The
    teacher stays unwrapped.
    """
    if not world.is_distributed:
        return None
    check_agreement(world, training_config(trainer, run_config, scheduler))
    device = trainer.get_classifier().device
    ddp_class = torch.nn.parallel.DistributedDataParallel
    # torch >= 2.13 renamed broadcast_buffers to forward_sync_buffers (the old name warns)
    buffer_option = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp_class).parameters \
        else "broadcast_buffers"
    ddp = ddp_class(_StudentForward(trainer.get_classifier()), device_ids=[device] if device.type == "cuda" else None,
                    **{buffer_option: False})
    sync_buffers(ddp)
    return ddp


def sync_buffers(ddp: torch.nn.Module | None) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank (a collective; nothing without DDP).

    The loop calls it after every training step, so between steps all ranks hold the same student, parameters and
    buffers alike: the next attack (student in eval mode) and validation see the same model on every rank, and a
    checkpoint written by rank 0 restores every rank exactly.
    """
    if ddp is None:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for buffer in ddp.module.buffers():
        by_dtype.setdefault(buffer.dtype, []).append(buffer)
    for buffers in by_dtype.values():
        flat = torch.cat([buffer.detach().reshape(-1) for buffer in buffers])
        dist.broadcast(flat, src=0)
        for buffer, values in zip(buffers, flat.split([buffer.numel() for buffer in buffers]), strict=True):
            buffer.detach().copy_(values.view_as(buffer))


def convert_sync_batchnorm(classifier: PyTorchClassifier) -> PyTorchClassifier:
    """Replace the student's BatchNorm layers by SyncBatchNorm in place (batch statistics over all ranks).

    Call it on every rank before building the trainer. SyncBatchNorm keeps the same parameters (so the optimizer
    and state-dict keys are unchanged) and synchronises only in train mode; torch supports it on GPUs only.
    Without it each rank normalises with its own batch statistics and DDP copies rank 0's running statistics to
    the other ranks at every training forward.

    :param classifier: The student, an ART PyTorchClassifier on a CUDA device whose model contains BatchNorm.
    :return: The same classifier.
    """
    if classifier.device.type != "cuda":
        raise ValueError(f"`classifier` is on {classifier.device}: torch's SyncBatchNorm runs on GPUs only; on a CPU "
                         "leave BatchNorm as it is (each rank then uses its own batch statistics).")
    model = classifier.model
    if isinstance(model, torch.nn.modules.batchnorm._BatchNorm):
        raise ValueError("`classifier`'s model is a single BatchNorm layer; wrap it in a module to convert it.")
    if not any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules()):
        raise ValueError("`classifier` has no BatchNorm layer to synchronise.")
    torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return classifier


# --------------------------------------------------------------------------------------- data generators
def _distributed_sampler(generator: DataGenerator) -> torch.utils.data.DistributedSampler | None:
    loader = getattr(generator, "iterator", None)
    sampler = getattr(loader, "sampler", None)
    return sampler if isinstance(sampler, torch.utils.data.DistributedSampler) else None


def generator_batches(generator: DataGenerator, world: World) -> int:
    """Number of batches per epoch that the trainer draws from ``generator`` on this rank.

    In a one-process run ``ceil(size / batch_size)``, as ART's trainers. In a distributed run the generator must be
    a PyTorchDataGenerator over a DataLoader with a DistributedSampler for this world (each rank draws its own
    shard; :func:`distributed_generator` builds one): one epoch is then one pass of that DataLoader, and the ranks
    must agree on its length and the sampler's seed and shuffling (checked, a collective).
    """
    if not world.is_distributed:
        return math.ceil(generator.size / generator.batch_size)
    sampler = _distributed_sampler(generator)
    if sampler is None:
        raise ValueError(
            f"`generator`: in a distributed run of {world.size} processes each rank must draw its own shard; pass "
            "an art PyTorchDataGenerator over a DataLoader whose sampler is a torch DistributedSampler "
            "(art_rslad.distributed.distributed_generator(dataset, batch_size) builds one)."
        )
    if sampler.num_replicas != world.size or sampler.rank != world.rank:
        raise ValueError(
            f"`generator`'s DistributedSampler is set for rank {sampler.rank} of {sampler.num_replicas}, but this "
            f"process is rank {world.rank} of {world.size}; build it with DistributedSampler(dataset) inside the "
            "initialised process group."
        )
    world.check_fits(len(sampler.dataset), "generator")  # type: ignore[arg-type]
    nb_batches = len(generator.iterator)
    check_agreement(world, {"generator": {"batches_per_epoch": nb_batches, "seed": sampler.seed,
                                          "shuffle": sampler.shuffle, "drop_last": sampler.drop_last}})
    return nb_batches


def set_generator_epoch(generator: DataGenerator, epoch: int) -> None:
    """Tell the generator's DistributedSampler (if it has one) which epoch starts, so the shards change each epoch.

    Takes effect on the DataLoader's next pass; with ``num_workers > 0`` the first pass after a resume still uses
    the order the DataLoader fetched when the generator was built (see docs/distributed.md).
    """
    sampler = _distributed_sampler(generator)
    if sampler is not None:
        sampler.set_epoch(epoch)


def distributed_generator(dataset: torch.utils.data.Dataset, batch_size: int, *, seed: int = 0,
                          shuffle: bool = True, num_workers: int = 0) -> PyTorchDataGenerator:
    """An ART PyTorchDataGenerator that draws this rank's shard of ``dataset`` (DistributedSampler, padded).

    :param dataset: A map-style torch dataset yielding ``(x, y)`` (e.g. torchvision CIFAR10 with augmentation).
    :param batch_size: Batch size per rank.
    :param seed: Seed of the shuffling, the same on every rank.
    :param shuffle: Reshuffle every epoch (the trainer calls ``set_epoch``).
    :param num_workers: DataLoader worker processes.
    """
    from art.data_generators import PyTorchDataGenerator

    world = current_world()
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world.size, rank=world.rank,
                                                  shuffle=shuffle, seed=seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers)
    return PyTorchDataGenerator(loader, size=len(dataset), batch_size=batch_size)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- evaluation
def merge_reports(reports: Sequence[RobustnessReport]) -> RobustnessReport:
    """One report from the reports of consecutive shards of the inputs (in order).

    Per-input results are concatenated; ``seconds`` is the slowest shard's (the wall-clock time of the run) and
    ``max_perturbation`` the largest; settings and the integrity checks' values are the first shard's; messages and
    warnings are the union. The fingerprint hashes the shards' fingerprints.
    """
    from art_rslad.evaluation import RobustnessReport, consistency_warnings

    first = reports[0]
    names = first.attacks
    if any(report.attacks != names or report.eps != first.eps for report in reports):
        raise ValueError("`reports` must come from the same evaluation (same attacks and eps) on different shards.")
    merged = RobustnessReport(
        eps=first.eps,
        n_inputs=sum(report.n_inputs for report in reports),
        correct={name: np.concatenate([report.correct[name] for report in reports]) for name in names},
        kinds=dict(first.kinds),
        seconds={name: max(report.seconds[name] for report in reports) for name in names},
        max_perturbation={name: max(report.max_perturbation[name] for report in reports) for name in names},
        settings=dict(first.settings),
        messages={name: list(dict.fromkeys(m for report in reports for m in report.messages[name])) for name in names},
        checks=dict(first.checks),
        fingerprint=hashlib.sha256("".join(report.fingerprint for report in reports).encode()).hexdigest(),
    )
    per_shard = [warning for report in reports for warning in report.warnings]
    merged.warnings = list(dict.fromkeys([*per_shard, *consistency_warnings(merged.accuracy, merged.kinds)]))
    return merged


def evaluate_robustness_distributed(
    classifier: Any, x: np.ndarray, y: np.ndarray, *, state_path: str | os.PathLike[str] | None = None,
    verbose: bool = True, **kwargs: Any,
) -> RobustnessReport:
    """:func:`~art_rslad.evaluation.evaluate_robustness` with the inputs sharded over the ranks of this run.

    Every rank passes the same ``x`` and ``y``; rank ``r`` attacks its contiguous block (no padding), and the
    per-input results of all ranks are gathered and merged (:func:`merge_reports`) into the report every rank
    returns, in the order of ``x``. So AutoAttack on a full test set takes about 1/N of the time on N GPUs. In a
    one-process run this is ``evaluate_robustness`` itself. Attacks with random starts draw them per shard, so their
    per-input results can differ from a one-process run's (as they do with another batch size).

    :param classifier: As in ``evaluate_robustness``, on this rank's device.
    :param x: All inputs (the same on every rank).
    :param y: All labels.
    :param state_path: Resume file; each rank keeps its own, named ``<stem>.rank<r>of<N><suffix>``.
    :param verbose: Progress bars (rank 0 only).
    :param kwargs: ``eps``, ``attacks``, ``batch_size``, ``surrogate``, ``n_queries``, ``seed``, as in
        ``evaluate_robustness``.
    """
    from art_rslad.evaluation import evaluate_robustness

    world = current_world(getattr(classifier, "device", None))
    if not world.is_distributed:
        return evaluate_robustness(classifier, x, y, state_path=state_path, verbose=verbose, **kwargs)
    world.check_fits(len(x), "x")
    if len(y) != len(x):
        raise ValueError(f"`x` has {len(x)} inputs but `y` has {len(y)} labels.")
    models = {"classifier": classifier, "surrogate": kwargs.get("surrogate")}
    check_agreement(world, {
        "inputs": len(x), "settings": {k: v for k, v in kwargs.items() if k != "surrogate"},
        **{f"{name}_weights_sha256": state_checksum(model.model) for name, model in models.items()
           if isinstance(model, PyTorchClassifier)},
    })
    if state_path is not None:
        path = Path(state_path)
        state_path = path.with_name(f"{path.stem}.rank{world.rank}of{world.size}{path.suffix}")
    rows = world.eval_slice(len(x))
    report = evaluate_robustness(classifier, x[rows], y[rows], state_path=state_path,
                                 verbose=verbose and world.is_main, **kwargs)
    return merge_reports(world.all_gather(report))
