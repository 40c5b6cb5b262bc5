"""Where studies live: storage URLs, masking, and opening Optuna storages."""

from __future__ import annotations

from hpo_core.storage.backends import StorageHandle, file_lock, open_storage
from hpo_core.storage.urls import (
    ENV_HOME,
    ENV_STORAGE,
    default_storage_url,
    mask_url,
    resolve_storage_url,
    storage_kind,
)

__all__ = [
    "ENV_HOME",
    "ENV_STORAGE",
    "StorageHandle",
    "default_storage_url",
    "file_lock",
    "mask_url",
    "open_storage",
    "resolve_storage_url",
    "storage_kind",
]
