"""Rules of the test suite itself: a test module or conftest imports shared code from helper
modules (tests/helpers.py, tests/strategies.py, ...), never from another test module or a conftest
(importing one runs its tests' module code twice and hides what is shared)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _is_test_module(path: Path) -> bool:
    return path.name == "conftest.py" or (path.name.startswith("test_") and path.suffix == ".py")


def _module_path(dotted: str) -> Path | None:
    """The file under tests/ that `tests.a.b` names (a module or a package), if any."""
    parts = dotted.split(".")
    if parts[0] != "tests":
        return None
    base = TESTS.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every module an import in `path` may load, at any depth."""
    package = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from tests.a import test_b` loads the module tests.a.test_b
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def test_modules_import_no_test_module_or_conftest() -> None:
    offences = []
    for path in sorted(TESTS.rglob("*.py")):
        for line, module in _imported_modules(path):
            target = _module_path(module)
            if target is not None and target != path and _is_test_module(target):
                where = f"{path.relative_to(TESTS.parent)}:{line}"
                offences.append(f"{where} imports {module} (move what it shares to tests/helpers.py)")
    assert not offences, "\n".join(offences)
