"""Run folders: what a run and a compare write, how a folder is prepared, resumed or overwritten, and read back.

A run folder holds ``run.json`` (what the run is and how far it got), ``config.toml``, ``run.log``,
``metrics.jsonl`` (one JSON line per epoch), ``last.pt`` and ``best.pt`` (atomic, self-describing checkpoints;
"best" is the epoch with the highest PGD-10 accuracy on a validation split held out of the training set, never the
test set), ``eval_best.npz`` and ``eval_last.npz`` (robustness reports in their compact form; ``.json`` while an
evaluation runs), ``results.md``, the trained student ``student.pt`` (best checkpoint, plain state dict) with its
model card ``student.json``, each network its method trains beside the student, at the same epoch, as ``<name>.pt``
(PeerAiD's ``peer.pt``), and ``figures/``. A finished run stored compactly (docs/runs.md, "Compact run folders")
keeps ``student.pt`` and its reports, not the training checkpoints: :func:`checkpoint_weights` reads the weights
from whichever is there. A compare folder holds ``compare.json``, one run folder per (method, seed) under ``runs/``
(``runs/rslad+igdm/seed-0`` for a variant), ``comparison.md`` / ``comparison.json`` (the paper's table, mean ± std
over seeds), ``compare.log`` and ``figures/``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from art_rslad.checkpoint import load_checkpoint, load_file, write_text_atomic
from art_rslad.distributed import World, on_main
from art_rslad.experiments.config import Config
from art_rslad.experiments.lock import LOCK_NAME, FolderLock
from art_rslad.experiments.variants import SEPARATOR
from art_rslad.report import CHECKPOINTS
from art_rslad.trainers.registry import METHODS

RUN_FORMAT = "art-rslad-run"
COMPARE_FORMAT = "art-rslad-compare"
#: Files a run writes into its folder (``overwrite=True`` removes exactly these, :data:`RUN_STATES` and
#: ``figures/``).
RUN_FILES: tuple[str, ...] = ("run.json", "config.toml", "run.log", "metrics.jsonl", "last.pt", "best.pt",
                              "eval_best.npz", "eval_last.npz", "results.md", "student.pt", "student.json")
#: The resume states of a run's evaluations, there while they run (the finished reports replace them).
RUN_STATES: tuple[str, ...] = ("eval_best.json", "eval_last.json")


def method_files() -> tuple[str, ...]:
    """Files only some methods' runs write: each network a registered method trains beside the student, as
    ``<name>.pt`` (PeerAiD's ``peer.pt``); ``overwrite=True`` removes them too."""
    return tuple(dict.fromkeys(net.file for method in METHODS.values() for net in method.trained_networks))


COMPARE_FILES: tuple[str, ...] = ("compare.json", "comparison.md", "comparison.json", "compare.log")
#: The suffix of the compressed form of a finished folder's ``metrics.jsonl`` and logs (docs/runs.md, "Compact run
#: folders"), and those files: no run writes them, ``overwrite=True`` removes them too.
COMPRESSED = ".gz"
COMPACTED_FILES: tuple[str, ...] = tuple(name + COMPRESSED for name in ("metrics.jsonl", "run.log", "compare.log"))
FIGURES = "figures"
RUNS = "runs"
#: Keys of a recorded identity that a resume does not compare, and the folder keeps as it recorded them: the notes
#: that say in words how a setting was chosen, the transfer surrogate, which training never uses, and the clean
#: teacher's source, which the identity records with its weights' sha256 where the method uses it (``clean_teacher``).
PROSE_KEYS: tuple[tuple[str, ...], ...] = (("config", "method_lr_note"), ("config", "method_overrides_note"),
                                           ("config", "transfer_surrogate"), ("config", "clean_teacher"))
#: Config keys added after run folders were first written, with the value that means "off": a folder recorded
#: without them resumes as long as they stay off.
LATER_CONFIG_KEYS: dict[str, Any] = {"igdm_alpha": 0.0, "weight_averaging": "", "loss_scale": 0.0,
                                     "method_overrides": {}, "lr_schedule": "step", "lr_cosine_start": 0,
                                     "weight_averaging_start": -1}


@dataclass
class RunResult:
    """What a finished :func:`~art_rslad.experiments.train.train_run` produced (everything also lies in
    :attr:`out_dir`).

    :param out_dir: The run folder.
    :param method: Training method (a name of :data:`art_rslad.trainers.registry.METHODS`).
    :param config: The run's configuration.
    :param history: Per-epoch records (loss, training accuracy, lr, validation clean and PGD-10 accuracy, seconds).
    :param best_epoch: The epoch (1-based) with the highest validation PGD-10 accuracy.
    :param accuracy: Checkpoint (``best``, ``last``) -> attack name -> test accuracy in [0, 1].
    :param nb_test: Number of test images evaluated.
    :param nb_train: Number of training images the run trained on (None: a folder written before runs recorded it).
    """

    out_dir: Path
    method: str
    config: Config
    history: list[dict[str, float]]
    best_epoch: int
    accuracy: dict[str, dict[str, float]]
    nb_test: int
    nb_train: int | None = None

    @property
    def checkpoints(self) -> dict[str, Path]:
        """Checkpoint name -> path of the self-describing training checkpoint."""
        return {name: self.out_dir / f"{name}.pt" for name in CHECKPOINTS}


def run_folder(compare_dir: Path, method: str, seed: int) -> Path:
    """The folder of the (method, seed) run inside a compare folder."""
    return compare_dir / RUNS / method / f"seed-{seed}"


def check_writable(folder: Path, argument: str) -> None:
    """Create ``folder`` and write a probe file into it; a ValueError names ``argument`` when that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"`{argument}` {folder} cannot be written ({error.strerror or error}); choose another "
                         "folder or fix its permissions.") from error


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a ValueError says the folder holds no usable run otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} cannot be read as JSON ({error}); the folder does not hold a usable run.") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object.")
    return data


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_text_atomic(json.dumps(data, indent=2) + "\n", path)


def _differences(saved: Any, wanted: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON-like values, by dotted key."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        lines = []
        for key in sorted(set(saved) | set(wanted), key=str):
            lines += _differences(saved.get(key), wanted.get(key), f"{prefix}{key}.")
        return lines
    return [] if saved == wanted else [f"{prefix.rstrip('.')}: folder {saved!r}, now {wanted!r}"]


def _comparable(identity: Any) -> Any:
    """The part of ``identity`` a resume must match: without the :data:`PROSE_KEYS`, without the
    :data:`LATER_CONFIG_KEYS` at their "off" value, and with the per-method tables (``method_lr``,
    ``method_overrides``) narrowed to the run's own method (a compare's identity drops them: each run checks its
    own), so that a preset gaining a method still resumes the runs it already holds."""
    if not isinstance(identity, dict):
        return identity
    stripped = json.loads(json.dumps(identity))
    for *parents, leaf in PROSE_KEYS:
        table = stripped
        for parent in parents:
            table = table.get(parent) if isinstance(table, dict) else None
        if isinstance(table, dict):
            table.pop(leaf, None)
    config = stripped.get("config")
    if isinstance(config, dict):
        own = str(stripped.get("method", ""))
        for key in ("method_lr", "method_overrides"):
            if isinstance(config.get(key), dict):
                config[key] = {name: value for name, value in config[key].items()
                               if own and name in (own, own.split(SEPARATOR)[0])}
        for key, off in LATER_CONFIG_KEYS.items():
            if config.get(key, off) == off:
                config.pop(key, None)
    return stripped


def prepare_folder(folder: Path, marker: str, identity: dict[str, Any], *, resume: bool, overwrite: bool,
                   argument: str, owned: Sequence[str]) -> dict[str, Any] | None:
    """Make ``folder`` ready for a run described by ``identity``; return the saved marker when resuming.

    Refuses (FileExistsError) a folder that holds another run or other files unless ``overwrite``, and
    (ValueError) a resume with nothing to resume or a run that differs from ``identity``.
    """
    if resume and overwrite:
        raise ValueError("`resume` and `overwrite` exclude each other: resume continues the run in the folder, "
                         "overwrite deletes it.")
    check_writable(folder, argument)
    marker_path = folder / marker
    if resume:
        if not marker_path.is_file():
            raise ValueError(f"Nothing to resume in {folder}: it holds no {marker}. Start the run without "
                             "resume=True.")
        saved = read_json(marker_path)
        differences = _differences(_comparable(saved.get("identity")), _comparable(identity))
        if differences:
            raise ValueError(f"Cannot resume: {folder} holds a different run ("
                             + "; ".join(differences[:8]) + "). Use another folder, or overwrite=True to replace it.")
        return saved
    existing = sorted(path.name for path in folder.iterdir()
                      if path.name != LOCK_NAME and not path.name.startswith(".write-test-"))
    if existing and not overwrite:
        if marker_path.is_file():
            raise FileExistsError(f"{folder} already holds a run. Pass resume=True to continue it, "
                                  "overwrite=True to replace it, or choose another folder.")
        raise FileExistsError(f"{folder} already holds other files ({', '.join(existing[:5])}) and no run to "
                              "resume. Pass overwrite=True to replace them, or choose another folder.")
    if overwrite:
        for name in owned:
            (folder / name).unlink(missing_ok=True)
        for name in (FIGURES, RUNS):
            if (folder / name).is_dir():
                shutil.rmtree(folder / name)
    return None


@contextlib.contextmanager
def held(world: World, folder: Path, argument: str = "out_dir") -> Iterator[None]:
    """Hold ``folder``'s :class:`~art_rslad.experiments.lock.FolderLock` on rank 0 for the block (the other ranks
    write nothing); every rank raises when the folder cannot be written or another process holds it."""
    lock = FolderLock(folder, argument)

    def take() -> None:
        check_writable(folder, argument)
        lock.__enter__()

    on_main(world, take)
    try:
        yield
    finally:
        if world.is_main:
            lock.__exit__(None, None, None)


@contextlib.contextmanager
def log_to(path: Path, info_from: Sequence[str] | None = None) -> Iterator[None]:
    """Copy the package's log records (INFO and above) into ``path`` for the duration of the block.

    :param info_from: Where given, the INFO records of only these loggers are copied (warnings and errors all
        are): a compare's log keeps its own lines and each run's start and end, not the epochs that each run's
        own log holds.
    """
    package_logger = logging.getLogger("art_rslad")
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(logging.INFO)
    if info_from is not None:
        names = tuple(info_from)
        handler.addFilter(lambda record: record.levelno > logging.INFO or record.name in names)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous_level = package_logger.level
    if package_logger.getEffectiveLevel() > logging.INFO:
        package_logger.setLevel(logging.INFO)
    package_logger.addHandler(handler)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
        handler.close()


def load_run(out_dir: str | os.PathLike[str]) -> RunResult:
    """Read a finished run back from its folder (no model is loaded)."""
    folder = Path(out_dir)
    marker = read_json(folder / "run.json")
    if marker.get("format") != RUN_FORMAT:
        raise ValueError(f"{folder / 'run.json'} is not an art-rslad run marker.")
    if marker.get("status") != "finished":
        raise ValueError(f"The run in {folder} is not finished (status {marker.get('status')!r}); continue it "
                         "with resume=True.")
    identity = marker["identity"]
    return RunResult(folder, identity["method"], Config.from_dict(identity["config"]), load_run_history(folder),
                     int(marker["best_epoch"]), marker["accuracy"], int(marker["nb_test"]), marker.get("nb_train"))


def load_run_history(folder: Path) -> list[dict[str, float]]:
    """The per-epoch records of the run in ``folder`` (its ``metrics.jsonl``, or the compressed
    ``metrics.jsonl.gz`` of a compacted folder), every session's."""
    path = folder / "metrics.jsonl"
    if path.is_file() or not path.with_name(path.name + COMPRESSED).is_file():
        text = path.read_text(encoding="utf-8")
    else:
        text = gzip.decompress(path.with_name(path.name + COMPRESSED).read_bytes()).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check_resumable(last: Path) -> None:
    """Refuse a ``last.pt`` that cannot be read, saying how the run can go on: from ``best.pt`` (an epoch-end
    checkpoint with the full optimizer state) where there is one, or from scratch with ``overwrite=True``."""
    try:
        load_checkpoint(last)
    except ValueError as error:
        best = last.with_name("best.pt")
        way = (f"The run can continue from {best.name} (an epoch-end checkpoint with the full optimizer state, "
               f"saved at the best epoch): replace {last.name} by a copy of it and run again with resume=True; "
               "the epochs after it are trained again. Or start the run again with overwrite=True."
               if best.is_file() else "Start the run again with overwrite=True.")
        raise ValueError(f"Cannot resume from {last}: {error} {way}") from error


def results_text(result: RunResult, table: Any) -> str:
    """results.md: the run's table, or (a run without test evaluation) what the run chose on validation."""
    if table is not None:
        return table.to_markdown()
    history = load_run_history(result.out_dir)
    best = next(record for record in history if record["epoch"] == result.best_epoch)
    return (f"# {result.method}: no test evaluation (test_size=0)\n\nThe test set was not looked at. Best epoch "
            f"{result.best_epoch} of {result.config.nb_epochs} by validation PGD-10 accuracy: "
            f"{100 * best['val_pgd']:.2f}% (validation clean accuracy {100 * best['val_clean']:.2f}%).\n")


def checkpoint_weights(out_dir: str | os.PathLike[str], checkpoint: str) -> dict[str, torch.Tensor]:
    """The model weights of a run's ``best`` or ``last`` checkpoint: from the training checkpoint (``best.pt``,
    ``last.pt``), or in a compacted finished run from ``student.pt`` (the best weights, also the last ones where
    run.json records that the last epoch was the best)."""
    folder = Path(out_dir)
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"`checkpoint` must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}.")
    if (folder / f"{checkpoint}.pt").is_file():
        return load_checkpoint(folder / f"{checkpoint}.pt")["model_state"]
    marker = read_json(folder / "run.json")
    if checkpoint == "last" and marker.get("best_epoch") != marker["identity"]["config"]["nb_epochs"]:
        raise FileNotFoundError(f"{folder} keeps no last.pt (a compacted finished run) and its last epoch is not the "
                                "best one: the last checkpoint's weights are not kept, only its reports.")
    return load_file(folder / "student.pt")


__all__ = [
    "COMPACTED_FILES",
    "COMPARE_FILES",
    "COMPARE_FORMAT",
    "COMPRESSED",
    "FIGURES",
    "LATER_CONFIG_KEYS",
    "PROSE_KEYS",
    "RUNS",
    "RUN_FILES",
    "RUN_FORMAT",
    "RUN_STATES",
    "RunResult",
    "check_resumable",
    "check_writable",
    "checkpoint_weights",
    "held",
    "load_run",
    "load_run_history",
    "log_to",
    "method_files",
    "prepare_folder",
    "read_json",
    "results_text",
    "run_folder",
    "write_json",
]
