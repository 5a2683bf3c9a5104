"""What every registered method must come with, checked for each one (see docs/adding-a-method.md): a formula test
of its loss, a plain loop and a benchmark case, a learning rate in every preset, its official recipe in the paper
presets, a section in the docs. A missing piece fails here with a message that says what to add and where."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from art_rslad.experiments.config import get_preset, preset_lr_methods, preset_names
from art_rslad.trainers.registry import METHODS, Method
from bench.bench_methods import CASES
from bench.plain_methods import PLAIN_METHODS

ROOT = Path(__file__).resolve().parents[1]
SHARED = [name for name, method in METHODS.items() if method.shared_loop]
ART = [name for name, method in METHODS.items() if not method.shared_loop]
#: The presets with the papers' settings, whose methods train with their official recipes.
PAPER_PRESETS = [name for name in preset_names() if name.startswith("cifar")]
#: Test files that hold no formula test (this one, and the toy method's, which names the losses it uses).
NOT_FORMULA_TESTS = {"test_every_method.py", "test_new_method.py"}


#: The modules that hold the methods' pure losses and adaptive rules.
LOSS_MODULES = ("art_rslad.losses", "art_rslad.losses_adaptive", "art_rslad.losses_samplewise")


def _losses_used(method: Method) -> list[str]:
    """The functions the method's trainer module imports from the loss modules (:data:`LOSS_MODULES`)."""
    tree = ast.parse(Path(inspect.getsourcefile(method.trainer) or "").read_text(encoding="utf-8"))
    return [alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and node.module in LOSS_MODULES for alias in node.names
            if inspect.isfunction(getattr(importlib.import_module(node.module), alias.name))]


def _test_sources() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted((ROOT / "tests").glob("test_*.py"))
                     if path.name not in NOT_FORMULA_TESTS)


@pytest.mark.parametrize("name", SHARED)
def test_its_loss_lives_in_losses_and_has_a_formula_test(name: str) -> None:
    losses = _losses_used(METHODS[name])
    assert losses, (f"{name}: its trainer imports no loss from art_rslad/losses.py (or losses_adaptive.py, "
                    "losses_samplewise.py); write the loss there as a pure torch function and call it from the "
                    "trainer's _method_loss.")
    sources = _test_sources()
    untested = [loss for loss in losses if not re.search(rf"\b{loss}\(", sources)]
    assert not untested, (f"{name}: no test calls {', '.join(untested)}; add a formula test on fixed tensors (e.g. "
                          "in tests/test_losses_baselines.py) that checks it against the paper's formula.")


@pytest.mark.parametrize("name", SHARED)
def test_it_has_a_plain_loop_and_a_benchmark_case(name: str) -> None:
    assert name in PLAIN_METHODS, (f"{name}: add its plain PyTorch loop to bench/plain_loops.py (and list it in "
                                   "bench/plain_methods.py), the reference tests/test_bench_plain_loops.py compares "
                                   "the trainer with.")
    assert name in {case.method for case in CASES.values()}, (
        f"{name}: add a benchmark case for it to bench/bench_methods.py (CASES).")


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_has_a_learning_rate_for_it(preset: str) -> None:
    config = get_preset(preset)
    missing = [name for name in preset_lr_methods() if name not in config.method_lr]
    assert not missing, (f"preset {preset} has no learning rate for {', '.join(missing)}: add "
                         f"lr={{'{preset}': ...}} to the method's entry in art_rslad/trainers/registry.py, chosen "
                         f"with `art-rslad tune --preset {preset} --methods {' '.join(missing)}`.")


@pytest.mark.parametrize("name", list(METHODS))
def test_the_paper_presets_train_it_with_its_official_recipe(name: str) -> None:
    method = METHODS[name]
    recipes = {name: method.recipe, **{f"{name}+{suffix}": recipe for suffix, recipe in method.variant_recipe.items()}}
    for preset in PAPER_PRESETS:
        config = get_preset(preset)
        for spec, recipe in recipes.items():
            assert config.method_overrides.get(spec, {}) == recipe.settings(config.dataset), (
                f"preset {preset} does not train {spec} with the recipe of its entry in "
                "art_rslad/trainers/registry.py; the paper presets must build method_overrides from the records.")
            for phrase in (recipe.note, recipe.dataset_note(config.dataset)):
                assert phrase in config.method_overrides_note, f"preset {preset}'s note leaves out {spec}: {phrase!r}"


def _headings(path: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("## ")}


@pytest.mark.parametrize("name", SHARED)
def test_the_method_reference_has_a_section_for_it(name: str) -> None:
    sections = {heading.split(":")[0] for heading in _headings(ROOT / "docs" / "method-reference.md")}
    assert f"`{name}`" in sections, (f"{name}: add a section '## `{name}`: <title>' to docs/method-reference.md (its "
                                     "networks, how it builds x', its loss, its paper).")


@pytest.mark.parametrize("name", ART)
def test_the_art_defences_page_has_a_row_for_it(name: str) -> None:
    rows = (ROOT / "docs" / "art-defences.md").read_text(encoding="utf-8")
    assert f"| `{name}` |" in rows, f"{name}: add a row for it to the table of docs/art-defences.md, '## Methods'."
