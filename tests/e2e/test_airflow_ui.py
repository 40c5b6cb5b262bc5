"""The Airflow UI as a person uses it, in headless Chromium: Airflow 3 running for real on loopback
(api-server, scheduler, dag-processor; LocalExecutor, SQLite), the repository's dags/, a config
folder of instant synthetic sweeps. One Airflow and one browser serve both checks: the sweep
triggered from the form (run to success, its graph, a worker's log) and the form refusing bad
values (no run created). One test function, so that `--dist worksteal` cannot split the checks
over two processes (two Airflows)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO
from tests.ui import Airflow, AirflowPages, browser_missing, chromium, trigger_sweep

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CONFIG = "ui_synthetic.yaml"
STUDY = "ui_synthetic_v1"


def _configs(folder: Path) -> Path:
    """The demo's synthetic spec, and a smaller one (4 trials of 4 epochs, no checkpoint) that
    the test chooses: it sorts second, so the drop-down's first entry is not it."""
    folder.mkdir()
    demo = yaml.safe_load((REPO / "configs" / "hpo" / "demo_synthetic.yaml").read_text())
    (folder / "demo_synthetic.yaml").write_text(yaml.safe_dump(demo))
    small = {
        **demo,
        "study_name": STUDY,
        "n_trials": 4,
        "fixed": {**demo["fixed"], "epochs": 4},
        "pruner": {"type": "none"},
        "data": {**demo["data"], "sleep_per_epoch": 0.0},
        "decision": {"checkpoints": []},
    }
    (folder / CONFIG).write_text(yaml.safe_dump(small))
    return folder


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Airflow, AirflowPages]]:
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("airflow_ui")
    airflow = Airflow(
        root,
        configs=_configs(root / "configs"),
        env={
            "HPO_HOME": str(root / "home"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        },
    )
    try:
        # the database and the components start while Chromium does
        with ThreadPoolExecutor(1) as pool:
            booted = pool.submit(lambda: (airflow.migrate(), airflow.start()))
            with chromium() as driver:
                booted.result()
                airflow.wait_ready("hpo_sweep")
                pages = AirflowPages(driver, airflow)
                try:
                    pages.login()
                    yield airflow, pages
                finally:  # the last page seen, for a failure's diagnosis
                    driver.save_screenshot(str(root / "last_page.png"))
                    (root / "last_page.html").write_text(driver.page_source)
    finally:
        airflow.stop()


def test_a_sweep_is_triggered_from_the_form_and_bad_values_are_refused(
    ui: tuple[Airflow, AirflowPages],
) -> None:
    airflow, pages = ui

    # the form, filled as a person does: the run starts with exactly those choices
    run_id = trigger_sweep(pages, CONFIG, workers=2)
    (run,) = airflow.runs("hpo_sweep")
    assert run["dag_run_id"] == run_id
    conf = run["conf"]
    assert (conf["config"], conf["workers"], conf["mode"]) == (CONFIG, 2, "local")
    assert conf["allow_cpu"] is True and conf["dry_run"] is False, conf

    # bad values, while that run goes on: the number field holds no value outside the schema's
    # bounds, and a GPU list outside its pattern is refused when triggered, with no run created
    form = pages.open_trigger_form("hpo_sweep")
    assert pages.fill(form, "workers", "65") == "64"
    assert pages.fill(form, "workers", "0") == "1"
    pages.fill(form, "gpus", "0;rm -rf /")
    pages.button("Trigger", within=form).click()
    pages.text("[data-scope=toast][data-part=root][data-type=error]", "Failed to Trigger")
    assert form.is_displayed(), "the form closed on a refused value"
    assert [r["dag_run_id"] for r in airflow.runs("hpo_sweep")] == [run_id]

    # the run, to the end: both workers, the checklist and the finish step succeeded
    state = pages.wait_run("hpo_sweep", run_id)
    tis = airflow.task_states("hpo_sweep", run_id)
    assert state == "success", f"{json.dumps(tis, indent=1)}\n{airflow.logs()}"
    for task in ("prelaunch.checklist", "prepare", "finish"):
        assert tis[task] == "success", tis
    assert tis["segment_0.local_workers[0]"] == tis["segment_0.local_workers[1]"] == "success"

    # its graph, as drawn: the first and last steps green
    graph = pages.open_graph("hpo_sweep", run_id)
    for node in ("plan", "prepare", "finish"):
        drawn = graph.find_element("css selector", f".react-flow__node[data-id='{node}']")
        assert "success" in drawn.text.lower(), (node, drawn.text)

    # the workers' logs in the log view: each shows its worker's own lines, and their trial
    # lines add up to the budget (no pruner: every trial finishes)
    finished = 0
    for worker in (0, 1):
        log = pages.open_task_log("hpo_sweep", run_id, "segment_0.local_workers", worker)
        assert f"worker {STUDY}-s0-w{worker} " in log, log
        finished += log.count("finished: value")
    assert finished == 4, f"{finished} trial lines in the workers' logs, 4 trials run"
