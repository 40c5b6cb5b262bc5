from __future__ import annotations

from pathlib import Path

import pytest

from hpo_core.errors import StorageError
from hpo_core.storage import default_storage_url, mask_url, open_storage, resolve_storage_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:s3cret@db:5432/optuna", "postgresql://alice:***@db:5432/optuna"),
        ("postgresql+psycopg2://u:p@ss:w0rd@h/db", "postgresql+psycopg2://u:***@h/db"),
        (
            "postgresql://u:x@h/db?sslmode=require&password=y",
            "postgresql://u:***@h/db?sslmode=require&password=***",
        ),
        ("postgresql://alice@db/optuna", "postgresql://alice@db/optuna"),
        ("journal:///tmp/x.journal", "journal:///tmp/x.journal"),
        (
            "see postgresql://a:b@h/d and mysql://c:d@e/f",
            "see postgresql://a:***@h/d and mysql://c:***@e/f",
        ),
    ],
)
def test_mask_url_hides_every_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    assert resolve_storage_url() == default_storage_url() == f"journal://{tmp_path}/studies.journal"
    monkeypatch.setenv("HPO_STORAGE_URL", "sqlite:///from-env.db")
    assert resolve_storage_url() == "sqlite:///from-env.db"
    assert resolve_storage_url("sqlite:///explicit.db") == "sqlite:///explicit.db"


def test_unreachable_postgres_names_host_and_reason_without_password() -> None:
    with pytest.raises(StorageError) as info:
        open_storage("postgresql+psycopg2://bob:hunter2@127.0.0.1:1/optuna")
    message = str(info.value)
    assert "hunter2" not in message
    assert message.startswith(
        "storage postgresql+psycopg2://bob:***@127.0.0.1:1/optuna: cannot connect ("
    )


def test_unsupported_scheme() -> None:
    with pytest.raises(StorageError, match="unsupported URL scheme 'redis'"):
        open_storage("redis://localhost:6379")


def test_reading_a_missing_journal_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "none.journal"
    with pytest.raises(StorageError, match="no such journal file"):
        open_storage(f"journal://{path}", create=False)
    assert not path.exists()
