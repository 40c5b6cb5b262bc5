"""The `hpo` command as a user runs it: exit codes, one-line errors, no tracebacks, no secrets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers import HPO, base_spec, run_hpo

ROOT = Path(__file__).resolve().parents[1]


def test_validate_ok_prints_summary() -> None:
    result = run_hpo("validate", str(ROOT / "configs/hpo/visual_classifier_v3_intelligent.yaml"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "visual_classifier_v3_intelligent_refinement" in out
    assert 'when encoder_type="cnn": demo_agg, width_mult, depth, mlp_hidden, use_coords' in out
    assert 'weighted encoder_type: "cnn" 75%, "context" 25%' in out
    assert "14,640 discrete combinations x 5 continuous" in out


def test_validate_errors_one_line_each_exit_1(write_spec: Callable[..., Path]) -> None:
    spec = base_spec(n_trials=0)
    spec["param_range"] = spec.pop("param_ranges")
    path = write_spec(spec)
    result = run_hpo("validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert (
        f"error: {path}: n_trials: Input should be greater than or equal to 1, but got 0" in lines
    )
    assert any("param_range: unknown key (did you mean 'param_ranges'?)" in ln for ln in lines)
    assert lines[-1] == f"{path}: 2 problem(s)"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", ["key: [unclosed\n", "not: a: mapping: at all\n", "- a\n"])
def test_validate_never_shows_a_traceback(content: str, write_spec: Callable[..., Path]) -> None:
    result = run_hpo("validate", str(write_spec(content)))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_validate_missing_file() -> None:
    result = run_hpo("validate", "does/not/exist.yaml")
    assert result.returncode == 1
    assert (
        result.stderr.splitlines()[0]
        == "error: does/not/exist.yaml: file not found; check the path"
    )


def test_password_on_the_command_line_is_refused(write_spec: Callable[..., Path]) -> None:
    path = write_spec(base_spec())
    result = run_hpo("worker", "--config", str(path), "--storage", "postgresql://u:topsecret@h/db")
    assert result.returncode == 1
    assert "export HPO_STORAGE_URL instead" in result.stderr
    assert "topsecret" not in result.stderr + result.stdout


def test_bad_cli_arguments_exit_2_with_usage() -> None:
    result = run_hpo("sweep", "--config", "x.yaml", "--workers", "0")
    assert result.returncode == 2
    assert "--workers: must be at least 1, but got 0" in result.stderr


def test_unreachable_storage_is_one_line_with_masked_password(
    write_spec: Callable[..., Path],
) -> None:
    path = write_spec(base_spec())
    result = run_hpo(
        "worker",
        "--config",
        str(path),
        env={"HPO_STORAGE_URL": "postgresql+psycopg2://u:pw123@127.0.0.1:1/db"},
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: storage postgresql+psycopg2://u:***@127.0.0.1:1/db: cannot connect"
    )
    assert "pw123" not in result.stderr and "Traceback" not in result.stderr


def test_status_and_studies_read_the_storage(write_spec: Callable[..., Path], pg_url: str) -> None:
    path = write_spec(base_spec(objective="noop", n_trials=5))
    env = {"HPO_STORAGE_URL": pg_url}
    assert run_hpo("worker", "--config", str(path), env=env).returncode == 0
    status = run_hpo("status", "test_study", env=env)
    assert status.returncode == 0
    assert status.stdout.startswith("test_study: 5/5 finished | 5 complete, 0 pruned, 0 failed")
    studies = run_hpo("studies", env=env)
    assert "test_study" in studies.stdout
    spec = run_hpo("spec", "test_study", env=env)
    assert yaml.safe_load(spec.stdout)["objective"] == "noop"
    missing = run_hpo("status", "nope", env=env)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no study named 'nope'")


@pytest.mark.slow
def test_sweep_runs_workers_shows_progress_and_stops_on_ctrl_c(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = base_spec(
        objective="hpo_core.testing.objectives:slow", n_trials=400, data={"seconds": 0.3}
    )
    path = write_spec(spec)
    env = dict(os.environ, HPO_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen(
        [HPO, "sweep", "--config", str(path), "--workers", "2", "--status-interval", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Ctrl-C once both workers run a trial (setting up the tracking store first takes a few s)
    logs_dir = tmp_path / "home" / "logs" / "test_study"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        logs = list(logs_dir.glob("*/worker-*.log"))
        if len(logs) == 2 and all("COMPLETE" in log.read_text() for log in logs):
            break
        time.sleep(0.3)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopping: workers finish their current trial" in err
    status_lines = [ln for ln in out.splitlines() if ln.startswith("test_study: ")]
    assert len(status_lines) >= 2  # periodic lines, then the final one
    final = status_lines[-1]
    assert "0 failed, 0 lost, 0 running" in final
    logs = sorted((tmp_path / "home" / "logs" / "test_study").glob("*/worker-*.log"))
    assert len(logs) == 2
    assert all("stop file" in log.read_text() for log in logs)


def test_importing_the_library_does_not_import_heavy_frameworks() -> None:
    code = (
        "import sys, hpo_core, hpo_core.spec, hpo_core.storage, hpo_core.objectives, hpo_core.data;"
        "import hpo_core.checks, hpo_core.pipeline, hpo_core.tracking, hpo_core.cli;"
        "heavy = [m for m in ('torch', 'mlflow', 'airflow', 'optuna') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_help_lists_every_command_once_under_its_stage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hpo_core import cli

    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    choices = cli._parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert len(choices) >= 27
    listed = [ln.split()[0] for ln in lines if ln.startswith("    ") and ln.split()]
    assert sorted(listed) == sorted(choices)  # each command once, none missing
    titles = ["Plan", "Run", "Watch", "Control", "Decide & refine", "Champions", "Data"]
    assert [ln.strip() for ln in lines if ln.strip() in titles] == titles
    under = {ln.split()[0]: title for title in titles for ln in _group_lines(lines, title)}
    assert (under["analyze"], under["worker"], under["champions"]) == (
        "Decide & refine",
        "Run",
        "Champions",
    )


def _group_lines(lines: list[str], title: str) -> list[str]:
    start = lines.index(f"  {title}") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("    ")), len(lines))
    return lines[start:end]
