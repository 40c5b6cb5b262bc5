"""Where studies live: storage URLs, masking, opening Optuna storages, riding out restarts.

``resilient`` (it imports optuna) loads on first use, so DAG files that import this package stay
cheap to parse.
"""

from __future__ import annotations

from hpo_core._lazy import lazy_getattr
from hpo_core.storage.backends import (
    ENV_STORAGE_POOL,
    StorageHandle,
    file_lock,
    open_storage,
)
from hpo_core.storage.urls import (
    ENV_HOME,
    ENV_STORAGE,
    default_storage_url,
    has_url_password,
    mask_url,
    resolve_storage_url,
    storage_kind,
    url_origin,
)

_LAZY = {
    "ResilientRDBStorage": "hpo_core.storage.resilient",
    "is_disconnect": "hpo_core.storage.resilient",
    "retry_storage": "hpo_core.storage.resilient",
}

__all__ = [
    "ENV_HOME",
    "ENV_STORAGE",
    "ENV_STORAGE_POOL",
    "ResilientRDBStorage",
    "StorageHandle",
    "default_storage_url",
    "file_lock",
    "has_url_password",
    "is_disconnect",
    "mask_url",
    "open_storage",
    "resolve_storage_url",
    "retry_storage",
    "storage_kind",
    "url_origin",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
