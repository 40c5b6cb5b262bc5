"""The binary_classifier family end to end: the shipped configs on the generated data, through
the same workers, analysis, thresholds, champions and MLflow as the ARC family, on the test
PostgreSQL; metric priority everywhere and the forbidden metrics nowhere."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_core.data import generate_binary_dataset, write_table
from hpo_core.metrics import HISTOGRAM_ATTR
from hpo_core.models import parse_budget
from hpo_core.spec import SweepSpec
from hpo_core.storage import open_storage
from hpo_core.study import load_study
from tests.helpers import run_hpo

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "hpo" / "demo_buy_signals.yaml"
REAL = ROOT / "configs" / "hpo" / "buy_signals_v1.yaml"
FORBIDDEN = re.compile(r"(?<![a-z0-9])(f1|accuracy)(?![a-z0-9])", re.IGNORECASE)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("buy") / "buy_signals.parquet"
    write_table(generate_binary_dataset(5000, seed=3), path)
    return path


def _spec(source: Path, table: Path, out: Path, **changes: Any) -> Path:
    spec = yaml.safe_load(source.read_text())
    spec["data"]["path"] = str(table)
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            spec.setdefault(section, {})[name] = value
        else:
            spec[key] = value
    path = out / source.name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _forbidden_in(folder: Path, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Files under ``folder`` (text, by name too) that name a forbidden metric."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name in skip:
            continue
        text = path.name + ("" if path.suffix == ".png" else path.read_text(errors="replace"))
        if FORBIDDEN.search(text):
            found.append(f"{path.relative_to(folder)}: {FORBIDDEN.search(text)}")
    return found


def test_the_shipped_binary_configs_validate() -> None:
    for path in (DEMO, REAL):
        result = run_hpo("validate", str(path))
        assert result.returncode == 0, result.stderr
    real = SweepSpec.model_validate(yaml.safe_load(REAL.read_text()))
    assert real.metric == "auc" and real.metrics.priority[:2] == ["precision", "recall"]
    assert real.param_ranges["budget"].choices == ["2M", "20M", "200M"]
    assert set(real.param_ranges["tier"].choices or []) == {"a50", "a100"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "param_ranges": {
                    "budget": {"type": "categorical", "choices": ["2M"]},
                    "d_model": {"type": "categorical", "choices": [512]},
                    "n_layers": {"type": "int", "low": 8, "high": 8},
                }
            },
            "param_ranges.budget.choices: budget 2M cannot be met within 10% by a transformer "
            "with d_model=512, n_layers=8",
        ),
        (
            {"param_ranges": {"tier": {"type": "categorical", "choices": ["a50", "a70"]}}},
            "param_ranges.tier.choices: tier 'a70' is not in data.tiers (a50, a100)",
        ),
        (
            {"metrics": {"optimize": "brier"}},
            "metrics.optimize: binary_classifier records",
        ),
        (
            {"metrics": {"optimize": "accuracy", "forbidden": ["accuracy"]}},
            "metrics.optimize: 'accuracy' is in metrics.forbidden",
        ),
        (
            {"fixed": {"imbalance": "smote"}},
            "fixed.imbalance: imbalance must be one of weighted, sampling, none, but got 'smote'",
        ),
        ({"data": {"path": "x.parquet", "window": 0}}, "data.window"),
    ],
)
def test_specs_that_would_fail_trials_are_refused(
    change: dict[str, Any], message: str, tmp_path: Path
) -> None:
    raw = yaml.safe_load(REAL.read_text())
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = run_hpo("validate", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr, result.stderr


@pytest.mark.slow
@pytest.mark.postgres
def test_the_demo_sweep_runs_analyses_and_sweeps_thresholds(
    table: Path, tmp_path: Path, pg_url: str
) -> None:
    spec = _spec(DEMO, table, tmp_path, n_trials=6, decision={}, fixed__epochs=2)
    env = {"HPO_STORAGE_URL": pg_url}
    done = run_hpo(
        "sweep", "--config", str(spec), "--workers", "2", "--no-tracking", env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = load_study("demo_buy_signals_v1", open_storage(pg_url))
    trials = sweep.study.get_trials()
    assert len([t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]) == 6
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert complete
    for t in complete:
        attrs = t.user_attrs
        assert t.value == pytest.approx(attrs["auc"])  # metrics.optimize is what Optuna ranks
        assert {
            "precision",
            "recall",
            "average_precision",
            "precision_top_5pct",
            "recall_top_1pct",
            "score_p01",
            "score_p99",
            "score_collapsed",
        } <= set(attrs)
        assert 0.9 <= attrs["n_params"] / parse_budget(t.params["budget"]) <= 1.1
        hist = attrs[HISTOGRAM_ATTR]
        assert sum(hist["pos"]) + sum(hist["neg"]) > 100
        assert not [k for k in attrs if FORBIDDEN.search(k)]

    out = tmp_path / "report"
    analyzed = run_hpo("analyze", "demo_buy_signals_v1", "--out", str(out), env=env, timeout=300)
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "## Metrics by priority" in report and "## Groups compared" in report
    header = next(line for line in report.splitlines() if line.startswith("| trial | precision"))
    assert header.index("precision") < header.index("recall") < header.index("| auc")
    analysis = json.loads((out / "analysis.json").read_text())
    assert {g["param"] for g in analysis["groups"]} == {"budget", "tier"}
    assert list(analysis["metrics_by_priority"][0])[1:3] == ["precision", "recall"]

    thresholds = tmp_path / "thresholds"
    swept = run_hpo(
        "thresholds",
        "demo_buy_signals_v1",
        "--top",
        "2",
        "--out",
        str(thresholds),
        "--json",
        env=env,
    )
    assert swept.returncode == 0, swept.stderr[-3000:]
    models = json.loads(swept.stdout)
    assert 1 <= len(models) <= 2
    for model in models:
        rows = model["rows"]
        assert [r["threshold"] for r in rows] == sorted(r["threshold"] for r in rows)
        predicted = [r["predicted_positives"] for r in rows]
        recall = [r["recall"] for r in rows]
        assert predicted == sorted(predicted, reverse=True)  # monotonic where it must be
        assert recall == sorted(recall, reverse=True)
        if model["chosen"] is not None:
            assert model["chosen"]["precision"] >= 0.5
            assert model["chosen"]["predicted_positives"] >= 10
    assert (thresholds / "precision_recall_vs_threshold.png").read_bytes()[:4] == b"\x89PNG"
    top = run_hpo("top", "demo_buy_signals_v1", "-k", "3", env=env)
    assert top.returncode == 0 and "precision=" in top.stdout
    first = top.stdout.splitlines()[1]
    assert first.index("precision=") < first.index("recall=")

    # the forbidden metrics appear in no report file; only the spec copies list them
    (tmp_path / "top.txt").write_text(top.stdout)
    assert _forbidden_in(out, skip=("next_spec.yaml",)) == []
    assert _forbidden_in(thresholds) == []
    assert not FORBIDDEN.search(top.stdout + analyzed.stdout + analyzed.stderr)
    assert "forbidden: [f1, accuracy]" in (out / "next_spec.yaml").read_text()
    refined = run_hpo("validate", str(out / "next_spec.yaml"))
    assert refined.returncode == 0, refined.stderr


@pytest.mark.e2e  # a real config's trial and champion: make e2e (make test under 15 minutes)
@pytest.mark.slow
def test_the_real_budget_config_runs_a_2m_trial_and_champions_log_thresholds(
    table: Path, tmp_path: Path
) -> None:
    """buy_signals_v1 as shipped, cut to its 2M budget and 1,500 rows: one real trial,
    then a champion whose MLflow run holds test-split precision/recall and threshold tables."""
    spec = _spec(
        REAL,
        table,
        tmp_path,
        n_trials=1,
        decision={},
        pruner={"type": "none"},
        sampler={"type": "random", "seed": 0},
        data__max_rows=1500,
        data__window=8,
        fixed__epochs=1,
        param_ranges={
            **yaml.safe_load(REAL.read_text())["param_ranges"],
            "budget": {"type": "categorical", "choices": ["2M"]},
            "d_model": {"type": "categorical", "choices": [64]},
            "n_layers": {"type": "int", "low": 2, "high": 2},
        },
        champions={"top_k": 1, "epochs": 1, "seeds": 1},
    )
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_hpo(
        "sweep", "--config", str(spec), "--workers", "1", "--tracking-uri", tracking, timeout=400
    )
    assert done.returncode == 0, done.stderr[-3000:]
    champ = run_hpo("champions", "buy_signals_v1", "--tracking-uri", tracking, timeout=300)
    assert champ.returncode == 0, champ.stderr[-3000:]

    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("buy_signals_v1")
    runs = client.search_runs([experiment.experiment_id])
    trial_runs = [r for r in runs if r.data.tags["sweepflow.role"] == "trial"]
    assert len(trial_runs) == 1
    assert all(1.8e6 <= r.data.metrics["n_params"] <= 2.2e6 for r in trial_runs)
    (champion,) = [r for r in runs if r.data.tags["sweepflow.role"] == "champion"]
    metrics = champion.data.metrics
    # the score under the spec's metric's own name (the best epoch's), the curve as auc_epoch
    assert {"auc", "auc_epoch", "test_precision", "test_recall", "val_precision"} <= set(metrics)
    assert "test_auc" in metrics and "best_auc" not in metrics
    artifacts = {a.path for a in client.list_artifacts(champion.info.run_id)}
    assert {
        "thresholds_val.md",
        "thresholds_test.md",
        "precision_recall_vs_threshold.png",
    } <= artifacts
    names = [*metrics, *champion.data.params, *(k for r in runs for k in r.data.metrics)]
    assert not [n for n in names if FORBIDDEN.search(n)]
    local = Path(
        client.download_artifacts(champion.info.run_id, "thresholds_test.md", str(tmp_path))
    )
    assert "| threshold | precision | recall |" in local.read_text()
    assert not FORBIDDEN.search(local.read_text())

    compared = run_hpo("compare-runs", "--tracking-uri", tracking, "--out", str(tmp_path / "cmp"))
    assert compared.returncode == 0, compared.stderr[-3000:]
    header = compared.stdout.splitlines()[0]
    assert header.index("val_precision") < header.index("val_recall") < header.index("auc mean")
    assert _forbidden_in(tmp_path / "cmp") == []
