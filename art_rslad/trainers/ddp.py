"""The student under DistributedDataParallel and the data generators of a distributed training run.

The shared loop (:mod:`art_rslad.trainers.base`) calls these in a run of several processes (torchrun; the process
group and :class:`~art_rslad.distributed.World` are in :mod:`art_rslad.distributed`); in a one-process run each
of them is a no-op or the plain one-process answer.

* :func:`wrap_student` checks that every rank runs the same configuration and teacher (checksums compared across
  ranks) and wraps the student in ``DistributedDataParallel``. Only the training loss's forward passes go through
  the wrapper (so their gradients are averaged over ranks); the inner attack differentiates the plain student with
  input-only gradients, and the trainer's ``get_classifier()`` keeps the plain student.
* :func:`sync_buffers` copies rank 0's BatchNorm statistics to every rank after each step;
  :func:`convert_sync_batchnorm` makes the batch statistics global instead (GPUs only).
* :func:`generator_batches`, :func:`set_generator_epoch` and :func:`distributed_generator`: ``fit_generator``
  with a ``DistributedSampler`` that gives each rank its own shard of every epoch.

``batch_size`` is per rank (see docs/decisions.md, "Per-rank batch under torchrun").
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.distributed as dist
from art.data_generators import DataGenerator, PyTorchDataGenerator
from art.estimators.classification import PyTorchClassifier

from art_rslad.distributed import World, check_agreement, current_world, state_checksum
from art_rslad.estimators import forward_logits


# --------------------------------------------------------------------------------------- the student under DDP
def training_config(student: PyTorchClassifier, teacher: PyTorchClassifier | None, run_config: dict[str, Any],
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> dict[str, Any]:
    """What every rank of a training run must agree on: the run's settings, optimizer, scheduler and teacher."""
    optimizer = student.optimizer
    return {
        "run": run_config,
        "optimizer": {"type": type(optimizer).__name__,
                      "groups": [{k: v for k, v in group.items() if k != "params"}
                                 for group in optimizer.param_groups]},
        "scheduler": None if scheduler is None else type(scheduler).__name__,
        "teacher_weights_sha256": None if teacher is None else state_checksum(teacher.model),
    }


class _StudentForward(torch.nn.Module):
    """The student with its classifier's ART preprocessing, as one module for DistributedDataParallel."""

    def __init__(self, classifier: PyTorchClassifier) -> None:
        super().__init__()
        self.student = classifier.model
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_logits(self.classifier, x)


def wrap_student(student: PyTorchClassifier, teacher: PyTorchClassifier | None, world: World,
                 run_config: dict[str, Any], scheduler: torch.optim.lr_scheduler.LRScheduler | None,
                 ) -> torch.nn.Module | None:
    """The student wrapped in DistributedDataParallel for the training loss, or None in a one-process run.

    First checks that all ranks agree (:func:`check_agreement` on :func:`training_config`), then wraps; DDP's
    constructor broadcasts rank 0's student weights, and :func:`sync_buffers` its buffers, to the other ranks.
    Buffers are not broadcast at every forward: the loop calls :func:`sync_buffers` after every step instead.

    :param student: The student classifier (its model is wrapped; the classifier itself stays plain).
    :param teacher: The teacher, whose weights every rank must share; it stays unwrapped.
    :param world: This process's world.
    :param run_config: The run's settings, compared across ranks.
    :param scheduler: The run's learning-rate scheduler (its type is compared).
    """
    if not world.is_distributed:
        return None
    check_agreement(world, training_config(student, teacher, run_config, scheduler))
    device = student.device
    ddp_class = torch.nn.parallel.DistributedDataParallel
    # torch >= 2.13 renamed broadcast_buffers to forward_sync_buffers (the old name warns)
    buffer_option = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp_class).parameters \
        else "broadcast_buffers"
    ddp = ddp_class(_StudentForward(student), device_ids=[device] if device.type == "cuda" else None,
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
    buffers = [buffer for buffer in ddp.module.buffers() if buffer.numel()]
    if not buffers:
        return
    # One broadcast for all of them, whatever their dtypes (float statistics, int64 counters): their bytes.
    flat = torch.cat([buffer.detach().contiguous().reshape(-1).view(torch.uint8) for buffer in buffers])
    dist.broadcast(flat, src=0)
    sizes = [buffer.numel() * buffer.element_size() for buffer in buffers]
    for buffer, values in zip(buffers, flat.split(sizes), strict=True):
        buffer.detach().copy_(values.view(buffer.dtype).view_as(buffer))


def average_buffers(module: torch.nn.Module, world: World) -> None:
    """Replace every floating-point buffer of ``module`` by its mean over the ranks (a collective; nothing in a
    one-process run).

    After each rank recomputes BatchNorm statistics over its own shard (SWA), their mean is the statistics of one
    pass over all shards: every rank has the same number of batches, and the statistics are means over batches.
    """
    if not world.is_distributed:
        return
    buffers = [buffer for buffer in module.buffers() if buffer.is_floating_point() and buffer.numel()]
    if not buffers:
        return
    flat = torch.cat([buffer.detach().reshape(-1).to(torch.float64) for buffer in buffers])
    dist.all_reduce(flat)
    flat /= world.size
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
            "(art_rslad.trainers.ddp.distributed_generator(dataset, batch_size) builds one)."
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
    world = current_world()
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world.size, rank=world.rank,
                                                  shuffle=shuffle, seed=seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers)
    return PyTorchDataGenerator(loader, size=len(dataset), batch_size=batch_size)  # type: ignore[arg-type]
