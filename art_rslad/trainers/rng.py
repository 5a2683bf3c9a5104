"""The random-number state a checkpoint keeps for an exact resume, and deterministic algorithms for a GPU.

:func:`rng_state` is what the loop saves: torch's CPU generator, the attack's own generator (whose state is
device-specific: 16 bytes on CUDA, 5056 on the CPU) and, on CUDA, the GPU's default generator.
:func:`check_rng_device` refuses, before anything is loaded, a checkpoint whose attack generator belongs to
another kind of device than the resuming run's; :func:`restore_rng` puts the states back.
:func:`deterministic_algorithms` is the ``deterministic`` option of the trainers (see docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

#: cuBLAS needs a fixed workspace for deterministic results (read when cuBLAS starts; see torch's reproducibility
#: notes). Set only where the user has not set it.
CUBLAS_WORKSPACE = ":4096:8"
#: Bytes of a CUDA generator's state (Philox: seed and offset); a CPU generator's (Mersenne Twister) is 5056.
CUDA_GENERATOR_STATE_BYTES = 16


def rng_state(attack_generator: torch.Generator | None, device: torch.device) -> dict[str, Any]:
    """The random-number state of a training run on ``device``, for its checkpoint."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(),
                             "attack": None if attack_generator is None else attack_generator.get_state(),
                             "attack_device": None if attack_generator is None else attack_generator.device.type}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _saved_device(rng: dict[str, Any]) -> str:
    """The kind of device whose generator wrote ``rng["attack"]`` (from its size in checkpoints that predate the
    ``attack_device`` record)."""
    return rng.get("attack_device") or ("cuda" if rng["attack"].numel() == CUDA_GENERATOR_STATE_BYTES else "cpu")


def check_rng_device(rng: dict[str, Any], attack_generator: torch.Generator | None, path: str | Path) -> None:
    """Raise a ValueError naming both devices when the checkpoint's attack generator state cannot be restored into
    ``attack_generator`` (it was written on another kind of device): before anything of the checkpoint is loaded.
    """
    if attack_generator is None or rng.get("attack") is None:
        return
    saved, now = _saved_device(rng), attack_generator.device.type
    if saved != now or rng["attack"].numel() != attack_generator.get_state().numel():
        raise ValueError(
            f"`resume_from` {path} was written by a run on {saved} and this run is on {now}: the attack's "
            "random-number state of one kind of device cannot continue on another, so the resumed run would not be "
            f"the interrupted one. Resume on {saved} (--device {saved}), or start the run again on {now}. The "
            f"weights alone load anywhere: art_rslad.checkpoint.load_checkpoint({str(path)!r}, map_location='cpu')."
        )


def restore_rng(rng: dict[str, Any], attack_generator: torch.Generator | None, device: torch.device) -> None:
    """Put back what :func:`rng_state` saved (checked first by :func:`check_rng_device`)."""
    torch.set_rng_state(rng["torch"].cpu())
    if attack_generator is not None and rng.get("attack") is not None:
        attack_generator.set_state(rng["attack"].cpu())
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"].cpu(), device)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """With ``enabled``, torch's deterministic algorithms for the block (then the caller's settings again).

    ``torch.use_deterministic_algorithms(True)`` (an operation with no deterministic version raises), cuDNN's
    deterministic kernels without benchmarking, and cuBLAS's fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, unless
    set; it takes effect only if cuBLAS has not started in this process). On the CPU the trainers' operations are
    deterministic already; on a GPU this makes an interrupted and resumed run bit-identical to an uninterrupted one
    on the same GPU and software, at a cost in speed (slower kernels, no cuDNN autotuning).
    """
    if not enabled:
        yield
        return
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
