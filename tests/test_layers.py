"""The import graph of hpo_core follows its layers (pyproject's [tool.importlinter] contracts, run
by import-linter on grimp's graph, function-level imports included), and docs/architecture.md
lists every package of the code with the layer the contract gives it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# a row of the package table: | `hpo_core.name` | L3 | one job |
ROW = re.compile(r"^\| `hpo_core\.(\w+)` \| (L\d|testing) \|", re.MULTILINE)


def test_no_package_imports_a_layer_above_it_or_forms_a_cycle() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # import-linter's report names each broken contract and the import chain that breaks it
    report = result.stdout[result.stdout.find("Broken contracts") :] or result.stdout
    assert result.returncode == 0, report + result.stderr
    assert "0 broken" in result.stdout


def _contract_layers() -> dict[str, str]:
    """Package name -> "L0" .. "L9" from the layers contract (listed top first)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    found = {}
    for depth, layer in enumerate(layers):
        for module in re.split(r"[|:]", layer):
            found[module.strip().removeprefix("hpo_core.")] = f"L{len(layers) - 1 - depth}"
    return found


def test_the_architecture_page_lists_every_package_at_its_layer() -> None:
    code = {
        p.name if p.is_dir() else p.stem
        for p in (ROOT / "hpo_core").iterdir()
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
    }
    table = dict(ROW.findall((ROOT / "docs" / "architecture.md").read_text()))
    assert sorted(code - set(table)) == [], "in hpo_core but not in docs/architecture.md"
    assert sorted(set(table) - code) == [], "in docs/architecture.md but not in hpo_core"
    assert {**_contract_layers(), "testing": "testing"} == table
