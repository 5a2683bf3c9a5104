"""The process group of a run under torch.distributed (torchrun): who this process is, and agreement between ranks.

Run any script that calls a trainer's ``fit`` / ``fit_generator`` under ``torchrun --nproc-per-node N script.py``:

* :func:`current_world` joins the process group that torchrun describes in the environment (``RANK``,
  ``WORLD_SIZE``, ``MASTER_ADDR``...), with backend ``nccl`` when the run's device is CUDA and ``gloo`` when it is
  the CPU (even on a machine with GPUs), unless the script initialised one itself. Without a group and without
  torchrun's variables the world is one process and none of this changes anything.
* :class:`World` is this process's rank among the run's processes; it says how the inputs are split:
  :meth:`World.train_shard` like ``DistributedSampler`` (padded to a multiple of the world size, every ``size``-th
  index of the epoch's permutation, the same on every rank), :meth:`World.eval_slice` as contiguous blocks without
  padding; :meth:`World.sum` and :meth:`World.all_gather` combine what the ranks found.
* :func:`check_agreement` and :func:`state_checksum` make every rank raise the same error when the ranks were
  started with different settings or weights.
* Rank 0 alone writes files, logs and shows progress bars (the other ranks keep errors only on the ``art_rslad``
  loggers); :func:`on_main` runs an action (preparing or writing a run folder) on rank 0 alone and hands its
  result, or its exception, to every rank; :func:`command_world` is the process group of one command-line command
  (``art-rslad train``, ``compare``, ``eval``), joined at its start and left at its end with
  :func:`leave_process_group`, which a torchrun script also calls last.

What runs on top of it: the student under DistributedDataParallel and the sharded data generators are in
:mod:`art_rslad.trainers.ddp`, the sharded evaluation in :mod:`art_rslad.evaluation.sharded`. See
``docs/distributed.md`` for the commands.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Environment variables torchrun sets for every worker.
TORCHRUN_VARIABLES: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def default_backend(device: torch.device | str | None = None) -> str:
    """``nccl`` for a CUDA device (or, with no device given, when CUDA is available), else ``gloo``.

    The device decides, not the machine: a run on the CPU uses gloo even where CUDA is available.
    """
    if device is None:
        return "nccl" if torch.cuda.is_available() else "gloo"
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def timeout_of(minutes: float | None) -> timedelta | None:
    """The process group's timeout for ``minutes`` (None: torch's default, 10 minutes for NCCL, 30 for gloo)."""
    if minutes is None:
        return None
    if not math.isfinite(minutes) or minutes <= 0:
        raise ValueError(f"The process group timeout must be a positive number of minutes, got {minutes}.")
    return timedelta(minutes=minutes)


def launched_by_torchrun() -> bool:
    """Whether the environment describes a process group of more than one process (as torchrun's does)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


def init_distributed(backend: str | None = None, timeout: timedelta | None = None, *,
                     device: torch.device | str | None = None) -> World:
    """Join the process group torchrun describes (idempotent) and return this process's :class:`World`.

    Call it at the top of a torchrun script, before building classifiers: with the ``nccl`` backend it selects the
    GPU ``LOCAL_RANK`` (``torch.cuda.set_device``), so that ``PyTorchClassifier(..., device_type="gpu")`` places
    each rank's models on its own GPU; with ``gloo`` it touches no GPU. Without torchrun's variables (and no group
    initialised) it returns the one-process world.

    :param backend: ``nccl`` or ``gloo``; default :func:`default_backend` of ``device``.
    :param timeout: Timeout of collective operations (torch's default when None: 10 minutes for NCCL). A sharded
        evaluation's final gather waits for the slowest rank; raise it when one shard may take longer.
    :param device: The device the run's models use (``"cpu"``, ``"cuda"``); None: CUDA when available. It picks
        the backend when ``backend`` is None: a CPU run uses gloo even on a machine with GPUs.
    """
    joining = dist.is_available() and not dist.is_initialized() and launched_by_torchrun()
    if joining:
        backend = backend or default_backend(device)
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
    world = init_distributed(device=device)
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
def command_world(device: str | None = None, timeout: timedelta | None = None) -> Iterator[World]:
    """The :class:`World` of one command-line command: joins torchrun's process group for the block, leaves it after.

    When the block ends normally every rank calls :func:`leave_process_group`. When it raises (on every rank when
    the error came from :func:`on_main`), the group is not destroyed, since a rank that failed alone must not wait
    for ranks that are still inside a collective; the process only gives gloo's threads a moment before it exits
    with the error. A group initialised before the block is left as it is, and in a one-process run nothing happens.

    :param device: The command's ``--device`` (None: CUDA when available); picks the backend (see
        :func:`init_distributed`).
    :param timeout: Timeout of the group's collectives (None: torch's default).
    """
    joined = not (dist.is_available() and dist.is_initialized())
    world = init_distributed(timeout=timeout, device=device)
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


def _quiet_other_ranks(world: World) -> None:
    """On ranks other than 0, keep only errors from art_rslad's loggers (rank 0 logs for the run)."""
    package_logger = logging.getLogger("art_rslad")
    if not world.is_main and package_logger.getEffectiveLevel() < logging.ERROR:
        package_logger.setLevel(logging.ERROR)


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
