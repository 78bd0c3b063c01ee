"""House limits on size, checked on the code itself: no class over 300 lines, no function over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = (ROOT / "layers" / "common" / "imagegen", ROOT / "functions")
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60


def oversized(source: str, path: str) -> list[str]:
    """Each class or function (methods and nested functions included) longer than its limit, with its length."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found.append(f"{path}:{node.lineno} {node.name} has {lines} lines (limit {limit})")
    return found


def test_given_the_package_and_handlers_when_measured_then_no_class_or_function_is_over_its_limit() -> None:
    # Given every module of the layer package and every handler
    sources = sorted(path for folder in CHECKED for path in folder.rglob("*.py"))
    assert len(sources) > 50  # the walk found the code, not an empty folder

    # When each one's classes and functions are measured
    found = [line for path in sources for line in oversized(path.read_text(), str(path.relative_to(ROOT)))]

    # Then none is over its limit
    assert found == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n" + "    x = 1\n" * 60, ["m.py:1 f has 61 lines (limit 60)"]),
        ("def f():\n" + "    x = 1\n" * 59, []),
        ("class C:\n" + "    x = 1\n" * 300, ["m.py:1 C has 301 lines (limit 300)"]),
        ("class C:\n    def m(self):\n" + "        x = 1\n" * 60, ["m.py:2 m has 61 lines (limit 60)"]),
    ],
)
def test_given_a_long_function_or_class_when_measured_then_the_check_names_it(source: str, expected: list[str]) -> None:
    assert oversized(source, "m.py") == expected
