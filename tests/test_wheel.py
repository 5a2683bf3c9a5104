"""The wheel a user installs with ``pip install .``: every module and the shipped teachers are inside, and they load."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A clean copy of the sources: setuptools would otherwise reuse (and ship) stale files from a build/ folder.
    source = out / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "art_rslad", source / "art_rslad", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, capture_output=True)
    (path,) = out.glob("art_rslad-*.whl")
    return path


def test_the_wheel_holds_every_module_and_the_zoo(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "art_rslad"
    expected = {path.relative_to(ROOT).as_posix() for pattern in ("**/*.py", "zoo/*.pt", "zoo/*.json", "py.typed")
                for path in package.glob(pattern) if "__pycache__" not in path.parts}
    assert expected and not expected - names, f"missing from the wheel: {sorted(expected - names)}"


def test_the_installed_wheel_loads_its_shipped_teachers(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    script = ("import art_rslad, art_rslad.cli; from art_rslad.experiments.teachers import list_zoo, load_teacher;"
              "print(art_rslad.__file__);"
              "[load_teacher('zoo:' + name, name.split('-cnn')[0], device='cpu') for name in list_zoo()];"
              "print(sorted(list_zoo()))")
    # Only the installed copy and the environment's dependencies: not this checkout.
    path = [str(target)] + [entry for entry in sys.path if entry and Path(entry).resolve() != ROOT]
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(path)}, check=True)
    location, zoo = result.stdout.splitlines()
    assert Path(location).is_relative_to(target)
    assert zoo == ("['digits-cnn-large', 'digits-cnn-large-clean', 'fashion-mnist-cnn-large', "
                   "'fashion-mnist-cnn-large-clean', 'fashion-mnist-cnn-pool']")
