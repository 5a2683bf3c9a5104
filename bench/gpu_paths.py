"""The GPU paths that bench/gpu_check.sh runs beside its timings: NCCL, resume across devices, syncs per step.

    python -m torch.distributed.run --standalone --nproc-per-node N bench/gpu_paths.py nccl --device cuda --json J
    python bench/gpu_paths.py resume --device cuda --json J
    python bench/gpu_paths.py syncs --device cuda --json J

* ``nccl``: joins the process group as ``art-rslad`` does (:func:`art_rslad.distributed.init_distributed`, the
  backend following ``--device``), takes one DistributedDataParallel step with a BatchNorm model, then
  :func:`~art_rslad.trainers.ddp.sync_buffers`, an all_reduce and an all_gather, and (on CUDA) a SyncBatchNorm
  forward and backward; the JSON lists what ran and what one rank could not cover.
* ``resume``: a small RSLAD fit interrupted after a few steps and resumed from its ``last.pt``, against the
  uninterrupted fit: the largest weight difference, without and with ``deterministic`` (and the uninterrupted
  fit's seconds, the option's cost); then the ``last.pt`` loaded on the CPU.
* ``syncs``: host-device synchronisations per training step (``torch.cuda.set_sync_debug_mode("warn")``), with
  ART's identity preprocessing and with ``(mean, std)``. On the CPU there is nothing to count (recorded as such).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from art.estimators.classification import PyTorchClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script under torchrun

from art_rslad import distributed
from art_rslad.checkpoint import load_checkpoint
from art_rslad.trainers import AdversarialTrainerRSLAD
from art_rslad.trainers.base import AdversarialTrainerBase
from art_rslad.trainers.ddp import convert_sync_batchnorm, sync_buffers

SHAPE = (3, 32, 32)


class Net(torch.nn.Module):
    """A small CNN with BatchNorm (running statistics to synchronise) on CIFAR shapes."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(width)
        self.head = torch.nn.Linear(width * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.nn.functional.max_pool2d(torch.relu(self.norm(self.conv(x))), 2).flatten(1))


def classifier(device: str, seed: int, preprocessing: Any = None) -> PyTorchClassifier:
    torch.manual_seed(seed)
    model = Net()
    return PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), SHAPE, 10, clip_values=(0.0, 1.0),
                             optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                             preprocessing=preprocessing, device_type="cpu" if device == "cpu" else "gpu")


def data(nb: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((nb, *SHAPE), dtype=np.float32), rng.integers(0, 10, nb)


# ------------------------------------------------------------------------------------------- nccl
def nccl(device_name: str) -> dict[str, Any]:
    world = distributed.init_distributed(device=device_name)
    if not dist.is_initialized():  # one process: a one-rank group, as torchrun with --nproc-per-node 1 gives
        dist.init_process_group(distributed.default_backend(device_name), init_method="env://",
                                rank=0, world_size=1)
    device = torch.device("cuda", torch.cuda.current_device()) if device_name == "cuda" else torch.device("cpu")
    student = classifier(device_name, seed=0)
    ddp = torch.nn.parallel.DistributedDataParallel(student.model, device_ids=[device] if device.type == "cuda"
                                                    else None)
    x = torch.rand(8, *SHAPE, device=device)
    loss = torch.nn.functional.cross_entropy(ddp(x), torch.arange(8, device=device) % 10)
    loss.backward()
    student.optimizer.step()
    sync_buffers(ddp)
    total = torch.ones(1, device=device) * (dist.get_rank() + 1)
    dist.all_reduce(total)
    gathered = [torch.zeros(1, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, torch.full((1,), float(dist.get_rank()), device=device))
    covered = ["init_distributed", "DDP forward/backward", "sync_buffers", "all_reduce", "all_gather"]
    if device.type == "cuda":
        sync_student = convert_sync_batchnorm(classifier(device_name, seed=1))
        torch.nn.functional.cross_entropy(sync_student.model(x), torch.zeros(8, dtype=torch.long,
                                                                                device=device)).backward()
        covered.append("SyncBatchNorm forward/backward")
    size = dist.get_world_size()
    not_covered = [] if size > 1 else ["gradients averaged across ranks", "buffers reaching another rank",
                                       "set_device on a second GPU"]
    if device.type != "cuda":
        not_covered.append("NCCL and SyncBatchNorm (CPU: gloo)")
    result = {"backend": dist.get_backend(), "world_size": size, "rank": world.rank,
              "all_reduce": float(total), "all_gather": [float(value) for value in gathered],
              "covered": covered, "not_covered": not_covered}
    distributed.leave_process_group()
    return result


# ------------------------------------------------------------------------------------------- resume
@contextlib.contextmanager
def interrupted_at(call: int) -> Iterator[None]:
    """The ``call``-th training step raises KeyboardInterrupt (as Ctrl-C would); ``last.pt`` is written there."""
    original = AdversarialTrainerBase._train_step
    calls = {"count": 0}

    def step(self: AdversarialTrainerBase, batch: Any) -> Any:
        calls["count"] += 1
        if calls["count"] == call:
            raise KeyboardInterrupt
        return original(self, batch)

    AdversarialTrainerBase._train_step = step  # type: ignore[method-assign]
    try:
        yield
    finally:
        AdversarialTrainerBase._train_step = original  # type: ignore[method-assign]


def fit(device: str, deterministic: bool, folder: Path | None, resume: bool, nb: int) -> dict[str, torch.Tensor]:
    x, y = data(nb)
    student = classifier(device, seed=0)
    trainer = AdversarialTrainerRSLAD(student, classifier(device, seed=1), max_iter=3, verbose=False,
                                      deterministic=deterministic)
    trainer.fit(x, y, batch_size=32, nb_epochs=2, checkpoint_dir=folder,
                resume_from=folder / "last.pt" if resume and folder is not None else None)
    return {key: value.detach().float().cpu() for key, value in student.model.state_dict().items()}


def resume(device: str, folder: Path, nb: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    fit(device, False, None, False, nb)  # warm-up (CUDA context, kernels), so that the timed fits compare
    for deterministic in (False, True):
        run = folder / f"deterministic-{deterministic}"
        started = time.perf_counter()
        uninterrupted = fit(device, deterministic, None, False, nb)
        result[f"seconds_deterministic_{deterministic}"] = time.perf_counter() - started
        with interrupted_at(3), contextlib.suppress(KeyboardInterrupt):
            fit(device, deterministic, run, False, nb)
        resumed = fit(device, deterministic, run, True, nb)
        result[f"max_abs_difference_deterministic_{deterministic}"] = max(
            float((uninterrupted[key] - resumed[key]).abs().max()) for key in uninterrupted)
    checkpoint = load_checkpoint(folder / "deterministic-True" / "last.pt", map_location="cpu")
    result["last_pt_on_cpu"] = sorted({tensor.device.type for tensor in checkpoint["model_state"].values()})
    result["last_pt_rng"] = sorted(checkpoint["rng"])
    return result


# ------------------------------------------------------------------------------------------- syncs per step
def counted_steps(trainer: AdversarialTrainerBase, counts: list[int], cuda: bool) -> Callable[[Any], Any]:
    """The trainer's step, counting the synchronising CUDA calls it makes (none to count on the CPU)."""
    original = trainer._train_step

    def step(batch: Any) -> Any:
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                outcome = original(batch)
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
        counts.append(sum("synchroniz" in str(warning.message) for warning in caught))
        return outcome

    return step


def syncs(device: str, nb: int) -> dict[str, Any]:
    result: dict[str, Any] = {} if device == "cuda" else {"note": "the CPU has no host-device synchronisation: "
                                                                  "the steps run, the counts are 0 by definition"}
    x, y = data(nb)
    for name, preprocessing in (("identity", None), ("mean_std", (np.array([0.49, 0.48, 0.45], np.float32),
                                                                  np.array([0.25, 0.24, 0.26], np.float32)))):
        student = classifier(device, seed=0, preprocessing=preprocessing)
        trainer = AdversarialTrainerRSLAD(student, classifier(device, seed=1, preprocessing=preprocessing),
                                          verbose=False)
        counts: list[int] = []
        trainer._train_step = counted_steps(trainer, counts, device == "cuda")  # type: ignore[method-assign]
        trainer.fit(x, y, batch_size=32, nb_epochs=1)
        result[name] = {"syncs_per_step_median": statistics.median(counts[1:] or counts), "per_step": counts}
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=("nccl", "resume", "syncs"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--nb-inputs", type=int, default=256)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.check == "nccl":
        result = nccl(args.device)
        if result["rank"] != 0:
            return 0
    elif args.check == "resume":
        result = resume(args.device, args.json.with_suffix(""), args.nb_inputs)
    else:
        result = syncs(args.device, args.nb_inputs)
    result = {"benchmark": args.check, "device": args.device, **result}
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({key: value for key, value in result.items() if key != "per_step"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
