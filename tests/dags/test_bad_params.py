"""Bad values in the sweep DAG's trigger form, refused twice: by the form's JSON schema (Airflow
validates a run's params before it is queued) and by `hpo_core.pipeline.plan_run`, the first task,
which must never reach a file outside the config folder. Every refusal names the param."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import REPO

GOOD = "demo_synthetic.yaml"


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A config folder with one good spec and a link that escapes it to a valid spec outside."""
    root = tmp_path_factory.mktemp("dag_params")
    outside = root / "outside.yaml"
    outside.write_text((REPO / "configs" / "hpo" / GOOD).read_text())
    folder = root / "configs"
    folder.mkdir()
    (folder / GOOD).write_text(outside.read_text())
    (folder / "escape.yaml").symlink_to(outside)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEEPFLOW_CONFIG_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def form(config_dir: Path) -> Any:
    """The params of the manual sweep DAG, as the UI form validates them."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    params = bag.dags["hpo_sweep"].params
    assert params.validate()["config"] == "demo_synthetic.yaml"  # the defaults pass
    return params


def test_the_form_offers_only_files_inside_the_folder(form: Any) -> None:
    """The link to a spec outside the folder is not offered (nor read at parse time)."""
    assert form.get_param("config").schema["enum"] == [GOOD]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("workers", 0, "0 is less than the minimum of 1"),
        ("workers", 65, "65 is greater than the maximum of 64"),
        ("workers", "2", "'2' is not of type 'integer'"),
        ("mode", "ssh", "'ssh' is not one of ['local', 'kubernetes']"),
        ("n_trials", 0, "0 is less than the minimum of 1"),
        ("config", "../../etc/passwd", "'../../etc/passwd' is not one of ["),
        ("config", "/etc/passwd", "'/etc/passwd' is not one of ["),
        ("config", "x.yaml; rm -rf /", "'x.yaml; rm -rf /' is not one of ["),
        ("min_free_gb", -1, "-1 is less than the minimum of 0"),
        ("allow_cpu", "yes", "'yes' is not of type 'boolean'"),
    ],
    ids=[
        "workers_0",
        "workers_65",
        "workers_as_text",
        "unknown_mode",
        "n_trials_0",
        "config_parent_dir",
        "config_absolute_path",
        "config_shell_metacharacters",
        "negative_free_disk",
        "allow_cpu_as_text",
    ],
)
def test_the_form_refuses_a_bad_value_naming_the_param(
    form: Any, key: str, value: Any, message: str
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(form)
    with pytest.raises(ParamValidationError) as caught:
        params[key] = value
        params.validate()
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"Invalid input for param {key}: {message}"), first


def test_the_plan_accepts_a_config_in_the_folder(config_dir: Path, tmp_path: Path) -> None:
    from hpo_core.pipeline import plan_run

    plan = plan_run({"config": GOOD, "workers": 2}, run_id="manual__ok", home=tmp_path)
    assert plan.config == str(config_dir / GOOD) and plan.workers == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"config": "../outside.yaml"}, "params.config: '../outside.yaml' is not a config file"),
        ({"config": "ABSOLUTE"}, "is not a config file name; choose one of"),
        ({"config": "x.yaml; rm -rf /"}, "params.config: 'x.yaml; rm -rf /' is not a config"),
        ({"config": "x.yaml;rm -rf ~"}, "params.config: no config 'x.yaml;rm -rf ~' in"),
        ({"config": "escape.yaml"}, "params.config: no config 'escape.yaml' in"),
        ({"config": ".."}, "params.config: '..' is not a config file name"),
        ({"config": GOOD, "workers": True}, "params.workers: must be an integer from 1 to 64"),
        ({"config": GOOD, "workers": 65}, "params.workers: must be an integer from 1 to 64"),
        ({"config": GOOD, "mode": "ssh"}, "params.mode: must be 'local' or 'kubernetes'"),
        ({"config": GOOD, "n_trials": True}, "params.n_trials: must be a positive integer"),
    ],
    ids=[
        "parent_dir",
        "absolute_path_outside",
        "shell_metacharacters",
        "shell_metacharacters_no_slash",
        "symlink_out_of_the_folder",
        "dot_dot",
        "workers_true",
        "workers_65",
        "unknown_mode",
        "n_trials_true",
    ],
)
def test_the_plan_refuses_bad_params_in_one_line(
    params: dict[str, Any], message: str, config_dir: Path, tmp_path: Path
) -> None:
    from hpo_core.errors import HpoError
    from hpo_core.pipeline import plan_run

    if params.get("config") == "ABSOLUTE":
        params = {**params, "config": str(config_dir.parent / "outside.yaml")}
    with pytest.raises(HpoError) as caught:
        plan_run(params, run_id="manual__bad", home=tmp_path)
    text = str(caught.value)
    assert "\n" not in text and message in text, text
    if text.startswith("params.config"):
        assert str(config_dir) in text and GOOD in text  # where to look, and what to choose
