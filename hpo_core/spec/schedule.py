"""A sweep's ``schedule:``, checked the way Airflow reads it, so that a spec which validates never
breaks the DAG file that schedules it.

Airflow 3 turns a DAG's ``schedule`` string into a timetable (``airflow.sdk.definitions.dag``):
``@once`` is a ``OnceTimetable``; any other string a ``CronTriggerTimetable`` (presets such as
``@daily`` mapped to their cron line), whose ``validate()`` the DAG bag calls, and which parses the
line with ``croniter``. :func:`schedule_problem` builds that very timetable and validates it when
Airflow is at hand, and otherwise asks ``croniter``, the library Airflow uses underneath, after
Airflow's preset table (tests/spec/test_schedule.py holds the two to the same verdicts).

"At hand" is a choice, because importing Airflow costs one to several seconds and about 80 MiB:
``hpo validate`` asks for it (``airflow=True``: imported if installed), while every other reader of
a spec (a worker, ``hpo status`` on a stored spec) uses Airflow only if its process has loaded it
already (the scheduler parsing the DAG file, a DAG task), and croniter otherwise. Importing
``hpo_core`` never imports Airflow.

Stricter than Airflow on purpose, in two ways: a cron line has exactly 5 fields (croniter also
takes seconds and years, which a sweep never needs and which readers misread), and a line that
never fires (``0 0 30 2 *``) is refused rather than left to the scheduler to stumble on.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable

__all__ = ["SCHEDULE_PRESETS", "schedule_problem"]

_log = logging.getLogger(__name__)

# Airflow's presets (airflow.sdk.definitions.timetables._cron.CRON_PRESETS) and @once.
# @continuous is left out: a sweep DAG would start again the moment it ends, for ever.
SCHEDULE_PRESETS = ("@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
_EXAMPLE = "e.g. '0 2 * * *' for 02:00 every night"


def schedule_problem(value: str, *, airflow: bool | None = None) -> str | None:
    """Why a DAG could not be scheduled on ``value`` (one line, with the fix), or None.

    ``airflow``: True checks with Airflow's own timetable if Airflow is installed (importing it);
    None only if this process has imported Airflow already; False never (croniter only).
    """
    if value not in SCHEDULE_PRESETS and len(value.split()) != 5:
        return (
            f"must be a cron expression with 5 fields or one of {', '.join(SCHEDULE_PRESETS)}, "
            f"but got {value!r}; {_EXAMPLE}"
        )
    if value == "@once":
        return None
    use_airflow = airflow if airflow is not None else "airflow.sdk" in sys.modules
    refused = (_airflow_check() if use_airflow else _croniter_check)(value)
    if refused:
        return (
            f"{value!r} is not a cron expression Airflow accepts ({refused}); the 5 fields are "
            f"minute hour day-of-month month day-of-week, {_EXAMPLE}"
        )
    if _never_fires(value):
        return (
            f"{value!r} never fires (no date matches it, e.g. 30 February); "
            f"fix the day or month, {_EXAMPLE}"
        )
    return None


@functools.cache
def _airflow_check() -> Callable[[str], str | None]:
    """Airflow's own check when Airflow can be imported, croniter's otherwise."""
    quiet = "airflow" not in sys.modules  # a first import here: keep its start-up lines quiet
    airflow_log = logging.getLogger("airflow")
    level = airflow_log.level
    if quiet:  # ("Reading the config from ..." on stderr: `hpo validate` prints errors only)
        airflow_log.setLevel(logging.WARNING)
    try:
        from airflow.sdk import CronTriggerTimetable
    except ImportError:
        return _croniter_check
    except Exception as exc:  # an installed Airflow that fails to start (its config): no DAG
        _log.debug("Airflow cannot be imported (%s); checking schedules with croniter", exc)
        return _croniter_check
    finally:
        if quiet:
            airflow_log.setLevel(level)

    def airflow_check(value: str) -> str | None:
        try:
            CronTriggerTimetable(value, timezone="UTC").validate()
        except Exception as exc:  # whatever validate() raises here, the DAG bag would raise too
            return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None

    return airflow_check


def _croniter_check(value: str) -> str | None:
    from croniter import croniter

    # the preset table Airflow applies before croniter sees the line
    presets = {
        "@hourly": "0 * * * *",
        "@daily": "0 0 * * *",
        "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *",
        "@quarterly": "0 0 1 */3 *",
        "@yearly": "0 0 1 1 *",
    }
    try:
        croniter(presets.get(value, value))
    except (ValueError, TypeError) as exc:  # croniter's errors derive from these
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _never_fires(value: str) -> bool:
    from croniter import CroniterBadDateError, croniter

    try:
        croniter(value if not value.startswith("@") else "0 0 * * *").get_next()
    except CroniterBadDateError:
        return True
    except (ValueError, TypeError):  # not a line croniter reads: the checks above decided
        return False
    return False
