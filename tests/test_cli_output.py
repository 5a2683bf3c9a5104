"""What the command line and the training loop print: ART's INFO log only on request, plain-text --help, progress
bars only on a terminal, and the table notes' wording."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_cli_runs import TINY
from test_runs import tiny_config

from art_rslad.cli import COMMANDS, build_parser, main, plain_text
from art_rslad.models import create_model, make_classifier
from art_rslad.report import settings_notes
from art_rslad.trainers.sat import AdversarialTrainerSAT

ART_LINES = ("hidden layers on PyTorch classifier", "Success rate of FGM attack")


@pytest.fixture
def art_logger_level() -> Iterator[None]:
    """The CLI sets the level of ART's logger; put it back for the other tests."""
    art_logger = logging.getLogger("art")
    level = art_logger.level
    yield
    art_logger.setLevel(level)


@pytest.mark.parametrize("flags", [(), ("--verbose",), ("--log-level", "DEBUG")])
def test_art_info_log_only_when_asked(flags: tuple[str, ...], tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                      art_logger_level: None) -> None:
    config = tiny_config(nb_epochs=1).save(tmp_path / "tiny.json")
    caplog.set_level(logging.INFO)
    assert main([*flags, "train", "--method", "sat", "--config", str(config), "--out", str(tmp_path / "run"),
                 *TINY]) == 0
    art_messages = [record.getMessage() for record in caplog.records if record.name.startswith("art.")]
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("art_rslad")]
    assert any("sat epoch 1/1" in message for message in ours)  # our own INFO log is shown either way
    for line in ART_LINES:
        assert any(line in message for message in art_messages) == bool(flags), line


def test_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("", *COMMANDS):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"] if command else ["--help"])
        printed = capsys.readouterr().out
        for markup in ("``", ":func:", ":class:", ":data:", ":meth:", "Examples::", "Example::"):
            assert markup not in printed, (command, markup)


def test_plain_text_drops_roles_and_literals() -> None:
    text = "``art-rslad eval``: see :func:`~art_rslad.evaluation.evaluate_robustness` and `x`.\n\nExamples::\n"
    assert plain_text(text) == "art-rslad eval: see evaluate_robustness and x.\n\nExamples:\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream", [io.StringIO, _Terminal])
def test_progress_bars_only_on_a_terminal(stream: type[io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    err = stream()
    monkeypatch.setattr("sys.stderr", err)
    student = make_classifier(create_model("cnn-small", 10, width=2, image_size=8), "digits", device="cpu")
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 32)
    AdversarialTrainerSAT(student, eps=0.1, max_iter=1, verbose=True).fit(x, y, nb_epochs=2, batch_size=8)
    if isinstance(err, _Terminal):
        assert "\r" in err.getvalue() and "epoch 2/2" in err.getvalue()
    else:
        assert "\r" not in err.getvalue()


def _notes(nb_epochs: int, milestones: list[int], max_iter: int = 10) -> str:
    config = {**tiny_config(nb_epochs=nb_epochs, max_iter=max_iter).to_dict()}
    return settings_notes(config, milestones, ["sat"], teacher_source=None, train_size=None, nb_test=16)[0]


def test_notes_say_constant_lr_and_count_in_the_singular() -> None:
    assert "1 epoch," in _notes(1, [], max_iter=1) and "constant lr" in _notes(1, [], max_iter=1)
    assert "1 step;" in _notes(1, [], max_iter=1) and "after epochs" not in _notes(1, [])
    assert "8 epochs," in _notes(8, [6, 7]) and "lr x0.1 after epochs 6, 7;" in _notes(8, [6, 7])
    assert "lr x0.1 after epoch 6;" in _notes(8, [6])
