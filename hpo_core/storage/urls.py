"""Storage URLs: where they come from, and how they are shown (never with a password)."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "DEFAULT_JOURNAL_NAME",
    "ENV_HOME",
    "ENV_STORAGE",
    "default_storage_url",
    "mask_url",
    "resolve_storage_url",
    "storage_kind",
]

ENV_STORAGE = "HPO_STORAGE_URL"
ENV_HOME = "HPO_HOME"  # the project data folder; `.hpo` in the working directory by default
DEFAULT_JOURNAL_NAME = "studies.journal"

_USERINFO_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)[^\s/]+@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)[^&\s]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with any password (user-info part or ``password=`` query) replaced by ``***``."""
    masked = _USERINFO_PASSWORD.sub(lambda m: f"{m.group('head')}***@", url)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", masked)


def default_storage_url() -> str:
    """The embedded default: a journal file in the project data folder, no server needed."""
    home = Path(os.environ.get(ENV_HOME) or ".hpo").expanduser().resolve()
    return f"journal://{(home / DEFAULT_JOURNAL_NAME).as_posix()}"


def resolve_storage_url(explicit: str | None = None) -> str:
    """``--storage`` if given, else ``$HPO_STORAGE_URL``, else the embedded journal default."""
    return explicit or os.environ.get(ENV_STORAGE) or default_storage_url()


def storage_kind(url: str) -> str:
    """``postgresql``, ``sqlite``, ``journal`` or the URL's scheme for anything else."""
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("postgres"):
        return "postgresql"
    if scheme.startswith("sqlite"):
        return "sqlite"
    return scheme
