"""Finishing a sweep, as both front doors do it: the report's copy on the parent run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpo_core.errors import HpoError
from hpo_core.pipeline import publish
from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import create_study
from hpo_core.tracking import ATTR_PARENT_RUN, ATTR_TRACKING_URI
from tests.helpers import base_spec


def test_a_tracking_outage_costs_the_command_the_copy_and_fails_the_dag_step(
    journal_url: str, tmp_path: Path
) -> None:
    sweep = create_study(parse_spec(yaml.safe_dump(base_spec())), open_storage(journal_url))
    assert publish(sweep, tmp_path, "report", backfill=True) is None  # not tracked: nothing to do
    sweep.study.set_user_attr(ATTR_PARENT_RUN, "0" * 32)
    sweep.study.set_user_attr(ATTR_TRACKING_URI, "http://127.0.0.1:9")
    done = publish(sweep, tmp_path, "report", backfill=True)  # `hpo analyze`: best effort
    assert done is not None and not done.attached and done.backfilled == 0
    assert done.warning is not None
    assert done.warning.startswith("tracking: cannot reach http://127.0.0.1:9")
    with pytest.raises(HpoError, match="cannot reach"):  # the DAG's finish: Airflow retries it
        publish(sweep, tmp_path, "report", backfill=True, best_effort=False)
