"""No credential in any output: a sweep with a password in HPO_STORAGE_URL (the test server trusts
loopback, so the password is accepted and ignored), then every command a user runs after it; every
file written (worker logs, reports, next spec, MLflow's store, the journal of runs) and every
line printed is searched for the password."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import base_spec, run_hpo

SECRET = "Zq7-never-in-a-file-9x"


@pytest.mark.slow
@pytest.mark.postgres
def test_a_password_in_the_storage_url_appears_in_no_output(
    pg_url: str, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    url = pg_url.replace("://postgres@", f"://postgres:{SECRET}@")
    assert SECRET in url
    home = tmp_path / "hpo_home"
    env = {"HPO_STORAGE_URL": url, "HPO_HOME": str(home)}
    config = write_spec(base_spec(n_trials=6, decision={"checkpoints": [3]}))
    out = tmp_path / "out"
    printed = []
    for args in (
        ("check", str(config), "--allow-cpu", "--min-free-gb", "0.01", "--out", str(out / "ck")),
        ("sweep", "--config", str(config), "--workers", "2"),
        ("status", "test_study"),
        ("studies",),
        ("top", "test_study", "--out", str(out / "top.yaml")),
        ("analyze", "test_study", "--out", str(out / "report")),
        ("decide", "test_study"),
        ("refine", "test_study", "--out", str(out / "next.yaml")),
        ("track", "test_study"),
        ("spec", "test_study"),
        ("cleanup", "test_study"),
    ):
        result = run_hpo(*args, env=env, timeout=300)
        assert result.returncode == 0, (args, result.stderr[-2000:])
        printed.append(result.stdout + result.stderr)
    assert "postgres:***@" in "".join(printed)  # the URL is shown, masked
    assert not [p for p in printed if SECRET in p]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.suffix == ".log" for p in files)
    leaks = [p for p in files if SECRET.encode() in p.read_bytes()]
    assert leaks == [], leaks
