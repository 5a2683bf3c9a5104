"""Robust teachers by name from the RobustBench model zoo, as ART classifiers.

``load_robustbench_teacher("Zhang2019Theoretically")`` returns the paper's CIFAR-10 teacher (TRADES
WideResNet-34-10) as an ART :class:`PyTorchClassifier` with ``clip_values=(0, 1)``. RobustBench's own loader
builds the architecture and fills it from ``<model_dir>/<dataset>/<threat_model>/<name>.pt``; a missing file is
downloaded by RobustBench's own downloader (Google Drive) on a machine with internet. Every RobustBench model
takes inputs in [0, 1] and normalises them inside the model, so the classifier carries no ART preprocessing.

Needs the optional extra: ``pip install 'art-rslad[robustbench]'``.

Why :func:`import_robustbench` exists: ``robustbench`` 1.1.1 does not import in a fresh environment. Its
``eval.py`` imports ``autoattack``, the module name of Croce & Hein's GitHub package, which PyPI ships (and
robustbench's wheel requires) as ``pyautoattack``; its ``loaders.py`` imports ``pkg_resources``, which
setuptools >= 81 no longer ships, for one call, ``resource_filename``. While ``robustbench`` is imported (and
only then, so nothing else in the process sees them), ``pyautoattack`` is registered under the name
``autoattack`` and, where ``pkg_resources`` is absent, a one-function stand-in gives ``resource_filename`` the
same answer. Both are used only when the real module is missing, so users' setuptools is never pinned. The
alias lets robustbench import; ``robustbench.eval.benchmark`` itself calls the GitHub package's API
(``log_path=``, ``bs=``), which pyautoattack does not take, so evaluate with :func:`art_rslad.evaluate_robustness`.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import logging
import os
import sys
import types
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyautoattack
import pyautoattack.state
import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.checkpoint import load_file
from art_rslad.data import cache_dir, dataset_info
from art_rslad.models.classifier import resolve_device

logger = logging.getLogger(__name__)

SOURCE_PREFIX = "robustbench:"
INSTALL_HINT = "pip install 'art-rslad[robustbench]'"
MODEL_DIR_ENV = "ART_RSLAD_ROBUSTBENCH_DIR"
LEADERBOARD_URL = "https://robustbench.github.io"

# The teachers of Zi et al. (ICCV 2021) as teacher sources (the CIFAR presets name the same two).
PAPER_TEACHERS: dict[str, str] = {
    "cifar10": f"{SOURCE_PREFIX}Zhang2019Theoretically",
    "cifar100": f"{SOURCE_PREFIX}Gowal2020Uncovering",
}

# What RobustBench reports for the teachers the paper and its successors use (its leaderboard, as shipped in the
# robustbench 1.1.1 README). RobustBench's per-model JSON files are not in its wheel, so they are copied here.
# (name, dataset, threat_model) -> (architecture, clean accuracy %, AutoAttack accuracy %, paper)
REPORTED: dict[tuple[str, str, str], tuple[str, float, float, str]] = {
    ("Zhang2019Theoretically", "cifar10", "Linf"): (
        "WideResNet-34-10", 84.92, 53.08,
        "Theoretically Principled Trade-off between Robustness and Accuracy, https://arxiv.org/abs/1901.08573"),
    ("Gowal2020Uncovering", "cifar100", "Linf"): (
        "WideResNet-70-16", 60.86, 30.03,
        "Uncovering the Limits of Adversarial Training against Norm-Bounded Adversarial Examples, "
        "https://arxiv.org/abs/2010.03593"),
    ("Chen2021LTD_WRN34_20", "cifar10", "Linf"): (
        "WideResNet-34-20", 86.03, 57.71,
        "LTD: Low Temperature Distillation for Robust Adversarial Training, https://arxiv.org/abs/2111.02331"),
}

DATASETS: tuple[str, ...] = ("cifar10", "cifar100")
# RobustBench's threat models for CIFAR and the eps its leaderboard evaluates each at (inputs in [0, 1]).
THREAT_MODELS: dict[str, float | None] = {"Linf": 8 / 255, "L2": 0.5, "corruptions": None}


def _pkg_resources_stand_in() -> types.ModuleType:
    """A ``pkg_resources`` with the one function robustbench calls: ``resource_filename(module_name, path)``."""
    module = types.ModuleType("pkg_resources", "art-rslad's stand-in for setuptools' pkg_resources (robustbench)")

    def resource_filename(package_or_module: str, resource_name: str) -> str:
        # pkg_resources resolves a module name to the folder of that module's file.
        return os.path.join(os.path.dirname(sys.modules[package_or_module].__file__ or ""), resource_name)

    module.resource_filename = resource_filename  # type: ignore[attr-defined]
    return module


@contextlib.contextmanager
def _robustbench_import_names() -> Iterator[None]:
    """Register ``autoattack`` (as pyautoattack) and ``pkg_resources`` where missing; remove them afterwards."""
    added: dict[str, types.ModuleType] = {}
    if importlib.util.find_spec("autoattack") is None:
        added = {"autoattack": pyautoattack, "autoattack.state": pyautoattack.state}
    if importlib.util.find_spec("pkg_resources") is None:
        added["pkg_resources"] = _pkg_resources_stand_in()
    sys.modules.update(added)
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def import_robustbench() -> types.ModuleType:
    """Import and return ``robustbench.utils`` (see the module docstring for the two names it is given).

    :raises ImportError: when the extra is not installed, saying which pip command adds it.
    """
    try:
        with _robustbench_import_names():
            return importlib.import_module("robustbench.utils")
    except ImportError as error:
        raise ImportError(
            f"RobustBench teachers need the optional extra: {INSTALL_HINT} ({error})."
        ) from error


def _canonical(dataset: str, threat_model: str) -> tuple[str, str]:
    """``dataset`` and ``threat_model`` as RobustBench spells them, or a ValueError naming the argument."""
    dataset_key = str(dataset).lower().replace("-", "").replace("_", "")
    if dataset_key not in DATASETS:
        raise ValueError(f"`dataset` must be one of {list(DATASETS)} for a RobustBench teacher, got {dataset!r}.")
    threats = {name.lower(): name for name in THREAT_MODELS}
    if str(threat_model).lower() not in threats:
        raise ValueError(f"`threat_model` must be one of {list(THREAT_MODELS)}, got {threat_model!r}.")
    return dataset_key, threats[str(threat_model).lower()]


def strip_source_prefix(name: str) -> str:
    """``"robustbench:Zhang2019Theoretically"`` -> ``"Zhang2019Theoretically"``; bare names pass unchanged."""
    return name[len(SOURCE_PREFIX):] if name.startswith(SOURCE_PREFIX) else name


def default_model_dir() -> Path:
    """``$ART_RSLAD_ROBUSTBENCH_DIR`` if set, else ``robustbench`` beside art-rslad's data cache."""
    return Path(os.environ.get(MODEL_DIR_ENV) or cache_dir().parent / "robustbench")


def robustbench_card(name: str, dataset: str = "cifar10", threat_model: str = "Linf") -> dict[str, Any]:
    """The model card of a RobustBench teacher: its name, dataset, threat model, eps and reported accuracies.

    The accuracies are those RobustBench reports (fractions in [0, 1]), not measured by art-rslad; they are
    ``None`` for models outside this module's small table (see the leaderboard).

    :param name: RobustBench model name, with or without the ``robustbench:`` prefix.
    :param dataset: ``"cifar10"`` or ``"cifar100"``.
    :param threat_model: ``"Linf"``, ``"L2"`` or ``"corruptions"``.
    :return: A JSON-serialisable dict.
    """
    name = strip_source_prefix(name)
    dataset, threat_model = _canonical(dataset, threat_model)
    architecture, clean, autoattack, paper = REPORTED.get((name, dataset, threat_model), (None, None, None, None))
    try:
        robustbench_version: str | None = version("robustbench")
    except PackageNotFoundError:
        robustbench_version = None
    return {
        "source": "robustbench",
        "teacher": f"{SOURCE_PREFIX}{name}",
        "robustbench_name": name,
        "dataset": dataset,
        "threat_model": threat_model,
        "eps": THREAT_MODELS[threat_model],
        "architecture": architecture,
        "paper": paper,
        "clean_accuracy": None if clean is None else clean / 100,
        "autoattack_accuracy": None if autoattack is None else autoattack / 100,
        "accuracy_source": (
            f"reported by RobustBench ({LEADERBOARD_URL}), not measured by art-rslad" if clean is not None
            else f"not in art-rslad's table; see {LEADERBOARD_URL}"
        ),
        "robustbench_version": robustbench_version,
    }


def _zoo_entry(robustbench_utils: types.ModuleType, name: str, dataset: str, threat_model: str) -> dict[str, Any]:
    """RobustBench's model-zoo entry for ``name`` (architecture factory, Google Drive ids); ValueError if unknown."""
    zoo = robustbench_utils.all_models[robustbench_utils.BenchmarkDataset(dataset)][
        robustbench_utils.ThreatModel(threat_model)]
    if name not in zoo:
        close = difflib.get_close_matches(name, list(zoo), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else f" See {LEADERBOARD_URL} for the names."
        raise ValueError(f"`name` {name!r} is not in RobustBench's {dataset} {threat_model} model zoo.{hint}")
    if zoo[name]["gdrive_id"] is None:
        timm_name = f"{name.lower().replace('-', '_')}_{dataset}_{threat_model.lower()}"  # RobustBench's rule
        raise ValueError(
            f"`name` {name!r} is served by timm from the Hugging Face hub, not from RobustBench's model folder; "
            f"create it with timm.create_model({timm_name!r}, pretrained=True) and wrap it in a PyTorchClassifier."
        )
    return zoo[name]


def _expected_files(model_path: Path, gdrive_ids: str | list[str]) -> list[tuple[Path, str]]:
    """(file, Google Drive id) pairs where RobustBench's loader reads a model (one file, or one per member)."""
    if isinstance(gdrive_ids, list):
        return [(Path(f"{model_path}_m{index}.pt"), gdrive_id) for index, gdrive_id in enumerate(gdrive_ids)]
    return [(model_path, gdrive_ids)]


def _fetch(robustbench_utils: types.ModuleType, name: str, path: Path, gdrive_id: str, download: bool) -> None:
    """Make sure ``path`` exists: download it with RobustBench's downloader or raise FileNotFoundError."""
    where = (f"RobustBench model {name!r} is expected at {path.resolve()} (RobustBench's layout "
             "<model_dir>/<dataset>/<threat_model>/<name>.pt)")
    if not download:
        raise FileNotFoundError(f"{where}, and download=False. Copy the file there from a machine with internet.")
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Downloading RobustBench model %s to %s", name, path)
    try:
        robustbench_utils.download_gdrive_new(gdrive_id, path)
    except Exception as error:  # requests, gdown and OS errors alike mean: no file
        raise FileNotFoundError(
            f"{where}; the download from Google Drive (id {gdrive_id}) failed: {error}. Without internet, copy "
            "the file there from a machine that has it."
        ) from error
    if not path.is_file():
        raise FileNotFoundError(f"{where}; the download from Google Drive (id {gdrive_id}) wrote no file.")


def load_robustbench_teacher(
    name: str,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    *,
    download: bool = True,
) -> PyTorchClassifier:
    """Load a RobustBench model by name as an ART PyTorchClassifier in eval mode (inputs in [0, 1]).

    RobustBench's loader builds the architecture and reads ``<model_dir>/<dataset>/<threat_model>/<name>.pt``.
    A missing file is downloaded by RobustBench's downloader when ``download`` is true; either way a missing file
    ends in a FileNotFoundError naming the path. The file is first read with ``torch.load(weights_only=True)``,
    so a file holding anything but tensors is refused before RobustBench reads it. The model's normalisation
    stays inside the model (RobustBench's convention); the classifier has ``clip_values=(0, 1)`` and no ART
    preprocessing. See :func:`robustbench_card` for its reported accuracies.

    :param name: RobustBench model name, e.g. ``"Zhang2019Theoretically"`` (a ``robustbench:`` prefix is allowed).
    :param dataset: ``"cifar10"`` or ``"cifar100"``.
    :param threat_model: ``"Linf"``, ``"L2"`` or ``"corruptions"``.
    :param model_dir: RobustBench's model folder; default ``$ART_RSLAD_ROBUSTBENCH_DIR``, else
        ``$XDG_CACHE_HOME/art-rslad/robustbench`` (``~/.cache/...``). Pass ``"models"`` to share the folder a
        RobustBench script uses by default.
    :param device: ``"cpu"``, ``"cuda"``, ``"cuda:<index>"`` or None (CUDA when available).
    :param download: Whether a missing file may be downloaded.
    :return: The teacher as a PyTorchClassifier with cross-entropy loss and no optimizer.
    :raises ImportError: without the ``robustbench`` extra.
    :raises FileNotFoundError: when the file is missing and cannot be downloaded.
    :raises ValueError: for an unknown name, dataset or threat model, or a corrupt or unsafe file.
    """
    name = strip_source_prefix(name)
    dataset, threat_model = _canonical(dataset, threat_model)
    resolved_device = resolve_device(device)
    robustbench_utils = import_robustbench()
    entry = _zoo_entry(robustbench_utils, name, dataset, threat_model)
    root = Path(model_dir) if model_dir is not None else default_model_dir()
    for path, gdrive_id in _expected_files(root / dataset / threat_model / f"{name}.pt", entry["gdrive_id"]):
        if not path.is_file():
            _fetch(robustbench_utils, name, path, gdrive_id, download)
        load_file(path)  # weights_only=True: refuses pickled code before RobustBench's torch.load reads the file
    model = robustbench_utils.load_model(name, model_dir=root, dataset=dataset, threat_model=threat_model)
    info = dataset_info(dataset)
    if resolved_device.startswith("cuda:"):
        torch.cuda.set_device(torch.device(resolved_device))  # ART places models on the current CUDA device
    logger.info("Loaded RobustBench teacher %s (%s, %s): %s, %.1fM parameters", name, dataset, threat_model,
                type(model).__name__, sum(p.numel() for p in model.parameters()) / 1e6)
    return PyTorchClassifier(
        model=model.eval(),
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=info.input_shape,
        nb_classes=info.nb_classes,
        clip_values=info.clip_values,
        preprocessing=None,
        device_type="gpu" if resolved_device.startswith("cuda") else "cpu",
    )
