"""Regenerates docs/images/*.png (`make screenshots`): a small ARC sweep with champions triggered
from the Airflow UI's form in headless Chromium, as tests/e2e does it (the same helpers,
tests/ui.py), then pictures of the filled form, the finished run's graph, a worker's log, the
report's plots (the PNGs the analysis wrote, copied), and MLflow's pages on an `mlflow server`
over the sweep's tracking store: the runs table sorted by the score, the champion's registered
version, the comparison of the champion runs.

    .venv/bin/python scripts/screenshots.py [--out docs/images] [--keep]

Needs chromium and chromium-driver (`make system-deps`) and a few minutes of CPU."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the browser helpers shared with tests/e2e

from tests.helpers import tiny_arc_spec  # noqa: E402
from tests.ui import (  # noqa: E402
    Airflow,
    AirflowPages,
    MlflowPages,
    browser_missing,
    chromium,
    fill_sweep_form,
)

CONFIG = "arc_small.yaml"
STUDY = "arc_small_v1"
# the sweep the pictures show: 8 ARC trials of a small CNN over 2 workers, a checkpoint gate
# after 4, two champions retrained over 2 seeds each and compared in MLflow
SPEC = tiny_arc_spec(
    study_name=STUDY,
    n_trials=8,
    decision={"checkpoints": [4]},
    champions={"top_k": 2, "epochs": 2, "seeds": 2},
)


def _shoot(driver: WebDriver, path: Path) -> None:
    driver.save_screenshot(str(path))
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def _mlflow_pages(store: Path, work: Path, out: Path, driver: WebDriver) -> None:
    """MLflow's pages on a server over the sweep's store: the runs table sorted by the score
    (with the runs' roles and trial states), the champion's registered version, and the
    compare page of the champion seed runs."""
    from mlflow import MlflowClient

    from hpo_core.champions import family_name
    from hpo_core.testing import MlflowServer

    uri = f"sqlite:///{store}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY)
    assert experiment is not None, f"no MLflow experiment {STUDY} in {store}"
    champions = client.search_runs([experiment.experiment_id], "tags.`sweepflow.role` = 'champion'")
    assert champions, "the sweep registered no champion run"
    version = client.get_model_version_by_alias(family_name(STUDY), "champion")
    server = MlflowServer(uri, work / "mlflow-artifacts")
    server.start()
    try:
        pages = MlflowPages(driver, server.uri)
        pages.runs(experiment.experiment_id, SPEC["metric"], descending=True)
        pages.columns(show=["sweepflow.role", "sweepflow.trial_state"], hide=["Dataset", "Source"])
        time.sleep(1)
        _shoot(driver, out / "mlflow_runs.png")
        driver.set_window_size(1440, 1200)  # the description and the first tags
        pages.version_page(version.name, version.version)
        time.sleep(1)
        _shoot(driver, out / "mlflow_version.png")
        driver.set_window_size(1440, 1000)
        ids = json.dumps([r.info.run_id for r in champions])
        pages.open(f"/compare-runs?runs={ids}&experiments={json.dumps([experiment.experiment_id])}")
        time.sleep(4)  # MLflow's charts draw after the page's data arrive
        _shoot(driver, out / "mlflow_champions.png")
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        print(f"error: browser: {missing}", file=sys.stderr)
        return 1
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sweepflow-screenshots-"))
    configs = work / "configs"
    configs.mkdir()
    (configs / CONFIG).write_text(yaml.safe_dump(SPEC))
    shutil.copy(REPO / "configs" / "hpo" / "demo_synthetic.yaml", configs)
    home, store = work / "home", work / "mlflow.db"
    airflow = Airflow(
        work,
        configs=configs,
        env={"HPO_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{store}"},
    )
    try:
        airflow.migrate()
        airflow.start()
        with chromium(height=1900) as driver:  # tall enough for the whole form
            airflow.wait_ready("hpo_sweep")
            pages = AirflowPages(driver, airflow)
            pages.login()
            form = fill_sweep_form(pages, CONFIG, workers=2)
            _shoot(driver, out / "trigger_form.png")
            run_id = pages.trigger(form, "hpo_sweep")
            print(f"triggered {run_id}; waiting for it to finish")
            state = pages.wait_run("hpo_sweep", run_id, timeout=1800)
            if state != "success":
                print(f"error: run: {state}: {airflow.task_states('hpo_sweep', run_id)}")
                return 1
            driver.set_window_size(1440, 1000)
            pages.open_graph("hpo_sweep", run_id)
            pages.find("button[aria-label='Collapse Details Panel']").click()
            time.sleep(1)
            pages.find(".react-flow__controls-fitview").click()  # fit to the wider view
            time.sleep(2)
            _shoot(driver, out / "run_graph.png")
            pages.open_task_log("hpo_sweep", run_id, "segment_0.local_workers", 0)
            pages.find("button[aria-label='Press f for fullscreen']").click()
            time.sleep(1)
            _shoot(driver, out / "worker_log.png")
            (run_dir,) = (home / "runs" / STUDY).iterdir()
            for plot in sorted((run_dir / "report").glob("*.png")):
                shutil.copyfile(plot, out / f"report_{plot.name}")
                print(f"copied {plot.name} -> report_{plot.name}")
            _mlflow_pages(store, work, out, driver)
    finally:
        airflow.stop()
        if args.keep:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
