"""Sphinx configuration: the API reference from the docstrings, and the Markdown guides beside it.

Build with ``make docs`` (offline; HTML in ``build/docs``). ``tests/test_docs.py`` builds it with warnings as errors
and nitpicky cross-references, so a broken docstring, reference or link fails the tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout, not another installed copy

import art_rslad  # noqa: E402

logger = logging.getLogger(__name__)

project = "art-rslad"
author = "art-rslad developers"
copyright = "art-rslad developers, MIT License"
release = version = art_rslad.__version__

# The docstrings are reST field lists (``:param eps:``), as in ART, so no napoleon: its Google-style parsing would
# read an attribute docstring such as "Rank 0: the process that ..." as a type and a description.
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode", "myst_parser"]
root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# The studies' generated tables, shown inside results.md, have no title of their own.
exclude_patterns = ["results-*.md"]
html_theme = "alabaster"
html_title = f"art-rslad {release}"

autodoc_member_order = "bysource"
# torch's docstrings of forward() and step() say nothing about our modules and schedulers.
autodoc_inherit_docstrings = False
autoclass_content = "both"  # the class docstring, then the settings documented on __init__
autodoc_typehints = "description"
autodoc_typehints_format = "fully-qualified"
autodoc_default_options = {"show-inheritance": True, "undoc-members": True}

myst_heading_anchors = 3  # the guides link to each other's sections by GitHub's anchors
myst_enable_extensions = ["colon_fence"]

# Every reference to this package must resolve; names of other libraries cannot, offline (no intersphinx
# inventories), so only they are let through.
nitpicky = True
EXTERNAL_PREFIXES = ("torch", "np", "numpy", "art", "pathlib", "collections", "typing", "types", "os", "logging",
                     "argparse", "contextlib", "signal", "json", "io", "threading", "datetime", "tqdm", "matplotlib",
                     "pyautoattack", "PyTorchClassifier", "nn", "EvasionAttack", "ProjectedGradientDescentPyTorch",
                     "Preprocessor")
nitpick_ignore_regex = [(r"py:.*", rf"({'|'.join(EXTERNAL_PREFIXES)})(\..*)?"),
                        (r"py:.*", r"(int|float|str|bool|bytes|dict|list|tuple|set|object|None|Any|Callable)"),
                        # Type aliases and type variables, shown by name in signatures.
                        (r"py:class", r"RandomInit|DefenceGradient|art_rslad\.[\w.]+\.(T|Value)"),
                        # Private hooks (``_loss``, ``_attack_targets``) are named in docstrings, not documented.
                        (r"py:(meth|attr|func)", r"(.*\.)?_[a-z]\w*"),
                        # Links from the guides to the repository outside docs/ (source files and folders, study
                        # notes) work on the forge and in a checkout; Sphinx shows a folder's or a Markdown file's
                        # link as text. check_repository_links fails the build on a link to a missing path.
                        ("myst", r"\.\./.*"), ("myst", re.escape(str(ROOT)) + r"/(?!docs/).*")]


def _is_module(name: str) -> bool:
    """Whether ``name`` is an importable module (``art_rslad.trainers.base.X`` is not: base is no package)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _defining_target(target: str, module: str | None) -> str | None:
    """Where ``target`` is documented when it names an object through a module that imports it.

    ``art_rslad.evaluate_robustness`` and, inside ``art_rslad.evaluation.evaluate``, ``RobustnessReport`` both name
    objects that the reference documents once, in the module that defines them.
    """
    head, _, rest = target.partition(".")
    holder, attribute = (module, head) if not target.startswith("art_rslad") else (None, None)
    if holder is None:  # a dotted path: the longest prefix that is a module, then an attribute of it
        parts = target.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            if _is_module(".".join(parts[:cut])):
                holder, attribute, rest = ".".join(parts[:cut]), parts[cut], ".".join(parts[cut + 1:])
                break
    if holder is None or attribute is None or not holder.startswith("art_rslad"):
        return None
    obj = getattr(importlib.import_module(holder), attribute, None)
    defining = getattr(obj, "__module__", None)
    if not isinstance(defining, str) or not defining.startswith("art_rslad") or defining == holder:
        return None
    return ".".join(filter(None, [defining, obj.__qualname__, rest]))


def _unique_suffix(env: BuildEnvironment, target: str) -> str | None:
    """The one documented object of this package whose full name ends with ``target``'s last part, if only one."""
    name = target.rpartition(".")[2] if target.startswith("art_rslad") else target
    matches = [full for full in env.get_domain("py").objects if full.endswith(f".{name}")]
    return matches[0] if len(matches) == 1 else None


def resolve_public_name(app: Sphinx, env: BuildEnvironment, node: pending_xref,
                        contnode: nodes.TextElement) -> nodes.Element | None:
    """Resolve a reference to a re-exported or imported name, or a unique short name, to its documentation."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    resolved = _defining_target(target, node.get("py:module")) or _unique_suffix(env, target)
    if resolved is None:
        return None
    node["reftarget"] = resolved
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], resolved, node,
                                             contnode)


REPOSITORY_LINK = re.compile(r"\]\((\.\./[^)#\s]+)")


def check_repository_links(app: Sphinx, docname: str, source: list[str]) -> None:
    """Warn about a guide's link to a file or folder of the repository (outside docs/) that does not exist."""
    folder = (Path(app.srcdir) / docname).parent
    for target in REPOSITORY_LINK.findall(source[0]):
        if not (folder / target).exists():
            logger.warning("link to a missing file or folder: %s", target, location=docname)


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", resolve_public_name)
    app.connect("source-read", check_repository_links)
