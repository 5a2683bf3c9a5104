"""Where the shared loop's batches come from: numpy arrays (:func:`array_batches`) or an ART DataGenerator
(:func:`generator_batches_of`), each epoch in an order that a resume can reproduce from the epoch alone."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from art.data_generators import DataGenerator

from art_rslad.distributed import World
from art_rslad.trainers.ddp import generator_batches, set_generator_epoch


@dataclass
class Batch:
    """One training batch on the student's device: natural inputs, class indices, teacher probabilities."""

    x: torch.Tensor
    y: torch.Tensor
    teacher_probs: torch.Tensor | None


@dataclass
class BatchSource:
    """``batches(epoch, start)`` yields the epoch's batches from index ``start``; ``fingerprint`` identifies the data
    in checkpoints (a resume must see the same)."""

    batches: Callable[[int, int], Iterator[Batch]]
    nb_batches: int
    batch_size: int
    fingerprint: dict[str, Any]


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (on the host) on ``device``: through pinned memory and without blocking when that is a GPU (the copy
    then overlaps the work queued before it), as it is otherwise. Pinning is done only for a CUDA target."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def teacher_probs_once(teacher_logits: Callable[[torch.Tensor], torch.Tensor], x_all: torch.Tensor, batch_size: int,
                       device: torch.device) -> torch.Tensor:
    """The teacher's probabilities on every training input, once (the data are not augmented), kept on the host.

    In chunks of one training batch: the teacher's activations then peak no higher than in a training step.
    """
    chunks = [torch.softmax(teacher_logits(to_device(x_all[i:i + batch_size], device)), dim=1).cpu()
              for i in range(0, len(x_all), batch_size)]
    return torch.cat(chunks)


def array_batches(x: np.ndarray, y: np.ndarray, teacher_probs: torch.Tensor | None, batch_size: int, seed: int,
                  world: World, device: torch.device) -> BatchSource:
    """Batches of (x, y) in a permutation drawn from ``(seed, epoch)`` (the same on every rank, then sharded),
    with the teacher's probabilities computed once per sample (``teacher_probs``, rows as x)."""
    x_all, y_all = torch.from_numpy(x), torch.from_numpy(y)
    nb_samples = len(x_all)
    nb_batches = math.ceil(world.train_shard_size(nb_samples) / batch_size)

    def batches(epoch: int, start: int) -> Iterator[Batch]:
        permutation = np.random.default_rng([seed, epoch]).permutation(nb_samples)
        order = world.train_shard(torch.from_numpy(permutation))
        for index in range(start, nb_batches):
            rows = order[index * batch_size:(index + 1) * batch_size]
            probs = None if teacher_probs is None else to_device(teacher_probs[rows], device)
            yield Batch(to_device(x_all[rows], device), to_device(y_all[rows], device), probs)

    fingerprint = {"samples": nb_samples, "labels_sum": int(y.sum()),
                   # 9 significant digits: the same data sums alike on every CPU; numpy accumulates in float64
                   # without a float64 copy of the data (torch's sum(dtype=float64) makes one)
                   "x_sum": float(f"{float(np.sum(x, dtype=np.float64)):.9g}")}
    return BatchSource(batches, nb_batches, batch_size, fingerprint)


def generator_batches_of(generator: Any, world: World, check: Callable[[np.ndarray, np.ndarray], tuple],
                         teacher_probs: Callable[[torch.Tensor], torch.Tensor] | None,
                         device: torch.device) -> BatchSource:
    """Batches drawn from an ART DataGenerator, checked by ``check`` and given the teacher's probabilities per
    batch (augmented inputs change every epoch). A resume mid-epoch draws and discards the batches before
    ``start``."""
    if not isinstance(generator, DataGenerator):
        raise ValueError(f"`generator` must be an ART DataGenerator, got {type(generator).__name__}.")
    if generator.size is None or generator.size <= 0:
        raise ValueError("`generator` must report its dataset size (DataGenerator.size > 0).")
    nb_batches = generator_batches(generator, world)

    def batches(epoch: int, start: int) -> Iterator[Batch]:
        set_generator_epoch(generator, epoch)
        for index in range(nb_batches):
            x_batch, y_batch = generator.get_batch()
            if index < start:
                continue
            x_np, y_np = check(np.asarray(x_batch), np.asarray(y_batch))
            x_t = to_device(torch.from_numpy(x_np), device)
            probs = None if teacher_probs is None else teacher_probs(x_t)
            yield Batch(x_t, to_device(torch.from_numpy(y_np), device), probs)

    return BatchSource(batches, nb_batches, generator.batch_size, {"samples": int(generator.size)})
