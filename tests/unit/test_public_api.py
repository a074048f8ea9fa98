"""The package's public surface: lazy exports that resolve, match the typing imports, and keep
``import thingspace_swap`` light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import thingspace_swap

INIT = Path(thingspace_swap.__file__)


def _type_checking_imports() -> dict[str, list[str]]:
    tree = ast.parse(INIT.read_text())
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1
    imports: dict[str, list[str]] = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom)
        assert node.level == 1
        assert all(alias.asname is None for alias in node.names)
        imports["." + (node.module or "")] = [alias.name for alias in node.names]
    return imports


@pytest.mark.parametrize("name", thingspace_swap.__all__)
def test_every_exported_name_resolves(name: str):
    value = getattr(thingspace_swap, name)
    assert value is not None
    if name != "__version__":
        module = thingspace_swap._WHERE[name]
        source = __import__(f"thingspace_swap{module}", fromlist=[name])
        assert value is getattr(source, name)


def test_all_is_unique():
    assert len(thingspace_swap.__all__) == len(set(thingspace_swap.__all__))
    assert "__version__" in thingspace_swap.__all__


def test_dir_lists_the_exports():
    assert set(thingspace_swap.__all__) <= set(dir(thingspace_swap))


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = thingspace_swap.no_such_name  # type: ignore[attr-defined]
    assert not hasattr(thingspace_swap, "ThingSpaceClientt")
    with pytest.raises(ImportError):
        from thingspace_swap import NoSuchThing  # noqa: F401


def test_all_lists_exactly_the_exports():
    assert set(thingspace_swap.__all__) == {*thingspace_swap._WHERE, "__version__"}


def test_exports_table_matches_type_checking_imports():
    exports = {module: sorted(names) for module, names in thingspace_swap._EXPORTS.items()}
    assert exports == {m: sorted(n) for m, n in _type_checking_imports().items()}
    assert len(thingspace_swap._WHERE) == sum(len(n) for n in exports.values())  # no duplicates


HEAVY = ["boto3", "httpx", "thingspace_swap.client", "thingspace_swap.testing"]


def _loaded_after(statement: str) -> list[str]:
    report = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    code = f"import json, sys\n{statement}\n{report}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)


def test_import_is_light():
    assert _loaded_after("import thingspace_swap") == []
    assert _loaded_after("import thingspace_swap as t; t.Iccid, t.ThingSpaceError") == []
    # the check itself sees a heavy import when there is one
    assert _loaded_after("import thingspace_swap as t; t.ThingSpaceClient") == [
        "httpx",
        "thingspace_swap.client",
    ]


def test_version_is_a_string():
    assert isinstance(thingspace_swap.__version__, str)
    assert thingspace_swap.__version__
