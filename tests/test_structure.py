"""The package's shape, read from its source with ``ast``: layers, no import cycle, import depth, sizes, citations.

The import graph has one node per module of ``art_rslad`` (a package's ``__init__.py`` is the node named after the
package) and one edge per import statement anywhere in a module (top level, inside a function, or under
``TYPE_CHECKING``), resolved the way Python resolves it:

* ``import art_rslad.a.b`` and ``from art_rslad.a.b import name`` point at module ``art_rslad.a.b``;
* ``from art_rslad.a import b`` points at ``art_rslad.a.b`` when ``b`` is a module, else at ``art_rslad.a``: an
  import of a package's re-export is an import of the package's ``__init__`` module, which in turn imports the
  modules it re-exports, so a cycle through an ``__init__`` is found;
* the parent packages Python initialises on the way (``art_rslad.a`` before ``art_rslad.a.b``) are not edges,
  otherwise every package that re-exports its own modules would be a cycle;
* ``art_rslad.cli`` imports its command modules by name (``import_module``), so it gets an edge to each of them.

Imports under ``TYPE_CHECKING`` and inside functions are edges too: they never run at import time, but a module
that names another's types or calls it later depends on it all the same (the one cycle this test first found ran
through a ``TYPE_CHECKING`` import).

Import depth ("floors") counts LAYERS, not modules: along an import chain from ``art_rslad.__main__`` down, each
run of consecutive modules of one layer is one floor, and the deepest chain may have at most :data:`MAX_FLOORS`
(``__main__``, cli, experiments, trainers, evaluation, distributed, models/attacks, core). Counting modules was
the first choice, but it cannot reach 8: the layers alone take 8 floors, and a package ``__init__`` plus one
module under it (``art_rslad.trainers`` -> ``art_rslad.trainers.rslad`` -> ``art_rslad.trainers.base``) already
takes three; the failure message prints the chain with its module count. A module outside every layer is a
floor of its own, and an import back up a layer starts a new floor, so both make the chain deeper.

``art_rslad/__init__.py`` (lazy public names, imported on first use) and ``art_rslad/__main__.py`` sit above every
layer and are not checked against :data:`LAYERS`; a module may still import the root package (for ``__version__``),
which imports nothing until one of its lazy names is used.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from art.defences.trainer import Trainer

from art_rslad.trainers.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "art_rslad"

# Module prefix -> layer; a module may import only from its own layer or lower ones (see docs/README.md).
LAYERS: dict[str, int] = {
    "art_rslad.losses": 1,
    "art_rslad.losses_adaptive": 1,
    "art_rslad.losses_samplewise": 1,
    "art_rslad.estimators": 1,
    "art_rslad.checkpoint": 1,
    "art_rslad.data": 1,
    "art_rslad.report": 1,
    "art_rslad.progress": 1,
    "art_rslad.models": 2,
    "art_rslad.attacks": 2,
    "art_rslad.robustbench": 2,
    "art_rslad.distributed": 3,
    "art_rslad.evaluation": 4,
    "art_rslad.trainers": 5,
    "art_rslad.experiments": 6,
    "art_rslad.cli": 7,
}
ABOVE_LAYERS = ("art_rslad", "art_rslad.__main__")

MAX_FLOORS = 8
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
#: How far below ART's Trainer a trainer class may sit (the loop, the step, the method).
MAX_TRAINER_DEPTH = 3

# Functions allowed past MAX_FUNCTION_LINES: declarative tables (one entry per preset/attack/option), not logic.
# Key: "module:function".
LONG_TABLES: dict[str, str] = {
    "art_rslad.cli.train:add_parser": "the option table of `art-rslad train` (one add_argument per option)",
    "art_rslad.cli.eval:add_parser": "the option table of `art-rslad eval` (one add_argument per option)",
}

# Top-level names a function may import lazily, with the reason; every other import belongs at the top of its module.
LAZY_IMPORTS: dict[str, str] = {
    "robustbench": "optional extra art-rslad[robustbench]; only RobustBench teachers need it",
    "sklearn": "optional (scikit-learn), only for the 8x8 digits dataset",
    "scipy": "optional, only to read SVHN's .mat files",
    "torch.utils.tensorboard": "optional extra art-rslad[tensorboard]; only a trainer's summary_writer needs it",
}

# Citations of documents users do not have; reasons point to docs/decisions.md by section name instead.
CITATION = re.compile(r"design decisions?\b|shared/|methods\.md|art-notes|\bissues? #?\d+", re.IGNORECASE)


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool
    type_only: bool
    statement: str


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@cache
def tree(name: str) -> ast.Module:
    path = modules()[name]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _resolve(name: str) -> str | None:
    """The module an imported dotted name means: itself, or its longest prefix that is a module."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool, type_only: bool):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function, type_only
        inner_function = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        inner_type = type_only or (isinstance(child, ast.If) and _is_type_checking(child))
        yield from _walk(child, inner_function, inner_type)


def _package_of(name: str) -> str:
    is_package = modules()[name].name == "__init__.py"
    return name if is_package else name.rpartition(".")[0]


def _targets(source: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Dotted names this statement imports (internal or not), resolved against ``source`` for relative imports."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = _package_of(source)
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}".rstrip(".")
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base for alias in node.names]


@cache
def imports() -> tuple[Import, ...]:
    found = []
    for name in modules():
        for node, in_function, type_only in _walk(tree(name), False, False):
            statement = ast.unparse(node)
            for target in _targets(name, node):
                found.append(Import(name, target, node.lineno, in_function, type_only, statement))
    # `art_rslad.cli` imports each command module by name (importlib.import_module over COMMANDS).
    found += [Import("art_rslad.cli", name, 0, False, False, "import_module(f'art_rslad.cli.{name}')")
              for name in modules() if name.startswith("art_rslad.cli.")]
    return tuple(found)


@cache
def internal_edges() -> dict[str, frozenset[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for item in imports():
        target = _resolve(item.target) if item.target.startswith("art_rslad") else None
        if target and target != item.source:
            graph[item.source].add(target)
    return {name: frozenset(targets) for name, targets in graph.items()}


def _where(item: Import) -> str:
    context = " [under TYPE_CHECKING]" if item.type_only else " [inside a function]" if item.in_function else ""
    return f"{modules()[item.source].relative_to(ROOT)}:{item.line}: {item.statement}{context}"


def layer_of(name: str) -> int | None:
    matches = [prefix for prefix in LAYERS if name == prefix or name.startswith(prefix + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, set(component)) for component in components]


def _cycle_in(graph: Mapping[str, Iterable[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, as a list of modules ending where it starts."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(set(graph[node]) & component):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError("a strongly connected component without a cycle")


def floor_of(name: str) -> int | str:
    """The floor key of a module: its layer, or its own name when it has none (above, or outside every layer)."""
    layer = layer_of(name)
    return name if layer is None or name in ABOVE_LAYERS else layer


def floors(chain: list[str]) -> int:
    """Runs of consecutive modules on one floor along ``chain``."""
    keys = [floor_of(name) for name in chain]
    return sum(1 for index, key in enumerate(keys) if index == 0 or key != keys[index - 1])


def deepest_chain(graph: Mapping[str, Iterable[str]], start: str) -> list[str]:
    """The import chain from ``start`` with the most floors (then the most modules); cycles are cut where they close."""
    best: dict[str, list[str]] = {}
    visiting: set[str] = set()

    def chain(node: str) -> list[str]:
        if node in best:
            return best[node]
        visiting.add(node)
        tails = [[node, *chain(nxt)] for nxt in sorted(graph[node]) if nxt not in visiting]
        visiting.discard(node)
        best[node] = max(tails, key=lambda tail: (floors(tail), len(tail)), default=[node])
        return best[node]

    return chain(start)


def _functions(name: str):
    for node in ast.walk(tree(name)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from ``def`` to the end, less the docstring (documentation, not code)."""
    length = function.end_lineno - function.lineno + 1
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        length -= first.end_lineno - first.lineno + 1
    return length


def test_every_module_has_a_layer() -> None:
    unplaced = [f"{path.relative_to(ROOT)} ({name})" for name, path in modules().items()
                if name not in ABOVE_LAYERS and layer_of(name) is None]
    assert not unplaced, "modules outside every layer of LAYERS (move them, or add their prefix):\n  " + \
        "\n  ".join(unplaced)


def test_imports_go_down_the_layers() -> None:
    upward = []
    for item in imports():
        target = _resolve(item.target) if item.target.startswith("art_rslad") else None
        source_layer, target_layer = layer_of(item.source), layer_of(target or "")
        if item.source in ABOVE_LAYERS or target is None or source_layer is None or target_layer is None:
            continue
        if target_layer > source_layer:
            upward.append(f"{_where(item)}  (layer {source_layer} {item.source} -> layer {target_layer} {target})")
    assert not upward, "imports from a higher layer:\n  " + "\n  ".join(dict.fromkeys(upward))


def test_no_import_cycle() -> None:
    cycles = find_cycles(internal_edges())
    assert not cycles, "import cycles:\n  " + "\n  ".join(" -> ".join(cycle) for cycle in cycles)


def test_import_depth_from_main() -> None:
    chain = deepest_chain(internal_edges(), "art_rslad.__main__")
    assert floors(chain) <= MAX_FLOORS, (
        f"the deepest import chain from art_rslad.__main__ has {floors(chain)} floors (at most {MAX_FLOORS}) "
        f"over {len(chain)} modules:\n  " + "\n  -> ".join(f"{name} (floor {floor_of(name)})" for name in chain))


def test_module_sizes() -> None:
    lengths = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in modules().values()}
    too_long = [f"{path.relative_to(ROOT)}: {lines} lines" for path, lines in lengths.items()
                if lines > MAX_MODULE_LINES]
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines:\n  " + "\n  ".join(too_long)


def test_function_sizes() -> None:
    too_long = []
    known = {f"{name}:{function.name}" for name in modules() for function in _functions(name)}
    stale = sorted(set(LONG_TABLES) - known)
    assert not stale, f"LONG_TABLES names functions that no longer exist: {stale}"
    for name, path in modules().items():
        for function in _functions(name):
            lines = _code_lines(function)
            if lines > MAX_FUNCTION_LINES and f"{name}:{function.name}" not in LONG_TABLES:
                too_long.append(f"{path.relative_to(ROOT)}:{function.lineno}: {function.name} ({lines} lines)")
    assert not too_long, (f"functions over {MAX_FUNCTION_LINES} lines (docstring excluded) outside the table "
                          "allow-list:\n  " + "\n  ".join(too_long))


def trainer_depth(cls: type) -> int:
    """How many levels ``cls`` sits below ART's ``Trainer``: 0 for Trainer itself; mixins that are no Trainer do
    not count."""
    if cls is Trainer:
        return 0
    return 1 + max(trainer_depth(base) for base in cls.__bases__ if issubclass(base, Trainer))


def test_trainer_depths() -> None:
    classes = {method.trainer for method in METHODS.values()}
    for name in modules():
        if name == "art_rslad.__main__":  # runs the command line
            continue
        module = importlib.import_module(name)
        classes.update(value for value in vars(module).values() if isinstance(value, type)
                       and issubclass(value, Trainer) and value.__module__.startswith("art_rslad"))
    too_deep = sorted(f"{cls.__module__}.{cls.__qualname__}: {trainer_depth(cls)} levels" for cls in classes
                      if trainer_depth(cls) > MAX_TRAINER_DEPTH)
    assert not too_deep, (f"trainer classes more than {MAX_TRAINER_DEPTH} levels below ART's Trainer (compose a "
                          "method from a declaration, a mixin or a term instead):\n  " + "\n  ".join(too_deep))


def test_the_depth_reader_counts_only_trainers() -> None:
    class Mixin:
        pass

    class One(Mixin, Trainer):
        pass

    class Two(One):
        pass

    assert (trainer_depth(Trainer), trainer_depth(One), trainer_depth(Two)) == (0, 1, 2)


def test_imports_at_the_top() -> None:
    inner = [f"{_where(item)}" for item in imports()
             if item.in_function and item.line
             and not any(item.target == name or item.target.startswith(f"{name}.") for name in LAZY_IMPORTS)]
    allowed = "; ".join(f"{name}: {reason}" for name, reason in LAZY_IMPORTS.items())
    assert not inner, (f"imports inside functions (move them to the top; only these may be lazy: {allowed}):\n  "
                       + "\n  ".join(dict.fromkeys(inner)))


def _citations(path: Path) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if CITATION.search(line)]


def test_no_citations_of_internal_documents_in_the_package() -> None:
    found = [hit for path in modules().values() for hit in _citations(path)]
    assert not found, ("citations of documents users do not have (point to docs/decisions.md by section name):\n  "
                       + "\n  ".join(found))


def test_no_citations_of_internal_documents_in_the_docs() -> None:
    pages = [ROOT / "README.md", *(path for path in sorted((ROOT / "docs").glob("*.md"))
                                   if not path.name.startswith("results-"))]
    found = [hit for path in pages for hit in _citations(path)]
    assert not found, "citations of documents users do not have:\n  " + "\n  ".join(found)


def test_decisions_record_has_the_cited_sections() -> None:
    """Every ``docs/decisions.md, "Section"`` cited anywhere in the package or docs names a section that exists."""
    sections = set(re.findall(r"^## (.+)$", (ROOT / "docs" / "decisions.md").read_text(encoding="utf-8"), re.M))
    cited = re.compile(r'decisions\.md,?\s+"([^"]+)"')
    files = [*modules().values(), *sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    missing = [f"{path.relative_to(ROOT)}: {title!r}" for path in files
               for title in cited.findall(path.read_text(encoding="utf-8")) if " ".join(title.split()) not in sections]
    assert not missing, "citations of sections docs/decisions.md does not have:\n  " + "\n  ".join(missing)


def test_the_graph_reader_resolves_imports_as_python_does() -> None:
    """The test's own resolution rules on known imports of this package (so its findings can be trusted)."""
    assert _resolve("art_rslad.models.registry.register_model") == "art_rslad.models.registry"
    assert _resolve("art_rslad.losses") == "art_rslad.losses"
    assert _resolve("torch.nn") is None
    models_init = internal_edges()["art_rslad.models"]
    assert {"art_rslad.models.cnn", "art_rslad.models.registry"} <= models_init
    assert layer_of("art_rslad.models.cnn") == 2 and layer_of("art_rslad.cli") == 7
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
    chain = deepest_chain({"art_rslad.cli": {"art_rslad.losses", "art_rslad.trainers"},
                           "art_rslad.trainers": {"art_rslad.evaluation"}, "art_rslad.evaluation": {"art_rslad.losses"},
                           "art_rslad.losses": set()}, "art_rslad.cli")
    assert chain == ["art_rslad.cli", "art_rslad.trainers", "art_rslad.evaluation", "art_rslad.losses"]
    assert floors(chain) == 4 and floors(["art_rslad.losses", "art_rslad.data"]) == 1


def test_the_graph_reader_sees_type_checking_and_function_imports() -> None:
    snippet = ast.parse("import a\nif TYPE_CHECKING:\n    import b\ndef f():\n    import c\n")
    found = [(node.names[0].name, in_function, type_only)
             for node, in_function, type_only in _walk(snippet, False, False)]
    assert found == [("a", False, False), ("b", False, True), ("c", True, False)]
