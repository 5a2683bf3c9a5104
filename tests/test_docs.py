"""The documentation: the API reference covers every module, and Sphinx builds it and the guides with no warning.

The build is nitpicky (every cross-reference to this package must resolve) with warnings as errors, as ``make docs``
runs it, so a broken docstring, reference or link fails here.
"""

from __future__ import annotations

import pkgutil
import re
import shlex
import subprocess
import sys
from pathlib import Path

import art_rslad
from art_rslad.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The command line is documented by its --help and the guides; the rest of the package is in the reference.
NOT_IN_REFERENCE = ("art_rslad.__main__", "art_rslad.cli")


def test_api_reference_names_every_module() -> None:
    documented = set()
    for page in (DOCS / "api").glob("*.rst"):
        documented |= set(re.findall(r"^\.\. automodule:: (\S+)$", page.read_text(), flags=re.MULTILINE))
    modules = {info.name for info in pkgutil.walk_packages(art_rslad.__path__, "art_rslad.")
               if not info.name.startswith(NOT_IN_REFERENCE)}
    assert modules - documented == set(), "add these modules to a page of docs/api/"
    assert documented - modules - {"art_rslad"} == set(), "docs/api/ names modules that do not exist"
    index = (DOCS / "api" / "index.rst").read_text()
    missing = [name for name in art_rslad.__all__ if name != "__version__" and f"``{name}``" not in index]
    assert missing == [], "add these top-level names to the table of docs/api/index.rst"


def test_docs_build_with_no_warning(tmp_path: Path) -> None:
    out = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n", "--keep-going", "-q",
               "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    reference = (out / "api" / "trainers.html").read_text()
    # The trainers' settings are documented where users look for them.
    for name in ("rslad.AdversarialTrainerRSLAD", "base.AdversarialTrainerBase"):
        assert f'id="art_rslad.trainers.{name}"' in reference
    assert ":param" not in reference and "eps_step" in reference
    evaluation = (out / "api" / "evaluation.html").read_text()
    assert 'id="art_rslad.evaluation.evaluate.evaluate_robustness"' in evaluation
    assert 'id="art_rslad.evaluation.report.RobustnessReport"' in evaluation
    assert (out / "gpu-recipe.html").is_file() and (out / "teachers.html").is_file()


def recipe_commands() -> list[list[str]]:
    """The ``art-rslad`` commands of docs/gpu-recipe.md's code blocks (under torchrun too), continuation lines
    joined, as the CLI's argument lists."""
    blocks = re.findall(r"^```bash\n(.*?)^```", (DOCS / "gpu-recipe.md").read_text(), flags=re.MULTILINE | re.DOTALL)
    lines = " ".join(blocks).replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if words[:1] == ["art-rslad"]:
            commands.append(words[1:])
        elif "-m" in words and words[words.index("-m") + 1] == "art_rslad":  # python -m or torchrun -m
            commands.append(words[words.index("-m") + 2:])
    return commands


def test_gpu_recipe_commands_parse() -> None:
    commands = recipe_commands()
    assert len(commands) >= 8
    presets = set()
    for argv in commands:
        args = build_parser().parse_args(argv)  # exits (SystemExit) on an option or preset the CLI does not have
        presets.add(getattr(args, "preset", None))
    assert {"cifar10-resnet18", "cifar10-mobilenetv2", "cifar100-resnet18", "cifar100-mobilenetv2"} <= presets
