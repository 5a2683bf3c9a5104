"""The result of :func:`~art_rslad.evaluate_robustness`: per-input correctness under every attack run."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from art_rslad.checkpoint import write_text_atomic

#: Version of the layout written by :meth:`RobustnessReport.to_dict`.
REPORT_FORMAT = 1


@dataclass
class RobustnessReport:
    """Accuracy under each attack and the per-input worst case over all of them.

    :param eps: L-inf budget of the attacks, on the scale of the classifier's clip_values.
    :param n_inputs: Number of inputs evaluated.
    :param correct: Attack name -> boolean array (n_inputs,): whether the classifier was right on the attacked
        input. Kept per input so that shards of a distributed evaluation can be gathered, and so that the worst
        case is exact.
    :param kinds: Attack name -> ``clean``, ``white-box``, ``black-box`` or ``transfer``.
    :param seconds: Attack name -> wall-clock seconds (crafting and predicting).
    :param max_perturbation: Attack name -> largest ``|x' - x|`` over all inputs.
    :param settings: Attack name -> the attack's parameters (steps, step size, loss, library).
    :param messages: Attack name -> warnings raised while it ran (e.g. pyautoattack's own checks).
    :param checks: Values measured by the integrity checks (see :mod:`art_rslad.evaluation.checks`).
    :param warnings: Every integrity warning, in words.
    :param fingerprint: Hash of the inputs, labels and settings; a resumed evaluation must match it.
    """

    eps: float
    n_inputs: int
    correct: dict[str, np.ndarray] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    max_perturbation: dict[str, float] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, list[str]] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def attacks(self) -> list[str]:
        """Names of the attacks run, in order."""
        return list(self.correct)

    @property
    def accuracy(self) -> dict[str, float]:
        """Attack name -> accuracy in [0, 1]."""
        return {name: float(np.mean(flags)) if len(flags) else float("nan") for name, flags in self.correct.items()}

    @property
    def robust_to_all(self) -> np.ndarray:
        """Per input: correct under every attack run (the AND over attacks, clean included)."""
        flags = np.ones(self.n_inputs, dtype=bool)
        for correct in self.correct.values():
            flags &= correct
        return flags

    @property
    def worst_case_accuracy(self) -> float:
        """Accuracy of the per-input worst case over all attacks run."""
        return float(np.mean(self.robust_to_all)) if self.n_inputs else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary; ``correct`` and ``robust_to_all`` as lists of booleans."""
        return {
            "format": REPORT_FORMAT,
            "eps": self.eps,
            "n_inputs": self.n_inputs,
            "accuracy": self.accuracy,
            "worst_case_accuracy": self.worst_case_accuracy,
            "kinds": self.kinds,
            "seconds": self.seconds,
            "max_perturbation": self.max_perturbation,
            "settings": self.settings,
            "messages": self.messages,
            "checks": self.checks,
            "warnings": self.warnings,
            "fingerprint": self.fingerprint,
            "correct": {name: flags.tolist() for name, flags in self.correct.items()},
            "robust_to_all": self.robust_to_all.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobustnessReport:
        """Rebuild a report from :meth:`to_dict`'s output (derived entries are recomputed)."""
        if data.get("format") != REPORT_FORMAT:
            raise ValueError(f"`data` is not a robustness report of format {REPORT_FORMAT} "
                             f"(got format {data.get('format')!r}).")
        return cls(
            eps=float(data["eps"]),
            n_inputs=int(data["n_inputs"]),
            correct={name: np.asarray(flags, dtype=bool) for name, flags in data["correct"].items()},
            kinds=dict(data["kinds"]),
            seconds={name: float(value) for name, value in data["seconds"].items()},
            max_perturbation={name: float(value) for name, value in data["max_perturbation"].items()},
            settings=dict(data["settings"]),
            messages={name: list(value) for name, value in data["messages"].items()},
            checks=dict(data["checks"]),
            warnings=list(data["warnings"]),
            fingerprint=str(data["fingerprint"]),
        )

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

    def to_markdown(self) -> str:
        """A table (attack, kind, accuracy, seconds), the worst case, and the warnings."""
        lines = [
            f"Robust accuracy at L-inf eps = {self.eps:.4g} on {self.n_inputs} inputs",
            "",
            "| attack | kind | accuracy (%) | seconds |",
            "|---|---|---:|---:|",
        ]
        for name, accuracy in self.accuracy.items():
            lines.append(f"| {name} | {self.kinds[name]} | {100 * accuracy:.2f} | {self.seconds[name]:.1f} |")
        lines.append(f"| **worst case over all attacks** | per input | {100 * self.worst_case_accuracy:.2f} "
                     f"| {sum(self.seconds.values()):.1f} |")
        if self.warnings:
            lines += ["", "Warnings:", *(f"- {warning}" for warning in self.warnings)]
        return "\n".join(lines) + "\n"
