"""The orchestrated steps' trust rules: a local worker inherits a clean environment, a run's
manifest stays inside the config and data folders and is never quoted, and an unforeseen error
in any `hpo` command is one line with its traceback in a file."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hpo_core.checks import check_data, verify_manifest
from hpo_core.errors import HpoError
from hpo_core.pipeline import run_local_worker
from hpo_core.spec import load_spec
from hpo_core.storage import open_storage
from hpo_core.study import create_study
from tests.helpers import base_spec, run_plan

SECRETS = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:metadb-secret@db/airflow",
    "AIRFLOW__CORE__FERNET_KEY": "fernet-secret",
    "AIRFLOW__API_AUTH__JWT_SECRET": "jwt-secret",
    "AIRFLOW_CONN_HPO_ALERTS": "smtp://u:alert-secret@mail:587",
    "POSTGRES_PASSWORD": "pg-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
}


def test_a_local_worker_gets_what_it_needs_and_none_of_the_orchestrators_secrets(
    journal_url: str,
    write_spec: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "env"
    out.mkdir()
    spec = base_spec(
        n_trials=1,
        objective="hpo_core.testing.objectives:dump_environment",
        data={"out_dir": str(out)},
    )
    config = write_spec(spec)
    create_study(load_spec(config), open_storage(journal_url))
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "sweepflow")
    monkeypatch.setenv("HPO_WORKER_ENV_PASSTHROUGH", "AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://stale-value-from-the-parent")
    progress: list[str] = []
    report = run_local_worker(
        run_plan(config, tmp_path / "run"),
        {"worker_id": "test_study-s0-w0", "until": None},
        storage_url=journal_url,
        tracking_uri=None,
        on_progress=progress.append,
    )
    assert report["complete"] == 1
    # its progress came line by line (for the Airflow task log), the log file's path last
    assert any(line.startswith("trial 0 finished: value ") for line in progress), progress
    log = tmp_path / "run" / "logs" / "test_study-s0-w0.log"
    assert progress[-1] == f"worker test_study-s0-w0: its log is {log}"
    assert "trial 0 COMPLETE" in log.read_text()
    env = json.loads((out / "env-0.json").read_text())
    leaked = {k for k in env if k.startswith("AIRFLOW") or k == "POSTGRES_PASSWORD"}
    assert not leaked
    for secret in ("metadb-secret", "fernet-secret", "jwt-secret", "alert-secret", "pg-secret"):
        assert secret not in json.dumps(env)
    assert env["HPO_STORAGE_URL"] == journal_url
    assert "MLFLOW_TRACKING_URI" not in env  # tracking off for this worker: none inherited
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["PATH"] == os.environ["PATH"]
    assert env["MLFLOW_TRACKING_USERNAME"] == "sweepflow"
    assert env["AWS_SECRET_ACCESS_KEY"] == "aws-secret"  # named by the deployment
    assert env["HPO_HOME"] == os.environ["HPO_HOME"]


def _data_and_manifest(root: Path) -> tuple[Path, Path]:
    """A spec whose data file lives in root/data, and a good manifest of it there."""
    data = root / "data"
    data.mkdir()
    (data / "table.csv").write_text("a,b\n1,2\n")
    digest = hashlib.sha256((data / "table.csv").read_bytes()).hexdigest()
    (data / "SHA256SUMS").write_text(f"{digest}  table.csv\n")
    configs = root / "configs"
    configs.mkdir()
    spec = base_spec(data={"path": str(data / "table.csv")})
    (configs / "spec.yaml").write_text(yaml.safe_dump(spec))
    return configs / "spec.yaml", data / "SHA256SUMS"


def test_a_runs_manifest_stays_inside_the_config_and_data_folders(tmp_path: Path) -> None:
    config, manifest = _data_and_manifest(tmp_path)
    good = check_data(config, manifest=manifest, confine_manifest=True)
    assert good.status == "pass" and good.reason.endswith("1 files match SHA256SUMS")

    secret = tmp_path / "elsewhere" / "airflow.env"
    secret.parent.mkdir()
    secret.write_text("postgresql://airflow:metadb-secret@db/airflow\n")
    link = tmp_path / "data" / "innocent.sums"
    link.symlink_to(secret)
    escaping = tmp_path / "data" / "escaping.sums"
    escaping.write_text(f"{'0' * 64}  ../elsewhere/airflow.env\n")
    garbage = tmp_path / "configs" / "garbage.sums"
    garbage.write_text("postgresql://airflow:metadb-secret@db/airflow is not a listing\n")
    binary = tmp_path / "configs" / "binary.sums"
    binary.write_bytes(b"\xff\xfe metadb-secret")
    for bad, words in [
        (secret, "must be a file inside the config folder or the spec's data folder"),
        (link, "must be a file inside the config folder or the spec's data folder"),
        ("/etc/passwd", "must be a file inside"),
        (escaping, "line 1 names a file outside the manifest's folder"),
        (garbage, "line 1 is not `<sha256>  <path>`"),
        (binary, "not a text file"),
        (tmp_path / "data" / "nothing.sums", "no such file"),
    ]:
        result = check_data(config, manifest=bad, confine_manifest=True)
        assert result.status == "fail" and words in result.reason, (bad, result.reason)
        assert "metadb-secret" not in json.dumps(result.__dict__), result.reason
        assert "\n" not in result.reason
    # from the command line, the user's own files: any path, but still never quoted
    with pytest.raises(HpoError) as caught:
        verify_manifest(garbage)
    assert "metadb-secret" not in str(caught.value)


def test_an_unforeseen_error_is_one_line_and_its_traceback_goes_to_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpo_core import cli

    def broken(args: object) -> int:
        raise RuntimeError("boom at postgresql://hpo:s3cret@db/optuna\nsecond line")

    real = cli._parser

    def parser() -> object:
        built = real()
        built._subparsers._group_actions[0].choices["studies"].set_defaults(handler=broken)  # type: ignore[union-attr]
        return built

    monkeypatch.setattr(cli, "_parser", parser)
    assert cli.main(["studies"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: RuntimeError: boom at postgresql://hpo:***@")
    log = Path(err[0].rsplit(" in ", 1)[1].rstrip(")"))
    assert log.parent == Path(os.environ["HPO_HOME"]) / "logs"
    text = log.read_text()
    assert "Traceback" in text and "second line" in text and "s3cret" not in text
