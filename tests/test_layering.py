"""Data flows one way: spec -> compile -> inference -> predictive -> integrations.

No module imports from a layer above its own, not even inside a function (a lazy import is
still an upward dependency; issue 12 item 20 found the fit record reaching into io/arviz).
"""

from __future__ import annotations

import ast
from pathlib import Path

import bnn_ppl

PACKAGE = Path(bnn_ppl.__file__).parent
#: Layer of each top-level module or subpackage; anything not listed is an integration (top).
LAYERS = {"errors": 0, "registry": 0, "array_ops": 0, "display": 0, "seeds": 0, "spec": 1, "compile": 2, "inference": 3,
          "predictive": 4}
TOP = 5


def _layer(module: str) -> int:
    parts = module.split(".")
    return TOP if len(parts) == 1 else LAYERS.get(parts[1], TOP)


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("bnn_ppl", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        if module == "bnn_ppl":
            continue  # the package's lazy re-exports sit above everything
        own = _layer(module)
        upward += [f"{module}:{line} imports {target}" for line, target in _imports(path)
                   if target.startswith("bnn_ppl") and _layer(target) > own]
    assert upward == []


def test_the_layer_map_catches_an_upward_import():
    assert _layer("bnn_ppl.inference.result") < _layer("bnn_ppl.io") == _layer("bnn_ppl.result") == TOP
    assert _layer("bnn_ppl.display") < _layer("bnn_ppl.spec.network")
