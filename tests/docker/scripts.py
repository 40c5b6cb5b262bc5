"""The stack's Python scripts under docker/ (not package modules), loaded for in-process tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def load_script(relative: str) -> ModuleType:
    """docker/<relative> as a module; its `if __name__ == "__main__"` block does not run."""
    path = DOCKER / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
