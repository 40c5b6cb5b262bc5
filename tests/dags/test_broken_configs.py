"""One bad file in the config folder never takes the other DAGs down: each spec is read and
validated on its own, a broken one is left out of the form and named in its description with
its error, `hpo configs` lists it, and every good DAG still loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO, run_hpo

GOOD = yaml.safe_load((REPO / "configs" / "hpo" / "demo_synthetic.yaml").read_text())


def _spec(**changes: Any) -> str:
    return yaml.safe_dump({**GOOD, **changes}, sort_keys=False)


# file name -> contents (bytes), and the words its one-line error must contain
BROKEN: dict[str, tuple[bytes, str]] = {
    "bad_date.yaml": (
        _spec(study_name="x").replace("study_name: x", "study_name: 2026-02-30").encode(),
        "study_name",
    ),
    "latin1.yaml": (_spec().encode() + "description: caf\xe9\n".encode("latin-1"), "UTF-8"),
    "deep.yaml": (_spec().encode() + b"fixed: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested"),
    "bad_cron.yaml": (_spec(study_name="bad_cron", schedule="a b c d e").encode(), "schedule"),
    "syntax.yaml": (b"study_name: [unclosed\n", "YAML"),
    "a_list.yaml": (b"- just\n- a list\n", "mapping"),
    "unknown_key.yaml": (_spec(study_name="unknown_key", n_trails=3).encode(), "n_trails"),
}


@pytest.fixture
def config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "demo_synthetic.yaml").write_text(_spec())
    (folder / "nightly.yaml").write_text(_spec(study_name="nightly_v1", schedule="0 2 * * *"))
    (folder / "weekly.yaml").write_text(_spec(study_name="weekly_v1", schedule="@weekly"))
    for name, (data, _) in BROKEN.items():
        (folder / name).write_bytes(data)
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(folder))
    return folder


def test_broken_configs_leave_every_good_dag_loaded(config_folder: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=str(REPO / "dags"))
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {
        "hpo_sweep",
        "hpo_prelaunch",
        "hpo_sweep__nightly",
        "hpo_sweep__weekly",
    }
    form = dagbag.dags["hpo_sweep"].params.get_param("config")
    assert form.schema["enum"] == ["demo_synthetic.yaml", "nightly.yaml", "weekly.yaml"]
    description = form.description
    for name, (_, words) in BROKEN.items():
        assert f"{name}:" in description and words in description, (name, description)
    assert str(config_folder) not in description  # names, not the server's paths


def test_hpo_configs_lists_the_broken_ones_with_one_line_each(config_folder: Path) -> None:
    shown = run_hpo("configs", "--dir", str(config_folder))
    assert shown.returncode == 1, shown.stderr  # a broken spec fails it, for a spec author's CI
    assert "Traceback" not in shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    for name, (_, words) in BROKEN.items():
        [line] = [line for line in lines if line.startswith(f"broken  {name}:")]
        assert words in line, line
    assert (
        "ok      nightly.yaml  study nightly_v1  scheduled '0 2 * * *' as hpo_sweep__nightly"
        in (lines)
    )
    assert lines[-1] == f"{config_folder}: 10 spec(s), 7 broken"
    rows = json.loads(run_hpo("configs", "--dir", str(config_folder), "--json").stdout)
    assert {r["file"] for r in rows if not r["ok"]} == set(BROKEN)
