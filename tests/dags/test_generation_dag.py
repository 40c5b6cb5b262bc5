"""The generation DAGs: one per config with `next: {auto: true}`, scheduled on its chain's
refined-spec asset; the finish steps' outlets; a run whose triggering event is forged (or
missing) fails in one line before anything is planned (the resolution's rules:
tests/pipeline/test_generations.py)."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.helpers import REPO

SPEC = yaml.safe_load((REPO / "configs" / "hpo" / "demo_synthetic.yaml").read_text())


@pytest.fixture
def dags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The DAG file loaded on a config folder with a chained spec and a plain one."""
    configs = tmp_path / "configs"
    configs.mkdir()
    chained = {**SPEC, "study_name": "chain_v1", "next": {"auto": True, "max_generations": 3}}
    (configs / "chain.yaml").write_text(yaml.safe_dump(chained))
    (configs / "plain.yaml").write_text(yaml.safe_dump(SPEC))
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(configs))
    monkeypatch.setenv("AIRFLOW_CONN_HPO_STORAGE", f"journal://{tmp_path / 'studies.journal'}")
    path = REPO / "dags" / "hpo_sweep.py"
    spec = importlib.util.spec_from_file_location("hpo_sweep_generations", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_chained_config_gets_a_dag_scheduled_on_its_refined_spec_asset(dags: Any) -> None:
    from airflow.sdk import Asset, AssetAlias

    nxt = dags.hpo_next__chain
    assert not hasattr(dags, "hpo_next__plain")
    assert nxt.dag_id == "hpo_next__chain" and "generation" in nxt.tags
    assert nxt.schedule == [Asset("sweepflow.next_spec.chain_v1")]
    assert nxt.params["config"] == "chain.yaml"
    for dag in (dags.hpo_sweep, nxt):
        assert dag.get_task("finish").outlets == [
            AssetAlias("sweepflow.next_spec"),
            AssetAlias("sweepflow.champion"),
        ]


def test_a_forged_or_missing_event_fails_the_run_in_one_line(dags: Any, tmp_path: Path) -> None:
    from airflow.sdk import Asset
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from hpo_core.objectives import load_spec
    from hpo_core.storage import open_storage
    from hpo_core.study import create_study

    # the chain's first study exists, but its finish step recorded no next spec
    first = create_study(
        load_spec(tmp_path / "configs" / "chain.yaml"),
        open_storage(f"journal://{tmp_path / 'studies.journal'}"),
    )

    def context(*extras: dict[str, Any]) -> dict[str, Any]:
        events = [SimpleNamespace(extra=e, timestamp=datetime.now(UTC)) for e in extras]
        return {"triggering_asset_events": {Asset("sweepflow.next_spec.chain_v1"): events}}

    forged = {"study": "chain_v1", "next_spec": "../../../etc/passwd", "spec_hash": "0" * 64}
    with pytest.raises(AirflowFailException) as failed:
        dags._next_generation(context(forged), "chain.yaml")
    assert str(failed.value) == "asset event: study 'chain_v1' recorded no next spec; refused"
    with pytest.raises(AirflowFailException, match=r"^no refined-spec event triggered this run"):
        dags._next_generation(context(), "chain.yaml")

    # a chain past next.max_generations (3): the run is skipped, saying why
    record = {"path": "runs/chain_v1/r/report/next_spec.yaml", "spec_hash": "a" * 64}
    first.study.set_user_attr("sweepflow.next_spec", {**record, "generation": 4})
    with pytest.raises(AirflowSkipException, match=r"^chain\.yaml: next\.max_generations: 3 "):
        dags._next_generation(
            context({"study": "chain_v1", "next_spec": record["path"], **record}), "chain.yaml"
        )
