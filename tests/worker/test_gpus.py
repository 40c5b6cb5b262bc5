"""GPU placement on one machine: each local worker gets its own CUDA_VISIBLE_DEVICES.

There is no GPU here, so the tests read what each worker process was given (the
dump_environment objective writes its environment) and what it recorded (its `worker` trial
attribute). `nvidia-smi` is a fake script on PATH: the one part that cannot exist on this machine;
the check test also stands in for torch's view of the GPUs (a CPU build of torch is installed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hpo_core.checks import check_gpu
from hpo_core.errors import HpoError
from hpo_core.pipeline import run_local_worker, worker_slots
from hpo_core.spec import load_spec
from hpo_core.storage import open_storage
from hpo_core.study import create_study, load_study
from hpo_core.worker import DAG_NAMES, assign_gpus, visible_gpus
from tests.helpers import base_spec, run_hpo, run_plan

FOUR_GPUS = "".join(
    f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i}aa1c0de-5b7e-4c1d-9f00-00000000000{i})\n"
    for i in range(4)
)
# GPU 0 split in two MIG instances (CUDA takes them by UUID only), GPU 1 whole
MIG = (
    "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)\n"
    "  MIG 3g.20gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)\n"
    "  MIG 3g.20gb     Device  1: (UUID: MIG-0b2b7b39-8a4a-5f4c-a8e4-1f0e3c1c9a52)\n"
    "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-8f1e2a44-77c1-9f20-3b1d-0c5e6a7b8c9d)\n"
)


@pytest.fixture
def nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Put a fake `nvidia-smi` first on PATH (and clear CUDA_VISIBLE_DEVICES); call it with
    the `-L` listing it prints, or None for a machine without nvidia-smi."""
    folder = tmp_path / "bin"
    folder.mkdir()
    path = os.environ["PATH"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def install(listing: str | None, *, code: int = 0) -> None:
        script = folder / "nvidia-smi"
        if listing is None:
            script.unlink(missing_ok=True)
            monkeypatch.setenv("PATH", str(folder))  # no real one either
            return
        script.write_text(
            f'#!/bin/sh\n[ "$1" = "-L" ] || exit 2\ncat <<"EOF"\n{listing}EOF\nexit {code}\n'
        )
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{path}")

    return install


# --- the assignment ---------------------------------------------------------------------------


def test_workers_go_round_robin_or_packed_over_the_gpus(nvidia_smi: Callable[..., None]) -> None:
    nvidia_smi(FOUR_GPUS)
    assert visible_gpus() == ["0", "1", "2", "3"]
    assert assign_gpus(6).devices == ["0", "1", "2", "3", "0", "1"]
    assert assign_gpus(4, gpus="0,1").devices == ["0", "1", "0", "1"]
    assert assign_gpus(4, gpus="0,1", per_gpu=2).devices == ["0", "0", "1", "1"]
    assert assign_gpus(3, per_gpu=2).devices == ["0", "0", "1"]  # packed: 2 and 3 stay free
    shared = assign_gpus(3, gpus="2,3")
    assert shared.listing() == "worker 0: GPU 2, worker 1: GPU 3, worker 2: GPU 2"
    assert shared.sharing() == "1 GPU(s) shared: GPU 2 by workers 0, 2"
    assert assign_gpus(2, gpus="GPU-1aa1").devices == ["GPU-1aa1"] * 2  # a UUID's leading part

    nvidia_smi(MIG)  # a MIG-enabled GPU contributes its instances, by UUID
    assert visible_gpus() == [
        "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f",
        "MIG-0b2b7b39-8a4a-5f4c-a8e4-1f0e3c1c9a52",
        "1",
    ]


def test_the_launchers_own_cuda_visible_devices_wins(nvidia_smi: Callable[..., None]) -> None:
    nvidia_smi(FOUR_GPUS)
    env = {"CUDA_VISIBLE_DEVICES": "3,1"}  # e.g. a Slurm allocation
    assert assign_gpus(3, environ=env).devices == ["3", "1", "3"]
    assert assign_gpus(2, gpus="1", environ=env).devices == ["1", "1"]
    with pytest.raises(HpoError) as outside:
        assign_gpus(2, gpus="0,1", environ=env)
    assert str(outside.value) == (
        "--gpus: GPU 0 is not among this machine's GPUs (this process may use only "
        "CUDA_VISIBLE_DEVICES=3,1); choose from those"
    )
    # CUDA reads up to the first invalid id; "" or -1 hides every GPU: workers inherit that
    assert assign_gpus(2, environ={"CUDA_VISIBLE_DEVICES": "2,-1,3"}).devices == ["2", "2"]
    for hidden in ("", "-1"):
        placed = assign_gpus(2, environ={"CUDA_VISIBLE_DEVICES": hidden})
        assert placed.devices == [None, None] and placed.listing() == "2 workers on the CPU"


def test_without_a_gpu_workers_keep_the_cpu_and_a_line_says_why(
    nvidia_smi: Callable[..., None],
) -> None:
    nvidia_smi(None)
    placed = assign_gpus(4)
    assert placed.devices == [None] * 4
    assert placed.line() == (
        "no GPU found (CUDA_VISIBLE_DEVICES unset, no nvidia-smi on PATH): 4 workers on the CPU"
    )
    nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate with the driver\n", code=9)
    assert assign_gpus(1).source == (
        "nvidia-smi -L failed: NVIDIA-SMI has failed because it couldn't communicate with the "
        "driver"
    )
    with pytest.raises(HpoError) as dag:  # K per GPU of no GPU; the DAG names its params
        assign_gpus(2, per_gpu=1, names=DAG_NAMES)
    assert str(dag.value).startswith("params.workers_per_gpu: no GPU found (nvidia-smi -L failed")


@pytest.mark.parametrize(
    ("workers", "gpus", "per_gpu", "message"),
    [
        (2, "0,cuda:1", None, "--gpus: 'cuda:1' is not a GPU id; use indexes as nvidia-smi -L"),
        (2, "0,1,0", None, "--gpus: GPU 0 is listed twice; list each GPU once"),
        (2, " , ", None, "--gpus: give at least one GPU id, e.g. 0,1"),
        (2, "7", None, "--gpus: GPU 7 is not among this machine's GPUs (nvidia-smi -L lists 0, 1"),
        (5, "0,1", 2, "--workers-per-gpu: 5 workers do not fit on 2 GPU(s) at 2 per GPU (at most"),
        (9, None, 2, "--workers-per-gpu: 9 workers do not fit on 4 GPU(s) at 2 per GPU (at most"),
    ],
    ids=["not_an_id", "listed_twice", "empty", "not_on_this_machine", "too_many", "too_many_seen"],
)
def test_bad_placements_are_refused_in_one_line(
    nvidia_smi: Callable[..., None],
    workers: int,
    gpus: str | None,
    per_gpu: int | None,
    message: str,
) -> None:
    nvidia_smi(FOUR_GPUS)
    with pytest.raises(HpoError) as caught:
        assign_gpus(workers, gpus=gpus, per_gpu=per_gpu)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(message), caught.value


# --- the workers' environments ------------------------------------------------------------------


def _env_spec(write_spec: Callable[..., Path], out: Path, *, n_trials: int, **data: Any) -> Path:
    """A spec whose trials write their worker's environment to ``out``/env-<trial>.json."""
    out.mkdir()
    objective = "hpo_core.testing.objectives:dump_environment"
    data = {"out_dir": str(out), **data}
    return write_spec(base_spec(n_trials=n_trials, objective=objective, data=data))


def _sweep(
    write_spec: Callable[..., Path], tmp_path: Path, url: str, workers: int, *flags: str
) -> tuple[dict[int, tuple[str | None, list[str]]], str]:
    """`hpo sweep --workers N FLAGS` with one trial per worker: for each worker, the
    CUDA_VISIBLE_DEVICES its process had and the GPUs it recorded on its trial; the sweep's
    stderr."""
    out = tmp_path / "env"
    config = _env_spec(write_spec, out, n_trials=workers, barrier=workers)  # one trial each
    done = run_hpo(
        "sweep", "--config", str(config), "--workers", str(workers), *flags,
        "--no-tracking", "--storage", url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = {}
    for trial in load_study("test_study", open_storage(url)).study.get_trials():
        worker = trial.user_attrs["worker"]
        env = json.loads((out / f"env-{trial.number}.json").read_text())
        found[int(worker["id"].removeprefix("local-"))] = (
            env.get("CUDA_VISIBLE_DEVICES"),
            worker["gpus"],
        )
    assert sorted(found) == list(range(workers)), found
    return found, done.stderr


@pytest.mark.slow
def test_hpo_sweep_gives_each_worker_its_own_gpu(
    nvidia_smi: Callable[..., None],
    write_spec: Callable[..., Path],
    journal_url: str,
    tmp_path: Path,
) -> None:
    nvidia_smi(FOUR_GPUS)
    found, said = _sweep(write_spec, tmp_path, journal_url, 4, "--gpus", "0,1")
    assert found == {0: ("0", ["0"]), 1: ("1", ["1"]), 2: ("0", ["0"]), 3: ("1", ["1"])}
    assert (
        "  GPUs from --gpus: worker 0: GPU 0, worker 1: GPU 1, worker 2: GPU 0, worker 3: GPU 1 "
        "(2 GPU(s) shared: GPU 0 by workers 0, 2; GPU 1 by workers 1, 3)\n"
    ) in said


@pytest.mark.slow
def test_hpo_sweep_packs_workers_inside_the_launchers_own_gpus(
    nvidia_smi: Callable[..., None],
    write_spec: Callable[..., Path],
    journal_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nvidia_smi(FOUR_GPUS)  # the machine has 4; this process may use 3 and 1 only
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    found, _ = _sweep(write_spec, tmp_path, journal_url, 3, "--workers-per-gpu", "2")
    assert found == {0: ("3", ["3"]), 1: ("3", ["3"]), 2: ("1", ["1"])}


def test_the_dags_local_mode_places_each_slot(
    journal_url: str,
    write_spec: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "env"
    config = _env_spec(write_spec, out, n_trials=1)
    create_study(load_spec(config), open_storage(journal_url))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7,5,1")  # the Airflow worker's own GPUs
    plan = replace(run_plan(config, tmp_path / "run"), workers=3, tracking=False, gpus=["5", "7"])
    slots = worker_slots(plan, 0)
    assert [s["gpus"] for s in slots] == [["5"], ["7"], ["5"]]
    json.dumps(slots)  # an XCom
    report = run_local_worker(plan, slots[1], storage_url=journal_url, tracking_uri=None)
    assert report["complete"] == 1
    env = json.loads((out / "env-0.json").read_text())
    assert env["CUDA_VISIBLE_DEVICES"] == "7"
    trial = load_study("test_study", open_storage(journal_url)).study.trials[0]
    assert trial.user_attrs["worker"]["gpus"] == ["7"]
    packed = replace(plan, gpus=None, workers_per_gpu=2)
    assert [s["gpus"] for s in worker_slots(packed, 0)] == [["7"], ["7"], ["5"]]
    pods = replace(plan, mode="kubernetes", gpus=None)
    assert all("gpus" not in s for s in worker_slots(pods, 0))  # Kubernetes places pods


# --- the pre-launch check -----------------------------------------------------------------------


def _torch_sees(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA H100 80GB HBM3")


def test_the_gpu_check_lists_what_each_worker_gets(
    nvidia_smi: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    nvidia_smi(FOUR_GPUS)
    _torch_sees(monkeypatch, 4)
    alone = check_gpu(workers=4)
    assert alone.status == "pass", alone.reason
    assert alone.reason.endswith(
        "; worker 0: GPU 0, worker 1: GPU 1, worker 2: GPU 2, worker 3: GPU 3"
    )
    assert alone.details["workers"] == ["0", "1", "2", "3"]
    shared = check_gpu(workers=3, gpus="2,3")
    assert shared.status == "warn"
    assert shared.reason.endswith(
        "worker 0: GPU 2, worker 1: GPU 3, worker 2: GPU 2; 1 GPU(s) shared: GPU 2 by workers "
        "0, 2: they split its memory and compute"
    )
    too_many = check_gpu(workers=5, gpus="0,1", per_gpu=2)
    assert too_many.status == "fail"
    assert too_many.reason.startswith("--workers-per-gpu: 5 workers do not fit on 2 GPU(s)")
    _torch_sees(monkeypatch, 0)
    cpu = check_gpu(workers=4, allow_cpu=True)
    assert (cpu.status, cpu.reason) == (
        "warn",
        "no GPU visible to torch though nvidia-smi -L names 0, 1, 2, 3: 4 workers on the CPU; "
        "running on the CPU because allow_cpu is set",
    )
    nvidia_smi(None)
    assert check_gpu(workers=4).reason.startswith("no GPU visible to torch: 4 workers on the CPU")


def test_hpo_check_takes_the_placement_flags(
    write_spec: Callable[..., Path], journal_url: str
) -> None:
    # user code, so a GPU is wanted and placed (the built-in synthetic objective needs none:
    # its check passes, as the last lines show)
    config = write_spec(base_spec(objective="hpo_core.testing.objectives:slow"))
    done = run_hpo(
        "check", config.as_posix(), "--storage", journal_url, "--no-tracking", "--no-smoke",
        "--min-free-gb", "0.01", "--workers", "5", "--gpus", "0,1", "--workers-per-gpu", "2",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(
        "error: check gpu failed: --workers-per-gpu: 5 workers do not fit on 2 GPU(s)"
    ), done.stderr
    # an objective that trains no torch model needs no GPU, and no --allow-cpu, on any machine
    plain = run_hpo(
        "check", write_spec(base_spec()).as_posix(), "--storage", journal_url, "--no-tracking",
        "--no-smoke", "--min-free-gb", "0.01",
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert "PASS  gpu           the spec's objective trains no torch model" in plain.stdout
