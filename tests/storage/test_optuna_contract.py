"""What hpo_core/storage/optuna_internals.py relies on in Optuna, pinned: each private name, the
signature we call, the tables and columns our SQL names, and how the hooks behave on a real
storage. A failure here after an Optuna upgrade names the internal that moved; fix the adapter
(only it uses them), then widen the bound on optuna in pyproject.toml."""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from hpo_core.storage import open_storage
from hpo_core.storage import optuna_internals as oi
from hpo_core.storage.journal import DurableJournalBackend
from hpo_core.storage.resilient import ResilientRDBStorage

MOVED = f"Optuna {optuna.__version__} changed an internal hpo_core/storage/optuna_internals.py uses"

# the parameters we pass, by name, to each private callable
SIGNATURES: dict[tuple[str, str], list[str]] = {
    ("optuna.storages._heartbeat", "is_heartbeat_enabled"): ["storage"],
    ("optuna.storages.RDBStorage", "_get_stale_trial_ids"): ["self", "study_id"],
    ("optuna.pruners.HyperbandPruner", "_get_bracket_id"): ["self", "study", "trial"],
    ("optuna.pruners.HyperbandPruner", "_create_bracket_study"): ["self", "study", "bracket_id"],
    ("optuna.samplers._lazy_random_state", "LazyRandomState"): ["seed"],
}


def _owner(path: str) -> Any:
    try:
        return importlib.import_module(path)
    except ImportError:
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(
    ("owner", "name"), [(o, n) for o, names in oi.PRIVATE_NAMES.items() for n in names]
)
def test_each_private_name_exists_with_the_signature_we_call(owner: str, name: str) -> None:
    try:
        found = getattr(_owner(owner), name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{MOVED}: {owner}.{name} is gone ({exc})")
    expected = SIGNATURES.get((owner, name))
    if expected is not None:
        params = list(inspect.signature(found).parameters)
        assert params == expected, f"{MOVED}: {owner}.{name} takes {params}, we pass {expected}"


def test_the_tables_and_columns_our_sql_names_are_optunas() -> None:
    from optuna.storages._rdb import models

    tables = models.BaseModel.metadata.tables
    for table, columns in oi.TABLES.items():
        assert table in tables, f"{MOVED}: table {table} is gone"
        missing = set(columns) - set(tables[table].columns.keys())
        assert not missing, f"{MOVED}: {table} has no column {sorted(missing)}"
    for table, key in oi.UNIQUE_KEYS.items():  # what our ON CONFLICT targets
        uniques = [
            tuple(c.name for c in constraint.columns)
            for constraint in tables[table].constraints
            if isinstance(constraint, sqlalchemy.UniqueConstraint)
        ]
        assert key in uniques, f"{MOVED}: {table} is no longer unique on {key} ({uniques})"
    # our SQL writes states by name ('FAIL', 'RUNNING')
    state = tables["trials"].columns["state"].type
    assert isinstance(state, sqlalchemy.Enum) and state.enum_class is TrialState, MOVED
    for column in ("trial_id", "study_id", "state", "_datetime_start_utc"):
        assert hasattr(models.TrialModel, column), f"{MOVED}: TrialModel.{column}"
    for column in ("trial_id", "heartbeat"):
        assert hasattr(models.TrialHeartbeatModel, column), f"{MOVED}: TrialHeartbeatModel"


def test_a_journal_storage_shows_its_file_backend(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    journal = JournalStorage(DurableJournalBackend(str(path)))
    backend = oi.unwrap_storage(journal)
    assert isinstance(backend, DurableJournalBackend), MOVED
    assert oi.journal_file_path(backend) == str(path), MOVED


@pytest.mark.postgres
def test_optunas_stale_check_calls_our_hook_and_heartbeats_read_as_we_assume(pg_url: str) -> None:
    handle = open_storage(pg_url, heartbeat_interval=1, grace_period=60)
    assert oi.has_heartbeat(handle.storage)
    assert not oi.has_heartbeat(open_storage(pg_url, create=False).storage)
    storage = handle.storage
    assert isinstance(storage, ResilientRDBStorage)
    study = optuna.create_study(study_name="s", storage=storage)
    study_id = oi.study_id_of(study)
    beating, orphan, fresh = (storage.create_new_trial(study_id) for _ in range(3))
    storage.record_heartbeat(beating)
    with storage.engine.begin() as conn:  # an orphan: started an hour ago, never a heartbeat
        conn.execute(
            sqlalchemy.text(
                "UPDATE trials SET datetime_start = datetime_start - interval '1 hour' "
                "WHERE trial_id = :t"
            ),
            {"t": orphan},
        )
    ages = oi.running_trial_ages(storage, study_id)
    assert ages[beating][0] is not None and 0 <= ages[beating][0] < 30, ages
    assert ages[orphan][0] is None and ages[orphan][1] is not None and ages[orphan][1] > 3000
    assert ages[fresh][0] is None and ages[fresh][1] is not None and ages[fresh][1] < 30

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # Optuna's check, through its cache, calls ours
    states = {oi.trial_id_of(t): t.state for t in study.trials}
    assert states == {
        beating: TrialState.RUNNING,
        orphan: TrialState.FAIL,
        fresh: TrialState.RUNNING,
    }, MOVED


@pytest.mark.postgres
def test_our_sql_and_the_private_attributes_we_read_on_a_real_study(pg_url: str) -> None:
    study = optuna.create_study(study_name="s", storage=open_storage(pg_url).storage)
    cached = oi.study_storage(study)
    storage = oi.unwrap_storage(cached)  # under Optuna's cache
    assert isinstance(storage, ResilientRDBStorage), MOVED
    assert oi.study_id_of(study) == cached.get_study_id_from_name("s"), MOVED
    asked = study.ask()
    assert oi.trial_id_of(asked) == cached.get_trial_id_from_study_id_trial_number(
        oi.study_id_of(study), asked.number
    ), MOVED
    assert oi.trial_id_of(study.trials[0]) == oi.trial_id_of(asked), MOVED  # FrozenTrial too
    assert hasattr(study._thread_local, "cached_all_trials"), MOVED
    study.tell(asked, 1.0)
    running = oi.trial_for(study, cached.create_new_trial(oi.study_id_of(study)))
    assert running.number == 1 and len(study.trials) == 2, MOVED

    trial_id = oi.trial_id_of(running)
    attrs = {"lost_cause": "gone", "n": 2}
    assert oi.fail_running_trial_sql(storage, trial_id, attrs, "lost", retried=False)
    assert not oi.fail_running_trial_sql(storage, trial_id, attrs, "lost", retried=False)
    assert oi.fail_running_trial_sql(storage, trial_id, attrs, "lost", retried=True)  # landed
    stored = storage.get_trial(trial_id)
    assert stored.state == TrialState.FAIL and stored.datetime_complete is not None, MOVED
    assert stored.user_attrs == attrs, MOVED
    with storage.engine.begin() as conn:
        oi.upsert_trial_user_attr(conn, [(trial_id, "n", 3)])
        counts, read = oi.snapshot_rows(conn, oi.study_id_of(study), ["lost", "absent"])
    assert counts == {"COMPLETE": 1, "FAIL": 1} and read == {"lost": 1}, MOVED
    assert storage.get_trial(trial_id).user_attrs["n"] == 3, MOVED


def test_hyperband_judges_trials_through_our_bracket_hooks() -> None:
    calls: list[str] = []

    class Recording(oi.HyperbandBracketHooks):
        def bracket_id(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> int:
            calls.append("bracket_id")
            return super().bracket_id(study, trial)

        def bracket_study(self, study: optuna.Study, bracket_id: int) -> optuna.Study:
            calls.append("bracket_study")
            return super().bracket_study(study, bracket_id)

    study = optuna.create_study(pruner=Recording(min_resource=1, max_resource=9))
    for _ in range(3):
        trial = study.ask()
        trial.report(1.0, 1)
        trial.should_prune()
        study.tell(trial, 1.0)
    assert {"bracket_id", "bracket_study"} <= set(calls), f"{MOVED}: Hyperband called {calls}"


@pytest.mark.parametrize(
    "make",
    [
        optuna.samplers.RandomSampler,
        optuna.samplers.TPESampler,
        # the others a spec names (hpo_core.study.search): their start-up sampler's state
        optuna.samplers.CmaEsSampler,
        optuna.samplers.GPSampler,
        optuna.samplers.NSGAIISampler,
        optuna.samplers.QMCSampler,
    ],
)
def test_reseeding_reaches_the_samplers_random_state(make: Any) -> None:
    def first_draw(seed: int) -> float:
        sampler = make()
        study = optuna.create_study(sampler=sampler)
        oi.reseed_sampler(sampler, seed)
        return study.ask().suggest_float("x", 0, 1)

    assert first_draw(7) == first_draw(7) != first_draw(8), f"{MOVED}: LazyRandomState"


# what only the adapter may touch: private modules and attributes of Optuna, SQL on its tables
_PRIVATE_ATTRIBUTES = {
    "_trial_id",
    "_study_id",
    "_storage",
    "_thread_local",
    "_backend",
    "_file_path",
    *(name for names in oi.PRIVATE_NAMES.values() for name in names if name.startswith("_")),
}
_REACHES_IN = re.compile(
    r"^\s*(from|import)\s+optuna[\w.]*\._"  # a private module
    r"|^\s*from\s+optuna[\w.]*\s+import\s+\(?\s*_"  # a private name of a module
    rf"|(?<!self)\.({'|'.join(sorted(_PRIVATE_ATTRIBUTES))})\b"  # not our own attributes
    rf"|\b(FROM|INTO|UPDATE|JOIN)\s+({'|'.join(oi.TABLES)})\b",
    re.IGNORECASE,
)


def test_only_the_adapter_reaches_into_optuna() -> None:
    root = Path(oi.__file__).parents[1]
    found = [
        f"{path.relative_to(root.parent)}:{number}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        if path != Path(oi.__file__)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _REACHES_IN.search(line)
    ]
    assert not found, "use hpo_core/storage/optuna_internals.py instead:\n" + "\n".join(found)
