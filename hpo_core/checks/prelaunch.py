"""Pre-launch checks (seed 003's launch checklist): each check says pass, warn or fail and why.

A failed check stops a sweep before any worker starts (``hpo check``, the Airflow DAG's first task
group). Checks are independent functions returning a :class:`CheckResult`; :func:`run_checks`
runs the list and :class:`Checklist` renders it as markdown and JSON. None of them changes the
sweep's study: storage writability is tried on a scratch study that is deleted again, and the smoke
trial runs in an in-memory study.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from hpo_core.errors import HpoError

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "Checklist",
    "check_data",
    "check_dependencies",
    "check_disk",
    "check_gpu",
    "check_smoke",
    "check_spec",
    "check_storage",
    "check_tracking",
    "data_folders",
    "no_gpu_needed",
    "run_checks",
    "verify_manifest",
]

Status = Literal["pass", "warn", "fail"]
CHECK_NAMES = ("spec", "storage", "data", "gpu", "disk", "dependencies", "tracking", "smoke")


@dataclass(frozen=True)
class CheckResult:
    name: str  # one of CHECK_NAMES
    status: Status
    reason: str  # one line: what was found, and for warn/fail what to do
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return f"{self.status.upper():<4}  {self.name:<12}  {self.reason}"


@dataclass(frozen=True)
class Checklist:
    config: str
    study_name: str | None
    results: list[CheckResult]
    when: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def ok(self) -> bool:
        return all(r.status != "fail" for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "study_name": self.study_name,
            "when": self.when,
            "ok": self.ok,
            "checks": [asdict(r) for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)

    def to_markdown(self) -> str:
        mark = {"pass": "[x]", "warn": "[~]", "fail": "[ ]"}
        verdict = "ready to launch" if self.ok else f"NOT ready: {len(self.failed)} check(s) failed"
        lines = [
            f"# Pre-launch checklist: {self.study_name or self.config}",
            "",
            f"Config `{self.config}`, {self.when}: **{verdict}**.",
            "",
            "| | check | status | reason | s |",
            "|---|---|---|---|---|",
        ]
        for r in self.results:
            reason = r.reason.replace("|", "\\|")
            lines.append(
                f"| {mark[r.status]} | {r.name} | {r.status} | {reason} | {r.seconds:.1f} |"
            )
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path) -> list[Path]:
        """checklist.md and checklist.json in ``out_dir``, each written atomically."""
        from hpo_core.files import write_atomic

        out = Path(out_dir)
        return [
            write_atomic(out / "checklist.md", self.to_markdown()),
            write_atomic(out / "checklist.json", self.to_json()),
        ]


def _timed(name: str, body: Callable[[], tuple[Status, str, dict[str, Any]]]) -> CheckResult:
    began = time.monotonic()
    try:
        status, reason, details = body()
    except HpoError as exc:
        status, reason, details = "fail", str(exc).splitlines()[0], {}
    except Exception as exc:  # a check must report, never crash the checklist
        status, reason, details = "fail", f"{type(exc).__name__}: {exc}".splitlines()[0], {}
    return CheckResult(name, status, reason[:500], round(time.monotonic() - began, 3), details)


# -- the checks ------------------------------------------------------------------------------


def check_spec(config: str | Path) -> CheckResult:
    """The spec parses and validates, including the objective's own checks."""

    def body() -> tuple[Status, str, dict[str, Any]]:
        from hpo_core.objectives import load_spec, require_objective_spec

        loaded = load_spec(config)
        require_objective_spec(loaded.spec, source=loaded.source)
        spec = loaded.spec
        return (
            "pass",
            f"{spec.study_name}: {len(spec.param_ranges)} searched parameters, "
            f"n_trials {spec.n_trials}, objective {spec.objective}",
            {"study_name": spec.study_name, "n_trials": spec.n_trials},
        )

    return _timed("spec", body)


def check_storage(storage_url: str) -> CheckResult:
    """The study storage answers and takes writes (a scratch study, created and deleted)."""

    def body() -> tuple[Status, str, dict[str, Any]]:
        import optuna

        from hpo_core.storage import open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        handle = open_storage(storage_url)
        scratch = f"sweepflow_check_{uuid.uuid4().hex[:12]}"
        try:
            optuna.create_study(study_name=scratch, storage=handle.storage)
            optuna.delete_study(study_name=scratch, storage=handle.storage)
            studies = len(optuna.get_all_study_summaries(handle.storage, include_best_trial=False))
        finally:
            handle.dispose()
        return (
            "pass",
            f"{handle.masked_url}: reachable and writable, {studies} studies",
            {"storage": handle.masked_url, "studies": studies},
        )

    return _timed("storage", body)


MAX_MANIFEST_BYTES = 4 << 20  # a sha256sum listing of ~40,000 files


def verify_manifest(
    manifest: str | Path, *, roots: Sequence[str | Path] | None = None
) -> tuple[int, list[str]]:
    """Check a ``sha256sum``-style manifest (``<hex>  <path>`` per line, paths relative to the
    manifest's folder). Returns (files checked, problems).

    With ``roots`` (a run's parameter names the manifest: the person who chose it may not read
    the server's files), the manifest and every file it lists must resolve inside one of them,
    links followed: a link out of the folders is refused like a path out of them. Problems never
    quote the file's content, only its name and line number.
    """
    path = Path(manifest)
    allowed = [Path(r).resolve() for r in roots] if roots is not None else None
    shown = path.name if allowed is not None else str(path)
    if allowed is not None and not _inside_any(path.resolve(), allowed):
        raise HpoError(
            f"manifest {shown}: must be a file inside the config folder or the spec's data "
            f"folder ({', '.join(str(r) for r in allowed)}); put the sha256sum listing there"
        )
    if not path.is_file():
        raise HpoError(f"manifest {shown}: no such file; give the path of a sha256sum listing")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise HpoError(
            f"manifest {shown}: larger than {MAX_MANIFEST_BYTES >> 20} MB; a sha256sum listing "
            "is one short line per file"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise HpoError(
            f"manifest {shown}: not a text file; give a sha256sum listing (`sha256sum FILES > "
            f"{path.name}`)"
        ) from None
    base = path.resolve().parent
    checked, problems = 0, []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        name = name.strip().lstrip("*")
        if len(digest) != 64 or not name or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise HpoError(
                f"manifest {shown}: line {number} is not `<sha256>  <path>` (as sha256sum "
                "writes); regenerate it with sha256sum"
            )
        target = base / name
        if allowed is not None and not _inside_any(target.resolve(), [base, *allowed]):
            raise HpoError(
                f"manifest {shown}: line {number} names a file outside the manifest's folder "
                "and the data folder; list only the data files"
            )
        checked += 1
        if not target.is_file():
            problems.append(f"{name}: missing")
            continue
        sha = hashlib.sha256()
        with open(target, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                sha.update(chunk)
        if sha.hexdigest() != digest.lower():
            problems.append(f"{name}: checksum differs")
    return checked, problems


def _inside_any(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def data_folders(spec: Any) -> list[Path]:
    """The folders a spec's data settings name (in ``data:`` or ``fixed:``; a folder itself, or
    a file's folder): where a manifest of that data may live. Only values written as paths
    (with a ``/``) count, and never the filesystem root."""
    found: list[Path] = []
    for value in [*spec.data.values(), *spec.fixed.values()]:
        if not isinstance(value, str) or "/" not in value or "://" in value:
            continue
        path = Path(value).expanduser()
        try:
            folder = path if path.is_dir() else path.parent if path.parent.is_dir() else None
            resolved = folder.resolve() if folder is not None else None
        except OSError:
            resolved = None
        if resolved is not None and resolved != Path(resolved.anchor) and resolved not in found:
            found.append(resolved)
    return found


def check_data(
    config: str | Path, *, manifest: str | Path | None = None, confine_manifest: bool = False
) -> CheckResult:
    """The objective's data is present and readable (tasks, labels, centroids), and matches the
    manifest's checksums when one is given. With ``confine_manifest`` (the manifest comes from a
    run's parameters), it must lie in the config folder or the spec's data folder."""

    def body() -> tuple[Status, str, dict[str, Any]]:
        from hpo_core.objectives import load_spec, resolve_data_check

        spec = load_spec(config).spec
        check = resolve_data_check(spec.objective)
        status: Status = "pass"
        if check is None:
            reason, details = f"objective {spec.objective!r} reads no data files", {}
        else:
            status, reason, details = check(spec)
        if manifest is not None:
            roots = [Path(config).resolve().parent, *data_folders(spec)]
            checked, problems = verify_manifest(manifest, roots=roots if confine_manifest else None)
            details["manifest"] = {"files": checked, "problems": problems}
            if problems:
                shown = "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "")
                return (
                    "fail",
                    f"manifest {Path(manifest).name}: {shown}; restore the data or the manifest",
                    details,
                )
            reason += f"; {checked} files match {Path(manifest).name}"
        return status, reason, details

    return _timed("data", body)


def no_gpu_needed() -> CheckResult:
    """The GPU check of a run whose objective trains no torch model (the synthetic ones)."""
    return CheckResult("gpu", "pass", "the spec's objective trains no torch model: no GPU needed")


def check_gpu(
    *,
    allow_cpu: bool = False,
    workers: int | None = None,
    gpus: str | Sequence[str] | None = None,
    per_gpu: int | None = None,
) -> CheckResult:
    """A CUDA device is visible to torch, or the run explicitly allows the CPU. With
    ``workers`` (local workers on this machine), it also lists the GPU each worker will get
    (:func:`hpo_core.worker.assign_gpus` with ``gpus`` and ``per_gpu``) and warns when workers
    share a GPU."""

    def body() -> tuple[Status, str, dict[str, Any]]:
        placement = None
        if workers is not None:
            from hpo_core.worker.gpus import assign_gpus

            placement = assign_gpus(workers, gpus=gpus, per_gpu=per_gpu)
        if importlib.util.find_spec("torch") is None:
            return (
                "fail",
                "torch is not installed; install the objective's extra in the worker image "
                "(the dependencies check names it: sweepflow[arc] or sweepflow[torch])",
                {},
            )
        import torch

        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            reason = f"{len(names)} GPU(s): {', '.join(names)}"
            if placement is None:
                return "pass", reason, {"gpus": names}
            details = {"gpus": names, "workers": placement.devices, "source": placement.source}
            shared = placement.sharing()
            if placement.on_cpu:  # torch sees GPUs that no --gpus, variable or nvidia-smi named
                if len(placement.devices) == 1:
                    return "pass", reason, details
                return (
                    "warn",
                    f"{reason}, but no GPU list to place workers on ({placement.source}): all "
                    f"{len(placement.devices)} workers share the first GPU; name them with --gpus",
                    details,
                )
            return (
                "warn" if shared else "pass",
                f"{reason}; {placement.listing()}"
                + (f"; {shared}: they split its memory and compute" if shared else ""),
                details,
            )
        found = "no GPU visible to torch"
        if placement is not None:
            n = len(placement.devices)
            if not placement.on_cpu:  # a CPU-only torch build, or a driver torch cannot use
                found += f" though {placement.source} names {', '.join(placement.gpus)}"
            found += f": {n} worker{'s' if n != 1 else ''} on the CPU"
        if allow_cpu:
            return "warn", f"{found}; running on the CPU because allow_cpu is set", {}
        return (
            "fail",
            f"{found}; run on a GPU node with a CUDA build of torch, or set allow_cpu to run on "
            "the CPU",
            {},
        )

    return _timed("gpu", body)


def check_disk(path: str | Path, *, min_free_gb: float = 10.0) -> CheckResult:
    """Free space where logs, reports and checkpoints go."""

    def body() -> tuple[Status, str, dict[str, Any]]:
        where = Path(path)
        while not where.exists() and where != where.parent:
            where = where.parent
        free = shutil.disk_usage(where).free / 1e9
        details = {"path": str(where), "free_gb": round(free, 1), "min_free_gb": min_free_gb}
        if free < min_free_gb:
            return (
                "fail",
                f"{free:.1f} GB free at {where}, below {min_free_gb:g} GB; free some space or "
                "lower min_free_gb",
                details,
            )
        return "pass", f"{free:.1f} GB free at {where} (minimum {min_free_gb:g} GB)", details

    return _timed("disk", body)


def check_dependencies(config: str | Path, *, tracking: bool = True) -> CheckResult:
    """What the workers import is installed: optuna, the objective's module and what its
    registry entry requires (torch for the built-in models), torch for a
    ``decision.regret_bound``, what the sampler needs (cmaes, torch for gp, optunahub), mlflow
    when the sweep is tracked."""

    def body() -> tuple[Status, str, dict[str, Any]]:
        from importlib.metadata import PackageNotFoundError, version

        from hpo_core.objectives import is_available, load_spec, objective_requirements
        from hpo_core.study import search_requirements

        spec = load_spec(config).spec
        requires, extra = objective_requirements(spec.objective)
        needed = ["optuna"] + (["mlflow"] if tracking else []) + list(requires)
        if spec.decision.regret_bound is not None and "torch" not in needed:
            needed.append("torch")  # the regret bound's Gaussian process, at the gates
        search = search_requirements(spec)  # cmaes for CMA-ES, torch for GP, optunahub
        needed += [name for name, _ in search if name not in needed]
        missing = [name for name in needed if importlib.util.find_spec(name) is None]
        if not is_available(spec.objective):
            missing.append(f"objective {spec.objective}")
        found = {}
        for name in needed:
            try:
                found[name] = version(name)
            except PackageNotFoundError:
                continue
        if missing:
            fix = "install them"
            if extra and any(name in requires for name in missing):
                fix += f" (pip install 'sweepflow[{extra}]' for {spec.objective})"
            for name, search_extra in search:
                if name in missing and not (extra and name in requires):
                    fix += f" (pip install 'sweepflow[{search_extra}]' for the sampler or pruner)"
            return "fail", f"not importable: {', '.join(missing)}; {fix}", found
        shown = ", ".join(f"{k} {v}" for k, v in found.items())
        return "pass", f"{shown}; objective {spec.objective} importable", found

    return _timed("dependencies", body)


def check_tracking(tracking_uri: str | None) -> CheckResult:
    """The MLflow tracking store answers (skipped with a warning when tracking is off)."""

    def body() -> tuple[Status, str, dict[str, Any]]:
        if tracking_uri is None:
            return "warn", "tracking is off for this run; no MLflow runs will be logged", {}
        from hpo_core.tracking import Tracker

        tracker = Tracker(tracking_uri)
        try:
            experiments = len(tracker.client.search_experiments(max_results=1000))
        except Exception as exc:
            raise tracker.unreachable(
                exc, "start the tracking server or fix MLFLOW_TRACKING_URI"
            ) from None
        return (
            "pass",
            f"{tracker.masked_uri}: reachable, {experiments} experiments",
            {"tracking": tracker.masked_uri},
        )

    return _timed("tracking", body)


def check_smoke(
    config: str | Path, *, epochs: int = 1, max_samples: int | None = 64
) -> CheckResult:
    """One trial end to end (few epochs, a data subset) in a scratch in-memory study."""

    def body() -> tuple[Status, str, dict[str, Any]]:
        from hpo_core.objectives import load_spec
        from hpo_core.objectives.registry import smoke_data
        from hpo_core.worker import run_smoke_trials

        spec = load_spec(config).spec
        (result,) = run_smoke_trials(spec, epochs=epochs, max_samples=max_samples)
        details = {"state": result.state, "value": result.value, "params": result.params}
        if not result.ok:
            return (
                "fail",
                f"the smoke trial ended {result.state}: {result.error}; fix it before launching",
                details,
            )
        _, data = smoke_data(spec.objective, max_samples)
        return (
            "pass",
            f"one trial of {epochs} epoch(s){' ' + data if data else ''}: "
            f"{spec.metric}={result.value:.4g} in {result.seconds:.1f}s",
            details,
        )

    return _timed("smoke", body)


def run_checks(
    config: str | Path,
    *,
    storage_url: str,
    tracking_uri: str | None,
    allow_cpu: bool = False,
    min_free_gb: float = 10.0,
    disk_path: str | Path = ".",
    manifest: str | Path | None = None,
    smoke: bool = True,
    workers: int | None = None,
    gpus: str | Sequence[str] | None = None,
    per_gpu: int | None = None,
    needs_gpu: bool = True,
    on_result: Callable[[CheckResult], None] | None = None,
) -> Checklist:
    """Every check in seed 003's order. A bad spec stops the rest (they all read it). With
    ``workers``, the GPU check lists each local worker's GPU (``gpus``, ``per_gpu``); without
    ``needs_gpu`` (an objective that trains no torch model) it passes."""
    results: list[CheckResult] = []

    def add(result: CheckResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    add(check_spec(config))
    study_name = results[0].details.get("study_name")
    if results[0].status == "fail":
        return Checklist(str(config), study_name, results)
    add(check_storage(storage_url))
    add(check_data(config, manifest=manifest))
    if needs_gpu:
        add(check_gpu(allow_cpu=allow_cpu, workers=workers, gpus=gpus, per_gpu=per_gpu))
    else:
        add(no_gpu_needed())
    add(check_disk(disk_path, min_free_gb=min_free_gb))
    add(check_dependencies(config, tracking=tracking_uri is not None))
    add(check_tracking(tracking_uri))
    if smoke:
        add(check_smoke(config))
    return Checklist(str(config), study_name, results)
