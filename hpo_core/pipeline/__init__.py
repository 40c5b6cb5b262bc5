"""The workflow layer: the only place that composes the stages (start a sweep, run workers to a
checkpoint, decide, stop, finish, clean up). Both front doors call it: the Airflow DAGs and the
`hpo` command.

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
from hpo_core.pipeline.finish import (
    Published,
    StudyReport,
    analyze_sweep,
    publish,
    refine_sweep,
    report_study,
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
from hpo_core.pipeline.sweeps import (
    LocalSweep,
    champion_ui,
    cleanup_sweep,
    decide_sweep,
    judge,
    open_sweep,
    plan_local_sweep,
    run_local_sweep,
    storage_url,
    track_sweep,
    train_sweep_champions,
)

__all__ = [
    "ENV_CONFIG_DIR",
    "MAX_GATES",
    "POD_DEFAULTS",
    "POD_REQUEST_SCHEMA",
    "ConfigEntry",
    "LocalSweep",
    "PodDeployment",
    "Published",
    "RunPlan",
    "ScheduledConfig",
    "StudyReport",
    "analyze_sweep",
    "champion_ui",
    "cleanup_sweep",
    "config_catalog",
    "config_dir",
    "decide_sweep",
    "finish_alerts",
    "finish_sweep",
    "gate",
    "judge",
    "list_configs",
    "open_sweep",
    "plan_local_sweep",
    "plan_run",
    "pod_arguments",
    "pod_settings",
    "prepare_sweep",
    "publish",
    "refine_sweep",
    "report_study",
    "resolve_config",
    "run_local_sweep",
    "run_local_worker",
    "scheduled_configs",
    "send_alert",
    "stop_sweep",
    "storage_url",
    "track_sweep",
    "train_sweep_champions",
    "worker_slots",
]
