"""`schedule:` is checked as Airflow reads it: with Airflow's own timetable where Airflow is at
hand, with croniter (what Airflow uses underneath) elsewhere, and the two agree; whatever passes
builds a DAG that Airflow validates."""

from __future__ import annotations

import subprocess
import sys

import pendulum
import pytest

from hpo_core.spec import schedule as schedule_module
from hpo_core.spec import schedule_problem

GOOD = [
    "@once",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
    "0 2 * * *",
    "*/15 * * * *",
    "0 0 * * MON-FRI",
    "1-5/2 * * * *",
    "0 0 29 2 *",  # leap years only, but it fires
    "0 0 L * *",
    "0 0 * * 7",
]
BAD = [
    "a b c d e",
    "*/0 * * * *",
    "60 * * * *",
    "0 24 * * *",
    "0 0 32 * *",
    "0 0 * 13 *",
    "H * * * *",
    "0 0 30 2 *",  # never fires
    "0 0 31 4 *",  # never fires
    "0 2 * * * *",  # seconds: croniter takes them, we do not
    "@nightly",
    "@continuous",  # a sweep DAG would start again the moment it ended
    "every night at two",
    "",
]


@pytest.mark.parametrize("value", GOOD + BAD)
def test_airflow_and_croniter_give_the_same_verdict(value: str) -> None:
    with_airflow = schedule_problem(value, airflow=True)
    assert (with_airflow is None) == (value in GOOD), with_airflow
    assert (schedule_problem(value, airflow=False) is None) == (with_airflow is None)


@pytest.mark.parametrize("value", GOOD + BAD)
def test_what_passes_builds_a_dag_that_airflow_validates(value: str) -> None:
    from airflow.sdk import DAG

    start = pendulum.datetime(2026, 1, 1, tz="UTC")
    if value in GOOD:
        DAG(dag_id="probe", schedule=value, start_date=start).validate()
    elif value.split()[:1] == ["a"]:  # the line that used to pass and break the DAG file
        with pytest.raises(Exception, match="is not acceptable"):
            DAG(dag_id="probe", schedule=value, start_date=start).validate()


def test_every_refusal_is_one_line_naming_the_fix() -> None:
    for value in BAD:
        problem = schedule_problem(value)
        assert problem and "\n" not in problem and "e.g. '0 2 * * *'" in problem, problem


def test_without_airflow_croniter_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    schedule_module._airflow_check.cache_clear()
    monkeypatch.setitem(sys.modules, "airflow.sdk", None)  # `import airflow.sdk` fails
    try:
        assert schedule_module._airflow_check() is schedule_module._croniter_check
        assert "is not acceptable" in (schedule_problem("a b c d e", airflow=True) or "")
    finally:
        schedule_module._airflow_check.cache_clear()


def test_reading_a_scheduled_spec_does_not_import_airflow() -> None:
    """Only `hpo validate` asks for Airflow (a second or more, ~80 MiB); a worker or `hpo status`
    reading a stored spec with a schedule must not pay for it."""
    code = (
        "import sys\n"
        "from hpo_core.spec import parse_spec\n"
        "text = 'study_name: s\\nn_trials: 3\\nobjective: synthetic\\nschedule: \"0 2 * * *\"\\n'\n"
        "assert parse_spec(text).spec.schedule == '0 2 * * *'\n"
        "try:\n"
        "    parse_spec(text.replace('0 2 * * *', 'a b c d e'))\n"
        "except Exception as exc:\n"
        "    assert 'is not acceptable' in str(exc), exc\n"
        "assert 'airflow' not in sys.modules, 'airflow was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
