"""The orchestrated sweep's steps (called by the Airflow DAGs) and the configs they offer.

Importing this package reads nothing and imports no heavy library: the DAG files import it at
parse time; each step imports what it needs when it runs.
"""

from __future__ import annotations

from hpo_core.pipeline.alerts import send_alert
from hpo_core.pipeline.configs import (
    ENV_CONFIG_DIR,
    ConfigEntry,
    ScheduledConfig,
    config_catalog,
    config_dir,
    list_configs,
    resolve_config,
    scheduled_configs,
)
from hpo_core.pipeline.pods import (
    POD_DEFAULTS,
    POD_REQUEST_SCHEMA,
    PodDeployment,
    pod_arguments,
    pod_settings,
)
from hpo_core.pipeline.run import (
    MAX_GATES,
    RunPlan,
    finish_alerts,
    finish_sweep,
    gate,
    plan_run,
    prepare_sweep,
    run_local_worker,
    stop_sweep,
    worker_slots,
)

__all__ = [
    "ENV_CONFIG_DIR",
    "MAX_GATES",
    "POD_DEFAULTS",
    "POD_REQUEST_SCHEMA",
    "ConfigEntry",
    "PodDeployment",
    "RunPlan",
    "ScheduledConfig",
    "config_catalog",
    "config_dir",
    "finish_alerts",
    "finish_sweep",
    "gate",
    "list_configs",
    "plan_run",
    "pod_arguments",
    "pod_settings",
    "prepare_sweep",
    "resolve_config",
    "run_local_worker",
    "scheduled_configs",
    "send_alert",
    "stop_sweep",
    "worker_slots",
]
