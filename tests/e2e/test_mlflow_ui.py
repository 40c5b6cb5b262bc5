"""MLflow's UI as a researcher reads a sweep, in headless Chromium: a small ARC sweep with
champions, tracked in a SQLite store (in process: trials, then champions over two seeds), an
`mlflow server` over that store, then the pages a person opens: the experiment's runs table
sorted by the spec's metric (trials and champions ranked in one column, the best trial first)
and the registered champion's version page with its logged model (the figures the decision
used, how it was chosen). The names checked are docs/tracking.md's "Names and states"."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_core.champions import train_champions
from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import create_study
from hpo_core.testing import MlflowServer
from hpo_core.tracking import Tracker
from hpo_core.worker import run_worker
from tests.helpers import mlflow_client, tiny_arc_spec
from tests.ui import MlflowPages, browser_missing, chromium, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

METRIC = "val_accuracy"
# 4 trials, then the best configuration retrained over 2 seeds (the smallest sweep whose
# champion has a spread); its model registered as `ui_arc`
SPEC = tiny_arc_spec(study_name="ui_arc_v1", champions={"top_k": 1, "epochs": 2, "seeds": 2})


def _shown(text: str) -> float | None:
    """A metric cell as the runs table shows it ('-': the run has no such metric)."""
    return None if text.strip() == "-" else float(text)


def _plain(markdown: str) -> list[str]:
    """The lines of a Markdown description as the page renders them (marks dropped)."""
    lines = (re.sub(r"[*`]|^#+\s*|^[-+]\s+", "", line).strip() for line in markdown.splitlines())
    return [" ".join(line.split()) for line in lines if line]


def test_the_runs_table_ranks_by_the_metric_and_the_version_page_shows_the_champion(
    tmp_path: Path,
) -> None:
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    started = time.monotonic()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = f"journal://{tmp_path / 'studies.journal'}"
    loaded = parse_spec(yaml.safe_dump(SPEC))
    sweep = create_study(loaded, open_storage(storage))
    Tracker(uri).ensure_parent_run(sweep)  # the store exists before the server opens it
    server = MlflowServer(uri, tmp_path / "artifacts")
    # the server starts (about 12 s) while the sweep and its champions run
    with ThreadPoolExecutor(1) as pool:
        booted = pool.submit(server.start)
        try:
            run_worker(loaded, storage)
            result = train_champions(sweep, tracking_uri=uri)
            booted.result()
            built = time.monotonic() - started
            with chromium() as driver:
                pages = MlflowPages(driver, server.uri)
                try:
                    _check_runs_table(pages, uri, sweep)
                    _check_version_page(pages, uri, result.model_name)
                finally:  # the last page seen, for a failure's diagnosis
                    driver.save_screenshot(str(tmp_path / "last_page.png"))
                    (tmp_path / "last_page.html").write_text(driver.page_source)
        finally:
            server.stop()
    print(f"sweep and champions {built:.0f} s, in all {time.monotonic() - started:.0f} s")


def _check_runs_table(pages: MlflowPages, uri: str, sweep: Any) -> None:
    client = mlflow_client(uri)
    experiment = client.get_experiment_by_name(sweep.name)
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    role = {rid: r.data.tags.get("sweepflow.role") for rid, r in runs.items()}
    maximize = sweep.spec.direction == "maximize"

    # sorted by the metric in the "Sort" menu: every run, nested ones listed flat,
    # each row showing the value stored for that run
    rows = pages.runs(experiment.experiment_id, METRIC, descending=maximize)
    assert sorted(rid for rid, _ in rows) == sorted(runs), "a run is missing from the table"
    values = [_shown(text) for _, text in rows]
    for (rid, _), value in zip(rows, values, strict=True):
        stored = runs[rid].data.metrics.get(METRIC)
        assert value == (None if stored is None else pytest.approx(stored)), (rid, role[rid])
    # ranked best first; runs without the score (the parent, pruned and failed trials) last
    ranked = [v for v in values if v is not None]
    assert ranked == sorted(ranked, reverse=maximize), values
    assert values[len(ranked) :] == [None] * (len(values) - len(ranked)), values
    # trials, champion seed runs and the champion group (their mean) share the one column
    scored = {role[rid] for (rid, _), v in zip(rows, values, strict=True) if v is not None}
    assert scored == {"trial", "champion", "champion_group"}, scored
    assert {role[rid] for (rid, _), v in zip(rows, values, strict=True) if v is None} == {"parent"}

    # the first trial row holds the score the study ranked best (trial.value)
    best = sweep.study.best_trial
    first = next(i for i, (rid, _) in enumerate(rows) if role[rid] == "trial")
    assert values[first] == pytest.approx(best.value), (values[first], best.value)
    # the trials alone (the search box's filter): the best trial is the first row
    trials = pages.runs(
        experiment.experiment_id,
        METRIC,
        descending=maximize,
        search="tags.`sweepflow.role` = 'trial'",
    )
    assert len(trials) == len(sweep.study.trials)
    assert _shown(trials[0][1]) == pytest.approx(best.value)
    top = runs[trials[0][0]].data.tags["sweepflow.trial_number"]
    tied = [t.number for t in sweep.study.trials if t.value == best.value]
    assert int(top) in tied, (top, tied)

    # the trials compared ("Compare" on the ticked rows): the parallel-coordinates plot picks
    # the sampled parameters and the score (a run's first metric), not the per-epoch curve
    picked = pages.parallel_coordinates(experiment.experiment_id, [rid for rid, _ in trials])
    assert picked == {"parameters": sorted(SPEC["param_ranges"]), "metrics": [METRIC]}, picked


def _check_version_page(pages: MlflowPages, uri: str, model: str) -> None:
    client = mlflow_client(uri)
    version = client.get_model_version_by_alias(model, "champion")
    text = " ".join(pages.version_page(model, version.version).split())
    # how it was chosen: the description, as the page renders its Markdown
    assert version.description, "the registered version has no description"
    for line in _plain(version.description):
        assert line in text, f"description line {line!r} not on the version page"
    # the decision's figures: every tag of the version is on the page, the decision and the
    # mean over seeds among them
    tags = version.tags
    assert "sweepflow.decision" in tags, tags
    for key, value in tags.items():
        assert key in text and " ".join(value.split()) in text, (key, value)
    group = client.get_run(tags["sweepflow.group_run"])
    mean = group.data.metrics[METRIC]
    assert repr(mean) in text or f"{mean:.4f}" in text, (mean, text)

    # its logged model (the version's source), one click away: it lists the version, and the
    # mean it was chosen by among its metrics (the metrics' own search box: the list scrolls)
    pages.find("a[data-testid=source-model-link]").click()
    model_id = version.source.removeprefix("models:/")
    wait_for("the logged model's page", lambda: pages.driver.current_url.endswith(model_id), 30)
    pages.find("input[placeholder='Search metrics']").send_keys(METRIC)
    shown = " ".join(pages.text("body", repr(mean)).split())
    assert "Not registered" not in shown and f"{model} v{version.version}" in shown, shown
