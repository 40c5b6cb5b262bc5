"""Promotion of a champion on a real MLflow store (PostgreSQL-backed, as deployed): the alias rule
(better moves, a tie or worse keeps, a re-run is a no-op), the noise rule (a better mean within
the seed noise keeps the incumbent, a clear one moves), and two processes racing to promote,
20 times, under the study storage's lock on PostgreSQL and on the journal. Without the lock the
same race ends on the worse mean: the race test can fail. No model is trained: each candidate is a
bare run with a logged-model record, registered by the promotion itself."""

from __future__ import annotations

import contextlib
import faulthandler
import json
import multiprocessing
import os
import queue
import time
from typing import Any

import pytest

from hpo_core.testing import PostgresServer

pytestmark = pytest.mark.postgres

ROUNDS = 20
BETTER, WORSE = 0.8, 0.6
# the seed noise the racers' one-seed means are judged with: 0.2 apart is far beyond it
NOISE = 0.01
# Seconds each racer waits after reading the incumbent, inside the critical section: the worse
# one writes its alias last, so an unlocked race ends on it whenever both read before a write.
PAUSE = {BETTER: 0.08, WORSE: 0.2}
RACE_TIMEOUT = 300  # seconds for a whole race; a few dozen here


@pytest.fixture(scope="module")
def tracking_uri(pg_server: PostgresServer) -> str:
    """One MLflow store for the module (its schema migrations take seconds): each test uses its
    own experiment and model names."""
    from mlflow import MlflowClient

    uri = pg_server.create_database(f"mlflow_promotion_{os.getpid()}")
    MlflowClient(uri).search_experiments()  # create the schema before any racer opens it
    return uri


def candidate(client: Any, experiment_id: str) -> str:
    """A run with a logged-model record: what `hpo champions` registers, without the files."""
    run_id = str(client.create_run(experiment_id).info.run_id)
    client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
    return run_id


def no_lock(name: str) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


class SlowIncumbentReads:
    """An MLflow client whose read of the incumbent takes ``pause`` seconds longer, as a slow
    network or a busy server would make it: it widens the window two promotions can race in."""

    def __init__(self, client: Any, pause: float) -> None:
        self._client = client
        self._pause = pause

    def get_registered_model(self, name: str) -> Any:
        try:
            return self._client.get_registered_model(name)
        finally:
            time.sleep(self._pause)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def racer(
    storage_url: str | None,
    tracking_uri: str,
    experiment_id: str,
    prefix: str,
    mean: float,
    rounds: int,
    barrier: Any,
    results: Any,
) -> None:
    """One promoter process: each round, a new candidate with ``mean``, then (with the other
    racer, at the barrier) its promotion to ``{prefix}_{round}@champion``."""
    from mlflow import MlflowClient

    from hpo_core.champions import PromotionRule, promote_champion
    from hpo_core.storage import open_storage

    # a racer stuck anywhere shows where (its stack goes to the test's captured output) and ends
    faulthandler.dump_traceback_later(RACE_TIMEOUT - 30, exit=True)
    try:
        client = MlflowClient(tracking_uri)
        slow = SlowIncumbentReads(client, PAUSE[mean])
        lock = no_lock if storage_url is None else open_storage(storage_url).study_lock
        for i in range(rounds):
            run_id = candidate(client, experiment_id)
            barrier.wait(timeout=RACE_TIMEOUT / 2)
            promote_champion(
                slow,
                f"{prefix}_{i}",
                run_id,
                mean,
                maximize=True,
                lock=lock,
                experiment_id=experiment_id,
                tracking_uri=tracking_uri,
                rule=PromotionRule(noise_sd=NOISE),
            )
        results.put((mean, None))
    except BaseException as exc:
        barrier.abort()  # the other racer must not wait for us
        results.put((mean, f"{type(exc).__name__}: {exc}"))


def race(storage_url: str | None, tracking_uri: str, prefix: str, rounds: int) -> list[float]:
    """Two processes promote ``rounds`` times; the champion's mean of each round."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment(prefix)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=racer,
            args=(storage_url, tracking_uri, experiment_id, prefix, mean, rounds, barrier, results),
        )
        for mean in (BETTER, WORSE)
    ]
    for proc in procs:
        proc.start()
    try:
        errors = [results.get(timeout=RACE_TIMEOUT)[1] for _ in procs]
    except queue.Empty:
        errors = [f"a racer neither finished nor failed in {RACE_TIMEOUT} s"]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    assert errors == [None, None]
    endings = []
    for i in range(rounds):
        name = f"{prefix}_{i}"
        # each racer registered its run once
        assert len(client.search_model_versions(f"name = '{name}'")) == 2
        champion = client.get_model_version_by_alias(name, "champion")
        endings.append(float(champion.tags["sweepflow.metric_mean"]))
    return endings


@pytest.mark.parametrize("storage", ["postgresql", "journal"])
def test_two_racing_promotions_end_on_the_better_mean(
    storage: str, request: pytest.FixtureRequest, tracking_uri: str
) -> None:
    storage_url = request.getfixturevalue("pg_url" if storage == "postgresql" else "journal_url")
    assert race(storage_url, tracking_uri, f"race_{storage}", ROUNDS) == [BETTER] * ROUNDS


def test_without_the_lock_the_race_is_lost(tracking_uri: str) -> None:
    endings = race(None, tracking_uri, "race_unlocked", 8)
    assert WORSE in endings, endings


def test_the_alias_moves_only_on_a_better_mean(journal_url: str, tracking_uri: str) -> None:
    from mlflow import MlflowClient

    from hpo_core.champions import PromotionRule, promote_champion
    from hpo_core.storage import open_storage

    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("alias_rule")
    lock = open_storage(journal_url).study_lock

    def promote(
        run_id: str, mean: float, *, maximize: bool = True
    ) -> tuple[str, bool, float | None, str | None]:
        done = promote_champion(
            client,
            "alias_rule",
            run_id,
            mean,
            maximize=maximize,
            lock=lock,
            experiment_id=experiment_id,
            tracking_uri=tracking_uri,
            rule=PromotionRule(noise_sd=NOISE),
        )
        return done.version, done.moved, done.incumbent, done.incumbent_version

    def holder() -> str:
        return str(client.get_model_version_by_alias("alias_rule", "champion").version)

    first = candidate(client, experiment_id)
    assert promote(first, 0.5) == ("1", True, None, None)
    assert promote(candidate(client, experiment_id), 0.4) == ("2", False, 0.5, "1")
    assert promote(candidate(client, experiment_id), 0.5) == ("3", False, 0.5, "1")
    assert holder() == "1"
    better = candidate(client, experiment_id)
    assert promote(better, 0.6) == ("4", True, 0.5, "1")
    # a retried task: the run keeps its version, nothing moves
    assert promote(better, 0.6) == ("4", False, 0.6, "4")
    assert promote(first, 0.5) == ("1", False, 0.6, "4")
    assert holder() == "4"
    # minimising: lower is better
    assert promote(candidate(client, experiment_id), 0.55, maximize=False) == ("5", True, 0.6, "4")
    assert holder() == "5"


INCUMBENT = [0.50, 0.52, 0.48]  # scores over 3 seeds: sd 0.02
WITHIN = [0.51, 0.53, 0.49]  # a better mean by 0.01, half the noise
CLEAR = [0.60, 0.62, 0.58]  # better by 0.1, five times the noise


@pytest.mark.parametrize("test", ["welch", "k_se"])
def test_the_alias_moves_only_beyond_the_seed_noise(
    test: str, journal_url: str, tracking_uri: str
) -> None:
    from mlflow import MlflowClient

    from hpo_core.champions import PromotionRule, promote_champion
    from hpo_core.storage import open_storage

    client = MlflowClient(tracking_uri)
    name = f"noise_rule_{test}"
    experiment_id = client.create_experiment(name)
    lock = open_storage(journal_url).study_lock
    rule = PromotionRule(test, alpha=0.05, k=2.0)  # type: ignore[arg-type]

    def promote(scores: list[float]) -> Any:
        run_id = candidate(client, experiment_id)
        return promote_champion(
            client,
            name,
            run_id,
            scores,
            maximize=True,
            lock=lock,
            experiment_id=experiment_id,
            tracking_uri=tracking_uri,
            rule=rule,
        )

    assert promote(INCUMBENT).moved
    # the scores over seeds are on the version: the next promotion tests against them
    held = client.get_model_version_by_alias(name, "champion")
    assert json.loads(held.tags["sweepflow.metric_values"]) == INCUMBENT
    within = promote(WITHIN)
    assert not within.moved and within.test.test == test and not within.test.passed
    assert (within.test.new_n, within.test.incumbent_n) == (3, 3)
    assert within.test.incumbent_mean == pytest.approx(0.5)
    if test == "welch":
        assert 0.05 < within.test.p < 0.5
    else:
        assert 0 < within.test.statistic < 2
    clear = promote(CLEAR)
    assert clear.moved and clear.test.passed and clear.incumbent_version == "1"
    if test == "welch":
        assert clear.test.p < 0.01
    assert str(client.get_model_version_by_alias(name, "champion").version) == clear.version
    tags = clear.test.tags()
    assert tags["sweepflow.promotion.passed"] == "True" and "sweepflow.promotion.p" in tags


def test_one_seed_on_a_side_needs_a_noise_estimate() -> None:
    from hpo_core.champions import PromotionRule, promotion_test

    # no spread and no estimate: the incumbent stays, saying why
    blind = promotion_test([0.6], INCUMBENT, maximize=True, rule=PromotionRule())
    assert not blind.passed and "one seed on a side" in blind.reason
    # with the study's estimate, a z-test: 0.1 better with sd 0.02 moves, 0.01 does not
    rule = PromotionRule(noise_sd=0.02, noise_source="probe")
    clear = promotion_test([0.6], INCUMBENT, maximize=True, rule=rule)
    assert clear.passed and clear.test == "z" and clear.p is not None and clear.p < 1e-5
    assert "probe" in clear.needed
    assert not promotion_test([0.51], [0.5], maximize=True, rule=rule).passed
    # minimising: lower is better, a higher mean never moves the alias
    assert promotion_test([0.4], [0.5], maximize=False, rule=rule).passed
    worse = promotion_test([0.6], [0.5], maximize=False, rule=rule)
    assert not worse.passed and worse.reason == "does not beat the incumbent"


def test_a_held_move_waits_for_a_persons_approval(journal_url: str, tracking_uri: str) -> None:
    """champions.approval: the test decides whether the alias may move, a person whether it
    does; an approval given on evidence that no longer holds (another champion took the alias
    since) moves nothing."""
    from mlflow import MlflowClient

    from hpo_core.champions import approve_champion, promote_champion
    from hpo_core.storage import open_storage

    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("held")
    lock = open_storage(journal_url).study_lock

    def promote(mean: float, *, hold: bool) -> Any:
        return promote_champion(
            client,
            "held",
            candidate(client, experiment_id),
            [mean, mean + 0.02],
            maximize=True,
            lock=lock,
            experiment_id=experiment_id,
            tracking_uri=tracking_uri,
            hold=hold,
        )

    def holder() -> str | None:
        found = client.get_registered_model("held").aliases.get("champion")
        return None if found is None else str(found)

    first = promote(0.5, hold=True)
    assert (first.version, first.moved, first.pending) == ("1", False, True)
    assert holder() is None  # registered, not the champion until approved
    assert approve_champion(client, "held", "1", incumbent_version=None, lock=lock)
    assert holder() == "1"
    assert approve_champion(client, "held", "1", incumbent_version=None, lock=lock)  # a retry
    worse = promote(0.3, hold=True)
    assert not worse.pending and not worse.moved  # nothing to approve: the test keeps "1"
    better = promote(0.7, hold=True)
    assert better.pending and better.incumbent_version == "1" and holder() == "1"
    assert better.test is not None and better.test.new_sd == pytest.approx(0.01414, rel=1e-3)
    # meanwhile another sweep's champion takes the alias: the approval of "3" is refused
    assert promote(0.9, hold=False).moved and holder() == "4"
    assert not approve_champion(client, "held", "3", incumbent_version="1", lock=lock)
    assert holder() == "4"


def test_a_rejected_champion_leaves_the_incumbent_and_says_who(
    journal_url: str, tracking_uri: str, tmp_path: Any
) -> None:
    """The workflow's side of the approval (``hpo_core.pipeline.decide_champion``, what the
    DAG's `promote` task calls): a reject keeps the incumbent, an answer nobody was offered is
    refused, and the summary and the model version say who decided what: the version said
    pending (tags and description) until then."""
    from mlflow import MlflowClient

    from hpo_core.champions import Evidence, promote_champion, record_version
    from hpo_core.errors import HpoError
    from hpo_core.pipeline import Answer, decide_champion
    from hpo_core.storage import open_storage
    from tests.helpers import run_plan

    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("rejected")
    lock = open_storage(journal_url).study_lock
    options = {"maximize": True, "lock": lock, "experiment_id": experiment_id}
    run = candidate(client, experiment_id)
    promote_champion(client, "rejected", run, [0.5, 0.52], tracking_uri=tracking_uri, **options)
    run = candidate(client, experiment_id)
    held = promote_champion(
        client, "rejected", run, [0.7, 0.72], tracking_uri=tracking_uri, hold=True, **options
    )
    assert held.pending
    # registered: the LoggedModel lists its version (what the UI's "Registered" reads)
    listed = json.loads(client.get_logged_model(held.model_id).tags["mlflow.modelVersions"])
    assert listed == [{"name": "rejected", "version": held.version}]
    waiting = f"version {held.version} would take the alias: awaiting a person's approval"
    evidence = Evidence("s", 1, "val_accuracy", "maximize", [0, 1], 0.71, 0.014, run, run, 0)
    record_version(client, "rejected", held, waiting, evidence)
    pending = client.get_model_version("rejected", held.version)
    assert pending.tags["sweepflow.approval"] == "pending"
    assert pending.tags["sweepflow.incumbent_version"] == "1"
    assert float(pending.tags["sweepflow.incumbent_mean"]) == pytest.approx(0.51)
    assert pending.tags["sweepflow.promotion.test"] == "welch"
    assert "Test: welch" in pending.description
    assert pending.description.endswith(
        "**Status**: pending: awaiting a person's approval; `@champion` stays on version 1 "
        "until then"
    )
    summary = {
        "study": "s", "config": "s.yaml", "mode": "local", "workers": 1, "n_trials": 4,
        "complete": 4, "pruned": 0, "failed": 0, "failure_rate": 0.0, "lost": 0,
        "lost_rate": 0.0, "gpu_hours_lost": 0.0, "lost_causes": {}, "best_value": 0.7,
        "best_trial": 1, "decision": None, "report": "r.md", "next_spec": None,
        "champions_skipped": None,
        "champion": {
            "model": "rejected", "version": held.version, "pending": True,
            "incumbent_version": held.incumbent_version,
            "message": waiting,
        },
    }  # fmt: skip
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    plan = run_plan(tmp_path / "s.yaml", tmp_path)
    with pytest.raises(HpoError, match="'Extend budget' is not one of the options offered"):
        decide_champion(
            plan, Answer("Extend budget"), storage_url=journal_url, tracking_uri=tracking_uri
        )
    done = decide_champion(
        plan, Answer("Reject", "Bo (bo)", "t"), storage_url=journal_url, tracking_uri=tracking_uri
    )
    assert str(client.get_registered_model("rejected").aliases["champion"]) == "1"
    assert done["champion"]["approval"]["outcome"] == "alias kept on version 1"
    verdict = "rejected by Bo (bo) at t: alias kept on version 1"
    assert verdict in (tmp_path / "summary.md").read_text()
    answered = client.get_model_version("rejected", held.version)
    assert answered.tags["sweepflow.approval"] == verdict
    assert answered.tags["sweepflow.decision"] == done["champion"]["message"]
    assert answered.description.endswith(f"**Status**: {verdict}")
    assert "awaiting" not in answered.description.split("**Status**")[1]
