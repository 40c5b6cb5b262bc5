"""GPU placement on one machine: which ``CUDA_VISIBLE_DEVICES`` each local worker gets.

Without it every worker of ``hpo sweep --workers N`` (and of the DAG's local mode) inherits the
same devices and trains on ``cuda:0``. The GPUs come from ``--gpus`` (or the run's ``gpus``), else
the launcher's own ``CUDA_VISIBLE_DEVICES`` (a scheduler such as Slurm may have set it: workers stay
inside it), else ``nvidia-smi -L``; with none, workers keep the inherited environment (the CPU).
Workers go round robin over the GPUs, or ``per_gpu`` at a time on each GPU (packed, so the rest stay
free). A MIG-enabled GPU contributes its MIG instances, named by UUID as CUDA requires.

Nothing here imports torch: the DAG's tasks and the CLI place workers before any of them starts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hpo_core.errors import HpoError

__all__ = [
    "CLI_NAMES",
    "DAG_NAMES",
    "ENV_CUDA_DEVICES",
    "GpuAssignment",
    "GpuNames",
    "assign_gpus",
    "parse_gpus",
    "visible_gpus",
]

ENV_CUDA_DEVICES = "CUDA_VISIBLE_DEVICES"
NVIDIA_SMI_TIMEOUT_S = 15.0  # a wedged driver makes nvidia-smi hang; placement must not
MAX_GPU_IDS = 1024

# An index, a GPU UUID or a MIG UUID (or a UUID's leading part, which CUDA also accepts);
# "MIG-GPU-<uuid>/<gi>/<ci>" is how drivers before R470 named MIG devices.
_GPU_ID = re.compile(r"(?:0|[1-9][0-9]{0,3}|GPU-[0-9a-fA-F-]{1,64}|MIG-[0-9a-zA-Z/-]{1,80})")
_SMI_GPU = re.compile(r"^GPU (\d+): .*\(UUID: (GPU-[0-9a-fA-F-]+)\)")
_SMI_MIG = re.compile(r"^\s+MIG .*\(UUID: (MIG-[0-9a-zA-Z/-]+)\)")


@dataclass(frozen=True)
class GpuNames:
    """How the caller spells the three settings in its error lines (flags or DAG params)."""

    workers: str
    gpus: str
    per_gpu: str


CLI_NAMES = GpuNames("--workers", "--gpus", "--workers-per-gpu")
DAG_NAMES = GpuNames("params.workers", "params.gpus", "params.workers_per_gpu")


@dataclass(frozen=True)
class GpuAssignment:
    """What each worker gets: ``devices[i]`` is worker i's ``CUDA_VISIBLE_DEVICES``, or None to
    leave its inherited environment alone (no GPU found: it runs on the CPU, as before)."""

    devices: list[str | None]
    source: str  # where the GPUs came from ("--gpus", "nvidia-smi -L", ...), or why there are none
    gpus: list[str] = field(default_factory=list)  # the GPUs placed on, in order

    @property
    def on_cpu(self) -> bool:
        return not self.gpus

    def shared(self) -> dict[str, list[int]]:
        """The GPUs that more than one worker gets, with those workers."""
        users: dict[str, list[int]] = {}
        for worker, device in enumerate(self.devices):
            if device is not None:
                users.setdefault(device, []).append(worker)
        return {device: workers for device, workers in users.items() if len(workers) > 1}

    def listing(self) -> str:
        """``worker 0: GPU 0, worker 1: GPU 1, ...``, or ``4 workers on the CPU``."""
        if self.on_cpu:
            n = len(self.devices)
            return f"{n} worker{'s' if n != 1 else ''} on the CPU"
        return ", ".join(f"worker {i}: GPU {d}" for i, d in enumerate(self.devices))

    def sharing(self) -> str | None:
        """One line on the GPUs that workers share (they split its memory and compute)."""
        shared = self.shared()
        if not shared:
            return None
        each = "; ".join(f"GPU {d} by workers {', '.join(map(str, w))}" for d, w in shared.items())
        return f"{len(shared)} GPU(s) shared: {each}"

    def line(self) -> str:
        """What a launcher prints before starting the workers."""
        if self.on_cpu:
            return f"no GPU found ({self.source}): {self.listing()}"
        shared = self.sharing()
        return f"GPUs from {self.source}: {self.listing()}" + (f" ({shared})" if shared else "")


def parse_gpus(text: str | Sequence[str], *, name: str = CLI_NAMES.gpus) -> list[str]:
    """A list of GPU ids (``"0,1"``, ``GPU-<uuid>``, ``MIG-<uuid>``), checked: each id well
    formed, none twice. Raises :class:`HpoError` naming ``name``."""
    items = text.split(",") if isinstance(text, str) else list(text)
    ids = [str(item).strip() for item in items]
    if not any(ids):
        raise HpoError(f"{name}: give at least one GPU id, e.g. 0,1 (nvidia-smi -L numbers them)")
    if len(ids) > MAX_GPU_IDS:
        raise HpoError(f"{name}: {len(ids)} GPU ids, more than {MAX_GPU_IDS}; list fewer")
    seen: set[str] = set()
    for gpu in ids:
        if not _GPU_ID.fullmatch(gpu):
            shown = gpu if len(gpu) <= 40 else gpu[:40] + "..."
            raise HpoError(
                f"{name}: {shown!r} is not a GPU id; use indexes as nvidia-smi -L numbers them "
                "(0,1), GPU-<uuid> or MIG-<uuid>, separated by commas"
            )
        if gpu in seen:
            raise HpoError(
                f"{name}: GPU {gpu} is listed twice; list each GPU once (to put several "
                "workers on one GPU, say how many per GPU)"
            )
        seen.add(gpu)
    return ids


@dataclass(frozen=True)
class _Found:
    devices: list[str]  # what workers go round robin over
    source: str  # where they came from, or why there are none
    known: list[str] = field(default_factory=list)  # every id a user may name (indexes, UUIDs)
    from_env: bool = False


def _from_env(value: str) -> list[str]:
    """CUDA's reading of CUDA_VISIBLE_DEVICES: ids up to the first invalid one ("-1" hides all)."""
    found: list[str] = []
    for item in value.split(","):
        item = item.strip()
        if not _GPU_ID.fullmatch(item) or item in found:
            break
        found.append(item)
    return found


def _from_nvidia_smi() -> _Found:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return _Found([], f"{ENV_CUDA_DEVICES} unset, no nvidia-smi on PATH")
    try:
        done = subprocess.run(
            [exe, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return _Found([], f"nvidia-smi -L gave no answer within {NVIDIA_SMI_TIMEOUT_S:g} s")
    except OSError as exc:
        return _Found([], f"nvidia-smi -L could not run: {exc.strerror or exc}")
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip().splitlines()
        return _Found([], f"nvidia-smi -L failed: {said[0][:200] if said else done.returncode}")
    devices: list[str] = []
    known: list[str] = []
    migs: dict[str, list[str]] = {}
    current: str | None = None
    for line in done.stdout.splitlines():
        gpu = _SMI_GPU.match(line)
        if gpu:
            current = gpu.group(1)
            known += [gpu.group(1), gpu.group(2)]
            migs[current] = []
            continue
        mig = _SMI_MIG.match(line)
        if mig and current is not None:
            migs[current].append(mig.group(1))
            known.append(mig.group(1))
    for index, instances in migs.items():
        # a MIG-enabled GPU is used through its instances; CUDA takes them by UUID only
        devices += instances or [index]
    if not devices:
        return _Found([], "nvidia-smi -L lists no GPU")
    return _Found(devices, "nvidia-smi -L", known)


def _find(environ: Mapping[str, str]) -> _Found:
    value = environ.get(ENV_CUDA_DEVICES)
    if value is not None:
        devices = _from_env(value)
        if not devices:
            return _Found([], f"{ENV_CUDA_DEVICES}={value!r} hides every GPU", from_env=True)
        return _Found(devices, f"{ENV_CUDA_DEVICES}={value}", devices, from_env=True)
    return _from_nvidia_smi()


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs this process may use: its ``CUDA_VISIBLE_DEVICES`` when set, else what
    ``nvidia-smi -L`` lists (MIG instances for a MIG-enabled GPU), else none."""
    return _find(os.environ if environ is None else environ).devices


def _known(gpu: str, known: Sequence[str]) -> bool:
    # CUDA takes a UUID's leading part as the whole; an index must match exactly
    return gpu in known or (
        gpu.startswith(("GPU-", "MIG-")) and any(k.startswith(gpu) for k in known)
    )


def assign_gpus(
    workers: int,
    *,
    gpus: str | Sequence[str] | None = None,
    per_gpu: int | None = None,
    names: GpuNames = CLI_NAMES,
    environ: Mapping[str, str] | None = None,
) -> GpuAssignment:
    """Place ``workers`` workers: round robin over ``gpus`` (or the visible GPUs), or with
    ``per_gpu``, that many on each GPU in turn (``workers <= per_gpu x GPUs`` must hold).
    Raises :class:`HpoError` naming the setting at fault (``names``) and the fix."""
    if workers < 1:
        raise HpoError(f"{names.workers}: must be at least 1, but got {workers}")
    if per_gpu is not None and per_gpu < 1:
        raise HpoError(f"{names.per_gpu}: must be at least 1, but got {per_gpu}")
    found = _find(os.environ if environ is None else environ)
    if gpus is not None:
        chosen = parse_gpus(gpus, name=names.gpus)
        source = names.gpus
    else:
        chosen, source = found.devices, found.source
    if not chosen:
        if per_gpu is not None:
            raise HpoError(
                f"{names.per_gpu}: no GPU found ({found.source}) to put {per_gpu} workers on "
                f"each; name the GPUs with {names.gpus}, or drop {names.per_gpu} to run on the CPU"
            )
        return GpuAssignment([None] * workers, source)
    if per_gpu is not None and workers > per_gpu * len(chosen):
        raise HpoError(
            f"{names.per_gpu}: {workers} workers do not fit on {len(chosen)} GPU(s) at "
            f"{per_gpu} per GPU (at most {per_gpu * len(chosen)}); lower {names.workers}, raise "
            f"{names.per_gpu}, or name more GPUs with {names.gpus}"
        )
    if gpus is not None and found.known:
        # a GPU outside the launcher's own would escape a scheduler's allocation, or not exist
        outside = [gpu for gpu in chosen if not _known(gpu, found.known)]
        if outside:
            where = (
                f"this process may use only {found.source}"
                if found.from_env
                else f"nvidia-smi -L lists {', '.join(found.devices)}"
            )
            raise HpoError(
                f"{names.gpus}: GPU {outside[0]} is not among this machine's GPUs ({where}); "
                "choose from those"
            )
    if per_gpu is None:
        devices = [chosen[i % len(chosen)] for i in range(workers)]
    else:
        devices = [chosen[i // per_gpu] for i in range(workers)]
    return GpuAssignment(list(devices), source, list(chosen))
