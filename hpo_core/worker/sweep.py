"""A local sweep: N worker processes running the exact command a Kubernetes pod runs.

The storage URL reaches the workers through ``HPO_STORAGE_URL`` in their environment, never on
their command line (where ``ps`` and pod specs would show it). Each worker logs to its own file;
the terminal shows one progress line for the whole study.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from hpo_core.errors import HpoError
from hpo_core.objectives import require_objective_spec
from hpo_core.spec import LoadedSpec
from hpo_core.storage import ENV_HOME, ENV_STORAGE, open_storage
from hpo_core.study import StudyProgress, create_study, require_running, study_progress
from hpo_core.worker.gpus import ENV_CUDA_DEVICES, GpuAssignment, assign_gpus

__all__ = [
    "ENV_WORKER_PASSTHROUGH",
    "WORKER_ENV_KEEP",
    "SweepResult",
    "run_sweep",
    "sweep_paths",
    "worker_command",
    "worker_environment",
]

_log = logging.getLogger(__name__)


def worker_command(
    config: str | Path | None = None,
    *,
    study: str | None = None,
    stop_file: str | Path | None = None,
    timeout: float | None = None,
    worker_id: str | None = None,
    until: int | None = None,
    executable: str = "hpo",
) -> list[str]:
    """The worker command line, the same for a local process and a Kubernetes pod: from a spec
    file (``config``), or joining an existing study by name (``study``: it runs the stored spec).

    It carries no credential: the storage URL comes from ``HPO_STORAGE_URL``.
    """
    if (config is None) == (study is None):
        raise ValueError("worker_command: give a config or a study name")
    source = ["--config", str(config)] if config is not None else ["--study", str(study)]
    command = [executable, "worker", *source]
    if stop_file is not None:
        command += ["--stop-file", str(stop_file)]
    if timeout is not None:
        command += ["--timeout", f"{timeout:g}"]
    if worker_id is not None:
        command += ["--worker-id", worker_id]
    if until is not None:
        command += ["--until", str(until)]
    return command


# What a worker process started by an orchestrator inherits: what `hpo worker` and the
# objective's libraries need, not the orchestrator's own secrets (Airflow's metadata database
# URL, Fernet key, JWT secret, other connections). Names, or prefixes ending in "_".
WORKER_ENV_KEEP = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "VIRTUAL_ENV",
    "HPO_",
    "SWEEPFLOW_CONFIG_DIR",
    "MLFLOW_",  # tracking URI and credentials, telemetry switch, logging level
    "CUDA_",
    "NVIDIA_",
    "NCCL_",
    "CUBLAS_",
    "CUDNN_",
    "TORCH_",
    "PYTORCH_",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "LD_LIBRARY_PATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
# A deployment names extra variables its objectives need (e.g. "AWS_,GOOGLE_APPLICATION_CREDENTIALS"
# for an artifact store), comma-separated; only the deployment's own environment can set it.
ENV_WORKER_PASSTHROUGH = "HPO_WORKER_ENV_PASSTHROUGH"


def worker_environment(
    base: Mapping[str, str] | None = None, **settings: str | None
) -> dict[str, str]:
    """The environment of a worker process: the variables of ``base`` (default: this process's)
    that :data:`WORKER_ENV_KEEP` or ``$HPO_WORKER_ENV_PASSTHROUGH`` name, then ``settings``
    (a None value removes the variable)."""
    base = os.environ if base is None else base
    extra = tuple(
        name.strip() for name in base.get(ENV_WORKER_PASSTHROUGH, "").split(",") if name.strip()
    )

    def kept(name: str) -> bool:
        return any(
            name.startswith(k) if k.endswith("_") else name == k
            for k in (*WORKER_ENV_KEEP, *extra)
        )

    env = {name: value for name, value in base.items() if kept(name)}
    for name, value in settings.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def sweep_paths(study_name: str) -> tuple[Path, Path]:
    """Where a local sweep writes worker logs (one folder per run) and looks for its stop file."""
    from datetime import datetime

    home = Path(os.environ.get(ENV_HOME) or ".hpo")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return home / "logs" / study_name / stamp, home / "run" / f"{study_name}.stop"


def _local_executable() -> str:
    """The `hpo` script of this installation, so workers run the same code as the launcher."""
    beside = Path(sys.executable).with_name("hpo")
    if beside.exists():
        return str(beside)
    found = shutil.which("hpo")
    if found:
        return found
    raise HpoError("the `hpo` command is not installed beside this Python; run `make install`")


@dataclass
class SweepResult:
    progress: StudyProgress
    exit_codes: list[int]
    log_dir: Path
    stopped_by_user: bool = False
    failed_workers: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed_workers


def run_sweep(
    loaded: LoadedSpec,
    config_path: str | Path,
    storage_url: str,
    *,
    workers: int,
    timeout: float | None = None,
    log_dir: Path,
    stop_file: Path,
    status_interval: float = 30.0,
    show_bar: bool | None = None,
    tracking: bool = True,
    tracking_uri: str | None = None,
    gpus: GpuAssignment | None = None,
    warm_start: str | None = None,
) -> SweepResult:
    """Launch ``workers`` local worker processes and follow the study until they exit. Each
    gets its own ``CUDA_VISIBLE_DEVICES`` from ``gpus`` (default: round robin over the visible
    GPUs, see :func:`hpo_core.worker.assign_gpus`). ``warm_start`` names a study whose fitting
    trials a new study starts with (:func:`hpo_core.study.create_study`)."""
    if workers < 1:
        raise HpoError(f"--workers: must be at least 1, but got {workers}")
    if gpus is None:
        gpus = assign_gpus(workers)
    elif len(gpus.devices) != workers:
        raise ValueError(f"run_sweep: GPUs for {len(gpus.devices)} workers, not {workers}")
    require_objective_spec(loaded.spec, source=loaded.source)
    handle = open_storage(storage_url)
    # once here, so spec and storage errors show once, and the warm start is copied before any
    # worker joins (they join by the spec file, which need not name it)
    sweep = create_study(loaded, handle, warm_start=warm_start)
    require_running(sweep)
    if tracking:  # the parent run, once, before any worker starts
        from hpo_core.tracking import ATTR_TRACKING_URI, ENV_TRACKING, Tracker

        tracker = Tracker(tracking_uri, stored=sweep.study.user_attrs.get(ATTR_TRACKING_URI))
        try:
            tracker.ensure_parent_run(sweep)
        except HpoError as exc:
            raise HpoError(f"{exc}, or run without tracking (--no-tracking)") from None
    log_dir.mkdir(parents=True, exist_ok=True)
    stop_file.parent.mkdir(parents=True, exist_ok=True)
    stop_file.unlink(missing_ok=True)  # ours, from an earlier stopped run

    env = dict(os.environ)
    env[ENV_STORAGE] = storage_url
    if tracking:  # in the environment, never on a command line
        env[ENV_TRACKING] = tracker.uri
    # N local workers share this machine's cores: give each its share of torch threads
    env.setdefault("HPO_TORCH_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    exe = _local_executable()
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    for i in range(workers):
        log_path = log_dir / f"worker-{i}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed after the process exits
        logs.append(log_file)
        command = worker_command(
            Path(config_path).resolve(),
            stop_file=stop_file,
            timeout=timeout,
            worker_id=f"local-{i}",
            executable=exe,
        )
        device = gpus.devices[i]  # None: no GPU found, the worker keeps the inherited value
        worker_env = env if device is None else {**env, ENV_CUDA_DEVICES: device}
        # Own session: a terminal Ctrl-C reaches the launcher only, which stops workers in order.
        procs.append(
            subprocess.Popen(
                command,
                env=worker_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    _log.info("started %d workers for %s; logs in %s", workers, sweep.name, log_dir)

    interrupts = 0

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            # The stop file is the graceful path: every worker finishes its trial and leaves.
            stop_file.touch()
            sys.stderr.write(
                "\nstopping: workers finish their current trial (Ctrl-C again to stop them now)\n"
            )
            return
        for proc in procs:
            if proc.poll() is None:
                if interrupts == 2:  # a worker's second SIGTERM stops it at once, trial lost
                    proc.send_signal(signal.SIGTERM)
                    time.sleep(0.05)
                    proc.send_signal(signal.SIGTERM)
                else:
                    proc.kill()

    previous = {s: signal.signal(s, on_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = _Bar(sweep.spec.n_trials, enabled=sys.stderr.isatty() if show_bar is None else show_bar)
    last_line = 0.0
    try:
        while any(proc.poll() is None for proc in procs):
            time.sleep(1.0)
            progress = study_progress(sweep)
            bar.update(progress)
            if not bar.enabled and time.monotonic() - last_line >= status_interval:
                print(progress.line(), flush=True)
                last_line = time.monotonic()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for proc in procs:
            proc.wait()
        for log_file in logs:
            log_file.close()
        bar.close()
    progress = study_progress(sweep)
    if tracking and progress.finished >= progress.n_trials:
        tracker.close_parent_run(sweep)
    handle.dispose()
    codes = [proc.returncode for proc in procs]
    return SweepResult(
        progress=progress,
        exit_codes=codes,
        log_dir=log_dir,
        stopped_by_user=interrupts > 0,
        failed_workers=[i for i, code in enumerate(codes) if code != 0],
    )


class _Bar:
    """A tqdm bar on a terminal; nothing otherwise (the caller prints status lines instead)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="trial", dynamic_ncols=True)

    def update(self, progress: StudyProgress) -> None:
        if self._bar is None:
            return
        self._bar.total = progress.n_trials
        self._bar.n = progress.finished
        best = f"{progress.best_value:.4g}" if progress.best_value is not None else "-"
        self._bar.set_postfix_str(
            f"pruned {progress.pruned} failed {progress.failed} lost {progress.lost} "
            f"running {progress.running} "
            f"best {best}"
            + (f" {progress.trials_per_hour:.0f}/h" if progress.trials_per_hour else ""),
            refresh=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
