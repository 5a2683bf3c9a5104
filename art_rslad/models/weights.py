"""Loading state dicts safely: ``torch.load(weights_only=True)`` only, common wrappers and key prefixes unwrapped.

A file whose unpickling would build anything but tensors and plain containers is refused, never executed.
Mismatches are reported by key: missing, unexpected and differently shaped entries, with a hint when only the
classifier's output size differs (another ``nb_classes``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from art_rslad.checkpoint import load_file

logger = logging.getLogger(__name__)

#: Keys under which training scripts commonly nest the model's weights in a checkpoint dict.
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model_state", "model", "net", "student",
                                 "params")
# Prefixes added by nn.DataParallel / DistributedDataParallel ("module.") and by wrapper modules ("model.").
KEY_PREFIXES: tuple[str, ...] = ("module.", "model.")
_MAX_KEYS_SHOWN = 8


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict (tensors by name) from ``path`` on the CPU, refusing anything else.

    Accepts torch's zip and legacy formats, a bare state dict or one nested under a key of :data:`WRAPPER_KEYS`.

    :param path: File written by ``torch.save``.
    :raises FileNotFoundError: When ``path`` does not exist.
    :raises ValueError: When the file is corrupt or truncated, holds objects other than tensors and plain
        containers (refused without running them), or holds no state dict.
    """
    file = Path(path)
    return _unwrap(load_file(file, map_location="cpu"), file)


def _is_state_dict(value: object) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(key, str) and isinstance(tensor, torch.Tensor) for key, tensor in value.items()
    )


def _unwrap(loaded: object, file: Path) -> dict[str, torch.Tensor]:
    if _is_state_dict(loaded):
        return dict(loaded)  # type: ignore[call-overload]
    if isinstance(loaded, Mapping):
        for key in WRAPPER_KEYS:
            if _is_state_dict(loaded.get(key)):
                logger.info("Weights in %s read from its %r entry", file, key)
                return dict(loaded[key])
    found = f"a dict with keys {sorted(map(str, loaded))[:_MAX_KEYS_SHOWN]}" if isinstance(loaded, Mapping) \
        else f"a {type(loaded).__name__}"
    raise ValueError(
        f"{str(file)!r} holds {found}, not a state dict (a mapping from names to tensors, possibly under one of "
        f"the keys {', '.join(WRAPPER_KEYS)})."
    )


def _strip_prefixes(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Remove a prefix shared by every key (repeatedly) while the keys do not already match ``expected``."""
    while not set(state) <= expected:
        prefix = next((p for p in KEY_PREFIXES if all(key.startswith(p) for key in state)), None)
        if prefix is None:
            break
        logger.info("Stripping the key prefix %r from the state dict", prefix)
        state = {key[len(prefix):]: value for key, value in state.items()}
    return state


def _shown(keys: list[str]) -> str:
    more = f" and {len(keys) - _MAX_KEYS_SHOWN} more" if len(keys) > _MAX_KEYS_SHOWN else ""
    return ", ".join(keys[:_MAX_KEYS_SHOWN]) + more


def match_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return ``state`` with prefixes stripped and ignorable keys dropped, or raise naming the keys that differ.

    :param model: The module the weights are for.
    :param state: Tensors by name.
    :raises ValueError: When keys are missing or unexpected, or shapes differ.
    """
    own = model.state_dict()
    expected = set(own)
    state = _strip_prefixes(state, expected)
    ignored = tuple(getattr(model, "ignored_state_prefixes", ()))
    state = {key: value for key, value in state.items() if key in expected or not key.startswith(ignored)}
    # Old checkpoints predate BatchNorm's num_batches_tracked counter; it does not affect the forward pass.
    missing = sorted(key for key in expected - set(state) if not key.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - expected)
    mismatched = sorted(key for key in expected & set(state) if own[key].shape != state[key].shape)
    if not (missing or unexpected or mismatched):
        return state
    problems = []
    if missing:
        problems.append(f"missing keys: {_shown(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_shown(unexpected)}")
    if mismatched:
        problems.append("shape mismatches: " + _shown(
            [f"{key} file {tuple(state[key].shape)} vs model {tuple(own[key].shape)}" for key in mismatched]
        ))
    hint = ""
    last = list(own)[-1]
    if mismatched and set(mismatched) <= {last, last.rsplit(".", 1)[0] + ".weight"} and not (missing or unexpected):
        hint = (f" Only the output layer differs: the file has {state[last].shape[0]} classes, the model "
                f"{own[last].shape[0]}; pass the matching nb_classes.")
    raise ValueError(
        f"The state dict does not fit {type(model).__name__}: " + "; ".join(problems) + "." + hint
        + " Check the architecture name and its options."
    )


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load the state dict at ``path`` into ``model`` (in place) and return ``model``.

    Reads with ``torch.load(weights_only=True)`` on the CPU (torch's zip or legacy format), unwraps common checkpoint
    dicts (:data:`WRAPPER_KEYS`), strips the prefixes ``module.`` and ``model.``, and then requires an exact
    match of names and shapes (BatchNorm's ``num_batches_tracked`` may be absent).

    :param model: Module of the matching architecture and class count.
    :param path: File written by ``torch.save(model.state_dict(), path)`` or a checkpoint dict holding one.
    :raises ValueError: On a corrupt file, a pickle that is not a plain state dict, or a mismatch (keys named).
    """
    state = match_state_dict(model, read_state_dict(path))
    model.load_state_dict(state, strict=False)
    return model
