"""What the sweep DAG's steps tell a person: the form's first choice and what each config needs,
the GPU check of an objective without torch, why a gate has nothing to decide, and a worker's
progress as it comes (the DAG runs: tests/dags/test_sweep_dag.py)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpo_core.pipeline import (
    check_run_gpu,
    config_catalog,
    default_config,
    gate_skip_reason,
)
from hpo_core.pipeline.progress import run_streaming
from tests.helpers import REPO, base_spec, run_plan


def _folder(root: Path, names: list[str]) -> Path:
    folder = root / "configs"
    folder.mkdir()
    for name in names:
        (folder / name).write_text((REPO / "configs" / "hpo" / name).read_text())
    return folder


def test_the_form_opens_on_a_config_that_runs_anywhere_or_the_deployments_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path, ["buy_signals_v1.yaml", "demo.yaml", "demo_synthetic.yaml"])
    (folder / "broken.yaml").write_text("study_name: [\n")
    monkeypatch.delenv("SWEEPFLOW_DEFAULT_CONFIG", raising=False)
    catalog = config_catalog(folder)
    assert default_config(catalog) == "demo_synthetic.yaml"  # not the first by name
    needs = {e.file: e.needs for e in catalog if e.ok}
    assert needs["demo_synthetic.yaml"].startswith("no GPU, no data file; 40 trials")
    assert needs["buy_signals_v1.yaml"].startswith(
        "a GPU (or Allow CPU), the data at data/buy_signals.parquet"
    )
    monkeypatch.setenv("SWEEPFLOW_DEFAULT_CONFIG", "demo.yaml")
    assert default_config(catalog) == "demo.yaml"
    for ignored in ("broken.yaml", "missing.yaml"):  # logged, and the form still opens
        monkeypatch.setenv("SWEEPFLOW_DEFAULT_CONFIG", ignored)
        assert default_config(catalog) == "demo_synthetic.yaml"
    # without the demo: a spec that needs no GPU and no data file, before the others
    monkeypatch.delenv("SWEEPFLOW_DEFAULT_CONFIG")
    (folder / "demo_synthetic.yaml").rename(folder / "zz_cpu.yaml")
    assert default_config(config_catalog(folder)) == "zz_cpu.yaml"


def test_an_objective_without_torch_passes_the_gpu_check_without_allow_cpu(
    tmp_path: Path,
) -> None:
    plan = dataclasses.replace(run_plan(tmp_path / "spec.yaml", tmp_path), allow_cpu=False)
    cpu = check_run_gpu(dataclasses.replace(plan, needs_gpu=False))
    assert cpu.status == "pass" and "no GPU needed" in cpu.reason
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the check passes either way")
    assert check_run_gpu(plan).status == "fail"  # a torch objective still needs one


def test_a_gate_with_nothing_to_decide_says_why(tmp_path: Path) -> None:
    plan = dataclasses.replace(run_plan(tmp_path / "spec.yaml", tmp_path), n_trials=6)
    gated = dataclasses.replace(plan, segments=[3, 6])
    assert gate_skip_reason(gated, 0) is None
    assert gate_skip_reason(gated, 1) == (
        "no checkpoint after 3 trials: nothing to decide (the sweep runs to its budget of 6 trials)"
    )
    assert gate_skip_reason(gated, 2) == gate_skip_reason(gated, 1)
    assert "no checkpoint below 6 trials" in str(gate_skip_reason(plan, 0))
    dry = dataclasses.replace(gated, dry_run=True)
    assert gate_skip_reason(dry, 0) == "a dry run: checks only, no worker ran; nothing to decide"


WORKER = """
import sys
for line in sys.argv[1:]:
    print("2026-01-01 10:00:00 INFO    " + line, file=sys.stderr, flush=True)
print('{"complete": 2}')
"""
WORKER_LINES = [
    "worker w0 joined study s (journal:///x)",
    "trial 0 COMPLETE value=0.5 in 1.2s",
    "trial 1 COMPLETE value=0.9 in 0.3s",
    "trial 2 PRUNED in 0.1s (step 2: below the median)",
    "trial 3 FAILED in 0.0s: ValueError: bad",
]


@pytest.mark.parametrize(("maximize", "best"), [(True, "0.9 (trial 1"), (False, "0.5 (trial 0")])
def test_a_workers_lines_come_as_progress_and_stay_in_its_log(
    tmp_path: Path, maximize: bool, best: str
) -> None:
    log = tmp_path / "w.log"
    seen: list[str] = []
    code, out = run_streaming(
        [sys.executable, "-c", WORKER, *WORKER_LINES],
        env={},
        log_path=log,
        on_line=seen.append,
        maximize=maximize,
    )
    assert code == 0 and out.decode().strip() == '{"complete": 2}'
    assert seen[0] == "worker w0 joined study s (journal:///x)"
    assert seen[1].startswith("trial 0 finished: value 0.5 in 1.2s; best so far 0.5 (trial 0")
    assert seen[2].startswith("trial 1 finished: value 0.9 in 0.3s; best so far " + best)
    assert seen[3:] == [
        "trial 2 pruned in 0.1s (step 2: below the median)",
        "trial 3 failed in 0.0s: ValueError: bad",
    ]
    assert log.read_text().count("INFO    trial ") == 4  # the worker's own lines, as written


def test_a_worker_past_its_timeout_is_killed(tmp_path: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run_streaming(
            [sys.executable, "-c", "import time; time.sleep(30)"],
            env={},
            log_path=tmp_path / "w.log",
            on_line=None,
            timeout=0.5,
        )


def test_a_spec_file_the_form_lists_is_read_once(tmp_path: Path) -> None:
    """The needs come from the same validated read as the rest of the catalog entry."""
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "cpu.yaml").write_text(yaml.safe_dump(base_spec(data={"path": "t.csv"})))
    (entry,) = config_catalog(folder)
    assert entry.needs.startswith("no GPU, the data at t.csv; 10 trials, objective synthetic")
