"""The result of :func:`~art_rslad.evaluate_robustness`: per-input correctness under every attack run.

A report is stored in one of two forms, and :meth:`RobustnessReport.load` reads both:

- JSON (:meth:`~RobustnessReport.to_json`): every field in words, the per-input flags as lists of booleans. The
  resume state of a running evaluation is written this way after each attack.
- compact (:meth:`~RobustnessReport.save`, ``.npz``): a zip of numpy arrays that ``numpy.load`` opens, holding
  the same JSON without its per-input lists (``report``, UTF-8 bytes), the flags packed eight to a byte
  (``correct``, one row per attack, ``numpy.packbits``) and the labels in the smallest integer type that holds them
  (``labels``). A finished evaluation is stored this way: 10,000 inputs under five attacks take about 9 kB
  instead of 600 kB. The file's bytes depend only on the report, so saving it again changes nothing.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from art_rslad.checkpoint import write_bytes_atomic, write_text_atomic

#: Version of the layout written by :meth:`RobustnessReport.to_dict` (labels and worst classes are optional entries
#: of format 1: a report without them is written byte for byte as before).
REPORT_FORMAT = 1
#: Suffix of a report's compact form.
COMPACT_SUFFIX = ".npz"
#: Entries of :meth:`RobustnessReport.to_dict` that the compact form keeps as arrays (or recomputes).
_PER_INPUT = ("correct", "robust_to_all", "labels")
#: Date stamped on the compact form's zip members (the earliest a zip can hold), so that its bytes depend only on
#: the report.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class AttackResult:
    """What one attack found.

    :param name: Attack name (a key of :data:`~art_rslad.evaluation.ATTACKS`, or a defence view's variant of one).
    :param kind: ``clean``, ``white-box``, ``black-box`` or ``transfer``.
    :param correct: Boolean array (n_inputs,): whether the classifier was right on the attacked input. Kept per
        input so that shards of a distributed evaluation can be gathered, and so that the worst case is exact.
    :param seconds: Wall-clock seconds (crafting and predicting).
    :param max_perturbation: Largest ``|x' - x|`` over all inputs.
    :param settings: The attack's parameters (steps, step size, loss, library).
    :param messages: Warnings raised while it ran (e.g. pyautoattack's own checks).
    """

    name: str
    kind: str
    correct: np.ndarray
    seconds: float
    max_perturbation: float
    settings: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Accuracy in [0, 1] (NaN on no inputs)."""
        return float(np.mean(self.correct)) if len(self.correct) else float("nan")


@dataclass
class RobustnessReport:
    """Accuracy under each attack and the per-input worst case over all of them.

    :param eps: L-inf budget of the attacks, on the scale of the classifier's clip_values.
    :param n_inputs: Number of inputs evaluated.
    :param results: Attack name -> its :class:`AttackResult`, in the order run (add one with :meth:`add`).
    :param labels: The true class index of every input (n_inputs,), for the class-wise accuracy; None when unknown
        (reports written before they were kept).
    :param checks: Values measured by the integrity checks (see :mod:`art_rslad.evaluation.checks`).
    :param warnings: Every integrity warning, in words.
    :param fingerprint: Hash of the inputs, labels and settings; a resumed evaluation must match it.
    """

    eps: float
    n_inputs: int
    results: dict[str, AttackResult] = field(default_factory=dict)
    labels: np.ndarray | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    fingerprint: str = ""

    def add(self, result: AttackResult) -> None:
        """Add (or replace) the result of one attack on the report's inputs."""
        if result.correct.shape != (self.n_inputs,):
            raise ValueError(f"`result` {result.name!r} holds {result.correct.shape} flags, not one per input of "
                             f"this report ({self.n_inputs}).")
        self.results[result.name] = result

    # ----------------------------------------------------------------- per attack, read-only views
    @property
    def attacks(self) -> list[str]:
        """Names of the attacks run, in order."""
        return list(self.results)

    @property
    def accuracy(self) -> dict[str, float]:
        """Attack name -> accuracy in [0, 1]."""
        return {name: result.accuracy for name, result in self.results.items()}

    @property
    def correct(self) -> Mapping[str, np.ndarray]:
        """Attack name -> per-input correctness (boolean array)."""
        return MappingProxyType({name: result.correct for name, result in self.results.items()})

    @property
    def kinds(self) -> Mapping[str, str]:
        """Attack name -> ``clean``, ``white-box``, ``black-box`` or ``transfer``."""
        return MappingProxyType({name: result.kind for name, result in self.results.items()})

    @property
    def seconds(self) -> Mapping[str, float]:
        """Attack name -> wall-clock seconds."""
        return MappingProxyType({name: result.seconds for name, result in self.results.items()})

    @property
    def max_perturbation(self) -> Mapping[str, float]:
        """Attack name -> largest ``|x' - x|``."""
        return MappingProxyType({name: result.max_perturbation for name, result in self.results.items()})

    @property
    def settings(self) -> Mapping[str, dict[str, Any]]:
        """Attack name -> the attack's parameters."""
        return MappingProxyType({name: result.settings for name, result in self.results.items()})

    @property
    def messages(self) -> Mapping[str, list[str]]:
        """Attack name -> warnings raised while it ran."""
        return MappingProxyType({name: result.messages for name, result in self.results.items()})

    # ----------------------------------------------------------------- worst case and classes
    @property
    def robust_to_all(self) -> np.ndarray:
        """Per input: correct under every attack run (the AND over attacks, clean included)."""
        flags = np.ones(self.n_inputs, dtype=bool)
        for result in self.results.values():
            flags &= result.correct
        return flags

    @property
    def worst_case_accuracy(self) -> float:
        """Accuracy of the per-input worst case over all attacks run."""
        return float(np.mean(self.robust_to_all)) if self.n_inputs else float("nan")

    def per_class_accuracy(self, attack: str) -> list[float]:
        """Accuracy in [0, 1] under ``attack`` of the inputs of each class, by class index.

        The list runs from class 0 to the largest label present; a class without inputs has NaN.

        :param attack: An attack name of this report.
        """
        if self.labels is None:
            raise ValueError("This report does not know the inputs' labels (a report written before they were "
                             "kept): evaluate again with evaluate_robustness, which keeps them, for class-wise "
                             "accuracy.")
        if attack not in self.results:
            raise ValueError(f"`attack` {attack!r} is not in this report; it holds {', '.join(self.results)}.")
        correct = self.results[attack].correct
        nb_classes = int(self.labels.max()) + 1 if len(self.labels) else 0
        totals = np.bincount(self.labels, minlength=nb_classes)
        hits = np.bincount(self.labels, weights=correct.astype(np.float64), minlength=nb_classes)
        return [float(hit / total) if total else float("nan") for hit, total in zip(hits, totals, strict=True)]

    @property
    def worst_class(self) -> dict[str, dict[str, Any]]:
        """Attack name -> ``{"class": k, "accuracy": a}``, the class with the lowest accuracy under it (the lowest
        index on ties); empty when the labels are unknown."""
        if self.labels is None or not len(self.labels):
            return {}
        worst = {}
        for name in self.results:
            by_class = np.asarray(self.per_class_accuracy(name))
            index = int(np.nanargmin(by_class))
            worst[name] = {"class": index, "accuracy": float(by_class[index])}
        return worst

    # ----------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary; ``correct`` and ``robust_to_all`` as lists of booleans; ``worst_class`` and
        ``labels`` only when the labels are known."""
        classes = {"worst_class": self.worst_class} if self.labels is not None else {}
        labels = {"labels": self.labels.tolist()} if self.labels is not None else {}
        results = self.results.values()
        return {
            "format": REPORT_FORMAT,
            "eps": self.eps,
            "n_inputs": self.n_inputs,
            "accuracy": self.accuracy,
            "worst_case_accuracy": self.worst_case_accuracy,
            **classes,
            "kinds": {result.name: result.kind for result in results},
            "seconds": {result.name: result.seconds for result in results},
            "max_perturbation": {result.name: result.max_perturbation for result in results},
            "settings": {result.name: result.settings for result in results},
            "messages": {result.name: result.messages for result in results},
            "checks": self.checks,
            "warnings": self.warnings,
            "fingerprint": self.fingerprint,
            "correct": {result.name: result.correct.tolist() for result in results},
            "robust_to_all": self.robust_to_all.tolist(),
            **labels,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobustnessReport:
        """Rebuild a report from :meth:`to_dict`'s output (derived entries are recomputed)."""
        if data.get("format") != REPORT_FORMAT:
            raise ValueError(f"`data` is not a robustness report of format {REPORT_FORMAT} "
                             f"(got format {data.get('format')!r}).")
        report = cls(
            eps=float(data["eps"]),
            n_inputs=int(data["n_inputs"]),
            labels=np.asarray(data["labels"], dtype=np.int64) if "labels" in data else None,
            checks=dict(data["checks"]),
            warnings=list(data["warnings"]),
            fingerprint=str(data["fingerprint"]),
        )
        for name, flags in data["correct"].items():
            report.add(AttackResult(
                name=name, kind=str(data["kinds"][name]), correct=np.asarray(flags, dtype=bool),
                seconds=float(data["seconds"][name]), max_perturbation=float(data["max_perturbation"][name]),
                settings=dict(data["settings"][name]), messages=list(data["messages"][name]),
            ))
        return report

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as JSON text; also written to ``path`` (atomically) when given."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            write_text_atomic(text, path)
        return text

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> RobustnessReport:
        """Read a report written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_compact(self) -> bytes:
        """The compact form's bytes (see the module's docstring); the same report always gives the same bytes."""
        scalars = {key: value for key, value in self.to_dict().items() if key not in _PER_INPUT}
        flags = np.array([result.correct for result in self.results.values()], dtype=bool).reshape(
            len(self.results), self.n_inputs)
        arrays = {"report": np.frombuffer(json.dumps(scalars).encode("utf-8"), dtype=np.uint8),
                  "correct": np.packbits(flags, axis=1)}
        if self.labels is not None:
            arrays["labels"] = self.labels.astype(_label_dtype(self.labels))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays.items():
                member = io.BytesIO()
                np.lib.format.write_array(member, array, allow_pickle=False)
                archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE), member.getvalue(),
                                 compress_type=zipfile.ZIP_DEFLATED)
        return buffer.getvalue()

    @classmethod
    def from_compact(cls, data: bytes) -> RobustnessReport:
        """Rebuild a report from :meth:`to_compact`'s bytes."""
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            scalars = json.loads(arrays["report"].tobytes().decode("utf-8"))
            flags = np.unpackbits(arrays["correct"], axis=1, count=int(scalars["n_inputs"])).astype(bool)
            labels = {"labels": arrays["labels"]} if "labels" in arrays else {}
        return cls.from_dict({**scalars, "correct": dict(zip(scalars["kinds"], flags, strict=True)), **labels})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the compact form to ``path`` with its suffix made ``.npz`` (atomically; a file that already holds
        these bytes is left untouched); return the path written."""
        target = compact_path(path)
        data = self.to_compact()
        if not (target.is_file() and target.read_bytes() == data):
            write_bytes_atomic(data, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RobustnessReport:
        """Read a report in either form: a ``.npz`` file in the compact form, any other file as JSON; a JSON name
        whose file is absent reads its compact form (``eval_best.json`` -> ``eval_best.npz``)."""
        source = stored_report(path)
        if source is None:
            raise FileNotFoundError(f"No robustness report at {path} (nor its compact form "
                                    f"{compact_path(path).name}).")
        if source.suffix == COMPACT_SUFFIX:
            return cls.from_compact(source.read_bytes())
        return cls.from_json(source)

    def to_markdown(self) -> str:
        """A table (attack, kind, accuracy, the worst class when the labels are known, seconds), the worst case,
        and the warnings."""
        worst_class = None if self.labels is None else self.worst_class
        by_class = [] if worst_class is None else ["worst class: accuracy (%)"]
        lines = [
            f"Robust accuracy at L-inf eps = {self.eps:.4g} on {self.n_inputs} inputs",
            "",
            _row(["attack", "kind", "accuracy (%)", *by_class, "seconds"]),
            "|" + "|".join(["---", "---", "---:", *("---:" for _ in by_class), "---:"]) + "|",
        ]
        for name, result in self.results.items():
            worst = [] if worst_class is None else [f"{worst_class[name]['class']}: "
                                                    f"{100 * worst_class[name]['accuracy']:.2f}"]
            lines.append(_row([name, result.kind, f"{100 * result.accuracy:.2f}", *worst, f"{result.seconds:.1f}"]))
        total = sum(result.seconds for result in self.results.values())
        lines.append(_row(["**worst case over all attacks**", "per input", f"{100 * self.worst_case_accuracy:.2f}",
                           *("" for _ in by_class), f"{total:.1f}"]))
        if self.warnings:
            lines += ["", "Warnings:", *(f"- {warning}" for warning in self.warnings)]
        return "\n".join(lines) + "\n"


def compact_path(path: str | os.PathLike[str]) -> Path:
    """The compact form's file of the report named ``path``: ``eval_best.json`` -> ``eval_best.npz``."""
    return Path(path).with_suffix(COMPACT_SUFFIX)


def stored_report(path: str | os.PathLike[str]) -> Path | None:
    """The file that holds the report named ``path``, or None: ``path`` itself when it exists (a JSON written by an
    evaluation under way is newer than any compact form beside it), else its compact form when that exists."""
    for candidate in (Path(path), compact_path(path)):
        if candidate.is_file():
            return candidate
    return None


def finished_report(path: str | os.PathLike[str], attacks: Sequence[str],
                    nb_inputs: int) -> RobustnessReport | None:
    """The report stored under ``path`` (JSON or compact, see :func:`stored_report`) when it holds every one of
    ``attacks`` on ``nb_inputs`` inputs, else None."""
    if stored_report(path) is None:
        return None
    report = RobustnessReport.load(path)
    return report if report.n_inputs == nb_inputs and all(name in report.results for name in attacks) else None


def store_finished(report: RobustnessReport, state_path: str | os.PathLike[str]) -> Path:
    """Store a finished evaluation in the compact form beside its JSON resume state ``state_path``, then delete
    that state (the compact file holds all of it, and :func:`stored_report` finds it under the same name); return
    the compact file's path."""
    target = report.save(state_path)
    if Path(state_path) != target:
        Path(state_path).unlink(missing_ok=True)
    return target


def _label_dtype(labels: np.ndarray) -> type[np.integer[Any]]:
    """The smallest of uint8, int16 and int64 that holds ``labels``."""
    if not len(labels) or (labels.min() >= 0 and labels.max() <= np.iinfo(np.uint8).max):
        return np.uint8
    info = np.iinfo(np.int16)
    return np.int16 if labels.min() >= info.min and labels.max() <= info.max else np.int64


def _row(cells: list[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"
