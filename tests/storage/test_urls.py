from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpo_core.errors import StorageError
from hpo_core.spec import find_url_passwords
from hpo_core.storage import (
    default_storage_url,
    has_url_password,
    mask_url,
    open_storage,
    resolve_storage_url,
    url_origin,
)
from tests.helpers import run_hpo

# (URL, how it is shown). Passwords are made of marker pieces (two letters and a digit: Kw1) joined
# by the characters a URL parser must get right; no marker may survive masking.
URLS = [
    ("postgresql+psycopg2://alice:Kw1@db:5432/optuna", "postgresql+psycopg2://alice:***@db:5432/optuna"),
    ("mysql://root:Kw1-Vb2@127.0.0.1:3306/optuna", "mysql://root:***@127.0.0.1:3306/optuna"),
    ("http://mlflow:Kw1@tracking.internal:5000", "http://mlflow:***@tracking.internal:5000"),
    (
        "postgresql://u@db/optuna?sslmode=require&password=Kw1&sslpassword=Vb2",
        "postgresql://u@db/optuna?sslmode=require&password=***&sslpassword=***",
    ),
    ("https://tracking.example.org/?token=Kw1", "https://tracking.example.org/?token=***"),
    (  # every odd character, percent-encoded as it must be
        "postgresql://u:Kw1%2FVb2%40Xc3%25Zn4%3AQm5%23Rt6%3FYp7%20Hd8@db/optuna",
        "postgresql://u:***@db/optuna",
    ),
    ("postgresql://u:Kw1@Vb2@db/optuna", "postgresql://u:***@db/optuna"),  # unencoded '@'
    ("postgresql://u:Kw1/Vb2@db/optuna", "postgresql://u:***@db/optuna"),  # unencoded '/'
    ("postgresql://u:Kw1#Vb2@db/optuna", "postgresql://u:***@db/optuna"),
    ("postgresql://u:Kw1?Vb2@db/optuna", "postgresql://u:***@db/optuna"),
    ("postgresql://u:Kw1:Vb2@db/optuna", "postgresql://u:***@db/optuna"),
    ("postgresql://u:Kw1%Vb2@db/optuna", "postgresql://u:***@db/optuna"),  # a bare '%'
    ("postgresql://u:Kw1 Vb2@db/optuna", "postgresql://u:***@db/optuna"),  # a space
    ("postgresql://u:123 Kw1@db/optuna", "postgresql://u:***@db/optuna"),  # reads as a port
    ("mysql://root:Kw1/Vb2@Xc3@db/optuna", "mysql://root:***@db/optuna"),  # '/' and '@'
    ("postgresql://u:Kw1@[::1]:5432/optuna", "postgresql://u:***@[::1]:5432/optuna"),
    ("postgresql://u:Kw1@[fe80::1%25eth0]/optuna", "postgresql://u:***@[fe80::1%25eth0]/optuna"),
    # no password: shown as written, accepted on a command line
    ("postgresql://alice@db/optuna", "postgresql://alice@db/optuna"),
    ("postgresql://u@[::1]:5432/optuna", "postgresql://u@[::1]:5432/optuna"),
    ("http://[::1]:5000/x", "http://[::1]:5000/x"),
    ("journal:///tmp/a@b:c/studies.journal", "journal:///tmp/a@b:c/studies.journal"),
    ("sqlite:////tmp/x@y:z/mlflow.db", "sqlite:////tmp/x@y:z/mlflow.db"),
]
WITH_PASSWORD = [url for url, shown in URLS if url != shown]


def _markers(url: str) -> list[str]:
    return re.findall(r"[A-Z][a-z]\d", url)


@pytest.mark.parametrize(("url", "shown"), URLS)
def test_mask_url_hides_every_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert not [m for m in _markers(url) if m in mask_url(url)]
    # the same finding refuses it on a command line and in a config
    assert has_url_password(url) is (url != shown)
    assert find_url_passwords({"data": {"url": url}}) == (["data.url"] if url != shown else [])


def test_every_url_in_a_text_is_masked() -> None:
    text = (
        "could not connect to 'postgresql://u:Kw1 Vb2@db/x' (server closed); retrying "
        "mysql://c:Xc3@e/f?password=Zn4\nthen postgresql://u:Qm5/Rt6@h/d: refused"
    )
    assert mask_url(text) == (
        "could not connect to 'postgresql://u:***@db/x' (server closed); retrying "
        "mysql://c:***@e/f?password=***\nthen postgresql://u:***@h/d: refused"
    )


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://hooks.slack.com/services/T0/B0/Kw1", "https://hooks.slack.com/..."),
        ("https://chat.example.com/v1/spaces/A/messages?key=Kw1", "https://chat.example.com/..."),
        ("http://user:Kw1@127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://[::1]:9443/hook#Kw1", "https://[::1]:9443/..."),
        ("https://u:Kw1/Vb2@host/x", "(a URL that does not parse)"),
    ],
)
def test_url_origin_shows_scheme_and_host_only(url: str, origin: str) -> None:
    assert url_origin(url) == origin


@pytest.mark.parametrize("url", WITH_PASSWORD)
def test_a_password_on_the_command_line_is_refused_without_echo(url: str) -> None:
    for args, flag in (
        (("status", "x", "--storage", url), "--storage"),
        (("track", "x", "--tracking-uri", url), "--tracking-uri"),
    ):
        result = run_hpo(*args)
        assert result.returncode == 1
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"error: {flag}: contains a password, which any user can read")
        assert not [m for m in _markers(url) if m in result.stdout + result.stderr]


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
