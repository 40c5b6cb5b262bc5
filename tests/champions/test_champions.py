"""Champions against a real MLflow: an `mlflow server` on PostgreSQL, and the SQLite store. A small
ARC sweep, then champions: runs, tags and states, registration, the alias only on improvement,
the registered model reproducing its logged accuracy, its weights-only copy giving the same outputs,
resuming after a kill, compare-runs. (The alias rule and racing promotions, without training:
test_promotion.)"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_core.testing import MlflowServer, PostgresServer
from tests.helpers import HPO, mlflow_client, run_hpo, sweep_runs, tiny_arc_spec

pytestmark = pytest.mark.slow

TINY_ARC = tiny_arc_spec(champions={"top_k": 2, "epochs": 3, "seeds": 2})


def sweep(
    tmp_path: Path, env: dict[str, str], spec: dict[str, Any] = TINY_ARC, workers: int = 2
) -> None:
    config = tmp_path / f"{spec['study_name']}.yaml"
    config.write_text(yaml.safe_dump(spec))
    result = run_hpo(
        "sweep", "--config", str(config), "--workers", str(workers), env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr


def registered(model: Any) -> list[tuple[str, str]]:
    """The versions a LoggedModel's page lists (an mlflow server writes the number as an int)."""
    listed = json.loads(model.tags.get("mlflow.modelVersions", "[]"))
    return [(e["name"], str(e["version"])) for e in listed]


def check_champions(tracking_uri: str, env: dict[str, str], *, top_k: int = 2) -> None:
    """What must hold after `hpo champions` on any tracking store (2 seeds per configuration)."""
    import mlflow
    import numpy as np
    import torch

    from hpo_core.champions import load_champion_weights
    from hpo_core.data import ArcDataConfig, load_arc_data
    from hpo_core.tracking import fluent_tracking
    from hpo_core.training import evaluate

    n_runs = 2 * top_k
    # system metrics sampled often enough to show in a run that trains for a second or two
    sampled = env | {"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.1"}
    first = run_hpo("champions", "tiny_arc_v1", "-k", str(top_k), env=sampled, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "registered model tiny_arc: version 1" in first.stdout
    assert "is the new champion (no incumbent)" in first.stdout
    assert "epoch 3/3" in first.stderr  # progress while training
    # run again: the finished champion runs are reused, not duplicated
    again = run_hpo("champions", "tiny_arc_v1", "-k", str(top_k), env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("(finished earlier, reused)") == n_runs
    assert "is already the champion" in again.stdout

    runs = sweep_runs(tracking_uri, "tiny_arc_v1")
    roles = Counter((r.data.tags.get("sweepflow.role"), r.info.status) for r in runs)
    assert roles == {
        ("parent", "FINISHED"): 1,
        ("trial", "FINISHED"): 4,
        ("champion_group", "FINISHED"): top_k,
        ("champion", "FINISHED"): n_runs,
    }
    (parent,) = [r for r in runs if r.data.tags["sweepflow.role"] == "parent"]
    champions = [r for r in runs if r.data.tags["sweepflow.role"] == "champion"]
    groups = {r.info.run_id: r for r in runs if r.data.tags["sweepflow.role"] == "champion_group"}
    client = mlflow_client(tracking_uri)
    asked = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    commit = asked.stdout.strip() if asked.returncode == 0 else None  # None: not a checkout
    for run in champions:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        group = groups[tags["mlflow.parentRunId"]]  # each seed run hangs under its group run
        assert tags["sweepflow.trial_number"] == group.data.tags["sweepflow.trial_number"]
        assert params["champion_epochs"] == "3"
        # the seed it trained with, not the spec's fixed seed (0), which stays as sweep_seed
        assert params["seed"] == tags["sweepflow.seed"] and params["sweep_seed"] == "0"
        assert (tags["sweepflow.metric"], tags["sweepflow.direction"]) == ("val_accuracy", "maximize")
        assert tags.get("mlflow.source.git.commit") == commit
        # the score is the metric's own name, the best epoch's; the curve is <metric>_epoch
        assert {"val_accuracy", "n_params", "train_seconds"} <= set(metrics)
        assert "best_val_accuracy" not in metrics
        curve = client.get_metric_history(run.info.run_id, "val_accuracy_epoch")
        assert [m.step for m in sorted(curve, key=lambda m: m.step)] == [1, 2, 3]
        assert metrics["val_accuracy"] == pytest.approx(max(m.value for m in curve))
        assert any(k.startswith("val_acc_") for k in metrics)  # per-class accuracy
        assert any(k.startswith("system/cpu") for k in metrics)  # MLflow's system metrics
        (used,) = run.inputs.dataset_inputs  # the data, described, not copied
        assert used.dataset.name == "arc_classifier data" and len(used.dataset.digest) == 16
        assert [(t.key, t.value) for t in used.tags] == [("mlflow.data.context", "training")]
    assert {r.data.tags["sweepflow.seed"] for r in champions} == {"0", "1"}
    assert len({r.inputs.dataset_inputs[0].dataset.digest for r in champions}) == 1
    for group in groups.values():
        assert group.data.tags["mlflow.parentRunId"] == parent.info.run_id
        scores = [
            r.data.metrics["val_accuracy"]
            for r in champions
            if r.data.tags["mlflow.parentRunId"] == group.info.run_id
        ]
        assert len(scores) == 2 and group.data.metrics["n_seeds"] == 2
        assert group.data.metrics["val_accuracy"] == pytest.approx(statistics.fmean(scores))
        assert f", group run {group.info.run_id}\n" in first.stdout  # what to open for the mean
        assert group.data.metrics["val_accuracy_sd"] == pytest.approx(statistics.stdev(scores))
        assert group.data.params["seeds"] == "0,1" and "seed" not in group.data.params
        assert group.data.params["trial_number"] == group.data.tags["sweepflow.trial_number"]
    # the latest decision (the re-run's) and its figure are on the parent run
    assert "version 1" in parent.data.tags["sweepflow.champion_decision"]
    assert "champion_mean" in parent.data.metrics

    champion = client.get_model_version_by_alias("tiny_arc", "champion")
    logged = client.get_run(champion.run_id).data.metrics["val_accuracy"]
    # the version: chosen by its group's mean, which its tags, description and model show
    group = groups[client.get_run(champion.run_id).data.tags["mlflow.parentRunId"]]
    mean = group.data.metrics["val_accuracy"]
    assert champion.tags["sweepflow.group_run"] == group.info.run_id
    assert float(champion.tags["sweepflow.metric_mean"]) == pytest.approx(mean)
    assert champion.tags["sweepflow.n_seeds"] == "2" and champion.tags["sweepflow.seeds"] == "0,1"
    assert float(champion.tags["sweepflow.metric_sd"]) == pytest.approx(
        group.data.metrics["val_accuracy_sd"]
    )
    text = champion.description
    # the first decision's words: the re-run (already the champion) kept them
    assert text.startswith("Chosen by sweepflow from sweep `tiny_arc_v1`: version 1 (trial ")
    assert "is the new champion (no incumbent)." in text and group.info.run_id in text
    assert text.endswith("**Status**: `@champion` moved to this version")
    model_id = champion.source.removeprefix("models:/")
    model = client.get_logged_model(model_id)  # registered: its page lists the version
    assert model.source_run_id == champion.run_id
    assert registered(model) == [("tiny_arc", "1")]
    # the decision's figures, logged through the group run (the seed's own are there too)
    figures = {m.key: m.value for m in model.metrics if m.run_id == group.info.run_id}
    assert figures["val_accuracy"] == pytest.approx(mean) and figures["n_seeds"] == 2
    assert figures["val_accuracy_sd"] == pytest.approx(group.data.metrics["val_accuracy_sd"])
    spec = TINY_ARC
    data = load_arc_data(ArcDataConfig.from_params({**spec["fixed"], **spec["data"]}))
    with fluent_tracking(tracking_uri):
        # the registered model loads back as the project's class and reproduces its accuracy
        model = mlflow.pytorch.load_model("models:/tiny_arc@champion")
        pyfunc = mlflow.pyfunc.load_model("models:/tiny_arc@champion")
    assert type(model).__name__ == "TaskClassifier"
    # its requirements are stated, not inferred: torch and numpy at this environment's versions
    with fluent_tracking(tracking_uri):
        requirements = mlflow.artifacts.download_artifacts(
            "models:/tiny_arc@champion/requirements.txt"
        )
    needs = Path(requirements).read_text().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in needs
    assert f"numpy=={np.__version__}" in needs
    _, acc, _ = evaluate(model, data.val_batches(32), data.n_classes, device=torch.device("cpu"))
    assert acc == pytest.approx(logged)
    # the weights-only artifact: tensors that load with weights_only=True, and a config that
    # rebuilds the same model with the project's classes, nothing unpickled
    state = mlflow.artifacts.download_artifacts(
        run_id=champion.run_id, artifact_path="weights/state_dict.pt", tracking_uri=tracking_uri
    )
    assert torch.load(state, weights_only=True).keys() == model.state_dict().keys()
    rebuilt = load_champion_weights("models:/tiny_arc@champion", tracking_uri=tracking_uri)
    sample = data.batch(data.val_idx[:8]).pack()
    with torch.no_grad():
        assert torch.equal(rebuilt(sample), model.eval()(sample))
    # the served form takes the packed array its signature describes, grids of any size
    for idx in (data.val_idx[:3], data.val_idx[3:8]):
        packed = data.batch(idx).pack()
        expected = model(packed).detach().numpy()
        assert pyfunc.predict(packed.numpy()) == pytest.approx(expected, abs=1e-5)


@pytest.mark.postgres
def test_champions_on_an_mlflow_server_with_postgres(
    pg_server: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    backend = pg_server.create_database(f"mlflow_c{os.getpid()}")
    server = MlflowServer(backend, tmp_path / "artifacts")
    server.start()
    try:
        env = {"HPO_STORAGE_URL": pg_url, "MLFLOW_TRACKING_URI": server.uri}
        sweep(tmp_path, env)
        check_champions(server.uri, env, top_k=1)
        # the model's files went through the server to its artifact store
        assert list((tmp_path / "artifacts").rglob("MLmodel"))
    finally:
        server.stop()


def test_a_second_sweep_moves_the_alias_only_if_better_and_compare_runs(tmp_path: Path) -> None:
    """Two sweeps of one family: whichever way the second one's champion compares (tiny data is
    noisy), the alias, the message and the logged figures must agree with the two means. One seed
    each: the spec's seed noise (tiny here) is what the promotion test judges the difference by
    (test_promotion covers the noise rule itself)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"HPO_STORAGE_URL": f"journal://{tmp_path / 's.journal'}", "MLFLOW_TRACKING_URI": uri}
    fast = {
        **TINY_ARC,
        "n_trials": 2,
        "champions": {"top_k": 1, "epochs": 3, "seeds": 1},
        "analysis": {"noise_sd": 1e-6},
    }
    sweep(tmp_path, env, fast, workers=1)
    assert run_hpo("champions", "tiny_arc_v1", env=env, timeout=600).returncode == 0
    second = {**fast, "study_name": "tiny_arc_v2", "fixed": {**fast["fixed"], "depth": 3}}
    sweep(tmp_path, env, second, workers=1)
    result = run_hpo("champions", "tiny_arc_v2", env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "registered model tiny_arc: version 2" in result.stdout
    client = mlflow_client(uri)
    (p1,) = sweep_runs(uri, "tiny_arc_v1", "parent")
    (p2,) = sweep_runs(uri, "tiny_arc_v2", "parent")
    m1, m2 = p1.data.metrics["champion_mean"], p2.data.metrics["champion_mean"]
    assert p2.data.metrics["incumbent_mean"] == pytest.approx(m1)
    holder = str(client.get_model_version_by_alias("tiny_arc", "champion").version)
    decision = p2.data.tags["sweepflow.champion_decision"]
    # the promotion test, logged on the parent run
    assert float(p2.data.tags["sweepflow.promotion.new_mean"]) == pytest.approx(m2, rel=1e-5)
    assert p2.data.tags["sweepflow.promotion.test"] == ("z" if m2 > m1 else "none")
    # the demo's store (SQLite, no server): each LoggedModel lists its version all the same
    for number in ("1", "2"):
        version = client.get_model_version("tiny_arc", number)
        assert registered(client.get_logged_model(version.source.removeprefix("models:/"))) == [
            ("tiny_arc", number)
        ]
    second = client.get_model_version("tiny_arc", "2")
    assert second.tags["sweepflow.decision"] == decision and f": {decision}." in second.description
    assert second.tags["sweepflow.incumbent_version"] == "1"
    assert float(second.tags["sweepflow.incumbent_mean"]) == pytest.approx(m1)
    assert second.description.endswith(
        "moved to this version" if holder == "2" else "stays on version 1"
    )
    if m2 > m1:
        assert holder == "2" and "beats the incumbent" in decision and "alias moved" in decision
    elif m2 < m1:
        assert holder == "1" and "does not beat the incumbent" in decision
    else:
        assert holder == "1" and "ties the incumbent" in decision

    out = tmp_path / "compare"
    shown = run_hpo("compare-runs", "--out", str(out), env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    rows = [line for line in lines if line.startswith(("* ", "  tiny"))]
    assert len(rows) == 2 and sum(r.startswith("* ") for r in rows) == 1
    assert f"tiny_arc_v{holder}" in next(r for r in rows if r.startswith("* "))
    best_first = ["tiny_arc_v1", "tiny_arc_v2"] if m1 >= m2 else ["tiny_arc_v2", "tiny_arc_v1"]
    assert [r.split()[1] if r.startswith("* ") else r.split()[0] for r in rows] == best_first
    assert any("depth=2" in line for line in lines) and any("depth=3" in line for line in lines)
    csv_rows = (out / "champions.csv").read_text().splitlines()
    assert csv_rows[0].startswith("sweep,trial,rank,seeds,val_accuracy_mean") and len(csv_rows) == 3
    assert "depth" in csv_rows[0].split(",")
    assert (out / "champions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = run_hpo("compare-runs", "nope_v1", env=env)
    assert missing.returncode == 1 and missing.stderr.startswith("error: nope_v1: no such sweep")


def test_an_interrupted_champion_run_is_retrained_not_duplicated(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"HPO_STORAGE_URL": f"journal://{tmp_path / 's.journal'}", "MLFLOW_TRACKING_URI": uri}
    sweep(tmp_path, env, {**TINY_ARC, "n_trials": 2}, workers=1)
    # long enough to be caught mid-training (killed after its first epoch), short to retrain
    args = ["champions", "tiny_arc_v1", "-k", "1", "--seeds", "1", "--epochs", "12"]
    proc = subprocess.Popen(
        [HPO, *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    killed_run = None
    while time.monotonic() < deadline and killed_run is None:
        for run in sweep_runs(uri, "tiny_arc_v1", "champion"):
            if run.info.status == "RUNNING" and "val_accuracy" in run.data.metrics:
                killed_run = run.info.run_id
        time.sleep(0.2)
    assert killed_run is not None, "no champion run started training"
    os.killpg(proc.pid, signal.SIGKILL)  # as a lost node would
    proc.wait()
    result = run_hpo(*args, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "was interrupted; training it again" in result.stderr
    runs = sweep_runs(uri, "tiny_arc_v1", "champion")
    assert Counter(r.info.status for r in runs) == {"KILLED": 1, "FINISHED": 1}
    stale = mlflow_client(uri).get_run(killed_run)
    assert (
        stale.info.status == "KILLED" and stale.data.tags["sweepflow.superseded"] == "interrupted"
    )


def test_champions_errors_are_one_line(tmp_path: Path) -> None:
    env = {
        "HPO_STORAGE_URL": f"journal://{tmp_path / 's.journal'}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    missing = run_hpo("champions", "nope", env=env)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    spec = {
        "study_name": "synthetic_v1",
        "n_trials": 2,
        "objective": "synthetic",
        "param_ranges": {"x": {"type": "float", "low": 0, "high": 1}},
    }
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump(spec))
    assert run_hpo("sweep", "--config", str(config), env=env).returncode == 0
    result = run_hpo("champions", "synthetic_v1", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: champions.trainer: objective 'synthetic' has no")
