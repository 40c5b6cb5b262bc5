"""The Airflow UI as a person uses it, for tests/e2e and scripts/screenshots.py: Airflow 3 started
for real on loopback (api-server, scheduler, dag-processor; LocalExecutor on a SQLite metadata
database), headless Chromium driven by selenium, and the steps a person takes (log in, open a DAG,
fill the trigger form, open a run's graph and a task's log)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
USER = "sweeper"
T = TypeVar("T")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM or not CHROMEDRIVER:
        return "chromium and chromedriver are not installed (make system-deps installs them)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra has it)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """probe() until it returns something other than None (or False); fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


class Airflow:
    """Airflow on a free loopback port with its home, metadata database and logs under ``root``,
    the repository's dags/, the config folder ``configs`` and one SimpleAuthManager user whose
    password this class sets. ``env``: what the tasks see besides (HPO_HOME, tracking...)."""

    COMPONENTS = ("api-server", "scheduler", "dag-processor")

    def __init__(
        self,
        root: Path,
        *,
        configs: Path,
        env: Mapping[str, str] | None = None,
        dags: Path = REPO / "dags",
    ) -> None:
        self.root = root
        self.home = root / "airflow"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(12)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._token: str | None = None
        passwords = self.home / "passwords.json"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple."
            "simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            # INFO: what tasks print reaches their logs in the UI (tests/airflow_env.py sets
            # WARNING for the dag.test() runs of this process)
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # one parse of dags/ at start, then none: the test's DAG does not change, and
            # each parse costs a core for seconds
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            "SWEEPFLOW_CONFIG_DIR": str(configs),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            **(env or {}),
        }
        self.env.pop("HPO_STORAGE_URL", None)
        self._passwords = passwords

    def migrate(self, *, template: Path | None = None) -> None:
        """The metadata database: a copy of ``template`` (one already migrated) when given,
        else `airflow db migrate` (about 5 s)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._passwords.write_text(json.dumps({USER: self.password}))
        if template is not None and template.is_file():
            shutil.copyfile(template, self.home / "airflow.db")
            return
        self._run(["db", "migrate"], timeout=300)

    def _run(self, args: list[str], *, timeout: float) -> None:
        done = subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)}: {done.stderr[-3000:]}")

    def start(self) -> None:
        """Start the components (in the background: :meth:`wait_ready` waits for them)."""
        for name in self.COMPONENTS:
            args = (
                [name] if name != "api-server" else [name, "-H", "127.0.0.1", "-p", str(self.port)]
            )
            with open(self.home / f"{name}.log", "ab") as log:
                self._procs[name] = subprocess.Popen(
                    [str(BIN / "airflow"), *args],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=self.root,
                )

    def logs(self, lines: int = 40) -> str:
        """The components' last log lines (for a failure message)."""
        out = []
        for name in self.COMPONENTS:
            path = self.home / f"{name}.log"
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(out)

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited ({proc.returncode}):\n{self.logs()}")

    def wait_ready(self, dag_id: str, timeout: float = 120) -> None:
        """The API answers and ``dag_id`` is parsed (and unpaused)."""

        def parsed() -> bool | None:
            self._check_alive()
            with contextlib.suppress(OSError, urllib.error.HTTPError):
                return not self.api("GET", f"/api/v2/dags/{dag_id}")["is_paused"]
            return None

        wait_for(f"Airflow serving {dag_id}", parsed, timeout)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A call to Airflow's REST API as the test user (JSON in, JSON out)."""
        if self._token is None:
            self._token = self._request(
                "POST", "/auth/token", {"username": USER, "password": self.password}, None
            )["access_token"]
        return self._request(method, path, body, self._token)

    def _request(self, method: str, path: str, body: Any, token: str | None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read() or b"null")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        reply = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")
        runs: list[dict[str, Any]] = reply["dag_runs"]
        return runs

    def run_path(self, dag_id: str, run_id: str) -> str:
        """The run's page in the UI."""
        return f"/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}"

    def _run_api(self, dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        """The run's final state (success or failed), once it has one."""

        def final() -> str | None:
            self._check_alive()
            state: str = self.api("GET", self._run_api(dag_id, run_id))["state"]
            return state if state in ("success", "failed") else None

        return wait_for(f"run {run_id} of {dag_id} finishing", final, timeout, every=1)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Each task instance's state by ``task_id`` (``task_id[i]`` for mapped ones)."""
        reply = self.api("GET", self._run_api(dag_id, run_id) + "/taskInstances?limit=200")
        return {
            ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): ti["state"]
            for ti in reply["task_instances"]
        }

    def stop(self) -> None:
        """Kill every component with the processes it started (its session): the instance is
        thrown away with its folder, and a graceful scheduler shutdown takes seconds."""
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        self._procs.clear()


@contextlib.contextmanager
def chromium(*, width: int = 1440, height: int = 1000) -> Iterator[WebDriver]:
    """Headless Chromium (Debian's, with its chromedriver) through selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container: no user namespaces for Chromium's sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


class Pages:
    """Waits for what a React page renders: elements by CSS selector, text, buttons by label."""

    def __init__(self, driver: WebDriver, *, timeout: float = 60) -> None:
        self.driver = driver
        self.timeout = timeout

    def find(
        self, css: str, *, within: WebElement | None = None, visible: bool = True
    ) -> WebElement:
        """The first element matching ``css`` (and shown, unless ``visible`` is false), once
        the page has rendered it."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        root: Any = within or self.driver

        def rendered(_: Any) -> WebElement | None:
            found = root.find_elements("css selector", css)
            return next((e for e in found if not visible or e.is_displayed()), None)

        found: WebElement = WebDriverWait(
            self.driver, self.timeout, ignored_exceptions=(StaleElementReferenceException,)
        ).until(rendered)
        return found

    def text(self, css: str, containing: str) -> str:
        """The text of the first shown element matching ``css``, once it contains
        ``containing`` (found again each time: the UI re-renders as its data refresh)."""
        from selenium.common.exceptions import StaleElementReferenceException

        def shown() -> str | None:
            with contextlib.suppress(StaleElementReferenceException):
                found = str(self.find(css).text)
                return found if containing in found else None
            return None

        return wait_for(f"{containing!r} in {css}", shown, self.timeout)

    def button(self, text: str, *, within: WebElement | None = None) -> WebElement:
        """A visible button whose text is ``text``."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        root: Any = within or self.driver

        def shown(_: Any) -> WebElement | None:
            buttons = root.find_elements("css selector", "button")
            return next((b for b in buttons if b.is_displayed() and b.text == text), None)

        found: WebElement = WebDriverWait(
            self.driver, self.timeout, ignored_exceptions=(StaleElementReferenceException,)
        ).until(shown)
        return found


class AirflowPages(Pages):
    """What a person does in Airflow 3's UI (React), by the selectors that UI renders: form
    fields by their parameter name (``element_<param>``), dialogs and fields by their Chakra
    ``data-scope``/``data-part`` attributes, buttons by their labels."""

    def __init__(self, driver: WebDriver, airflow: Airflow, *, timeout: float = 60) -> None:
        super().__init__(driver, timeout=timeout)
        self.airflow = airflow

    def login(self) -> None:
        self.driver.get(self.airflow.url + "/")
        self.find("input[name=username]").send_keys(USER)
        self.find("input[name=password]").send_keys(self.airflow.password)
        self.button("Sign in").click()
        # the home page's navigation: the session cookie is set
        self.find("a[href='/dags'], button[aria-label='Browse']")

    def open_trigger_form(self, dag_id: str) -> WebElement:
        self.driver.get(f"{self.airflow.url}/dags/{dag_id}")
        self.find("button[aria-label='Trigger Dag']").click()
        form = self.find("[data-scope=dialog][data-part=content]")
        self.param(form, "config")  # the run parameters have rendered
        return form

    def param(self, form: WebElement, name: str) -> WebElement:
        """The form field of DAG parameter ``name`` (an enum's is a hidden input that holds the
        choice)."""
        return self.find(f"input[name=element_{name}]", within=form, visible=False)

    def choose(self, form: WebElement, name: str, option: str) -> None:
        """Pick ``option`` from the drop-down of an enum parameter."""
        field = self.param(form, name).find_element(
            "xpath", "./ancestor::*[@data-scope='field'][@data-part='root'][1]"
        )
        self.find("input[role=combobox]", within=field).click()
        options = [o for o in self.driver.find_elements("css selector", "[role=option]")]
        match = [o for o in options if o.is_displayed() and o.text == option]
        assert match, f"{name}: no option {option!r} in {[o.text for o in options if o.text]}"
        match[0].click()
        assert self.param(form, name).get_attribute("value") == option

    def fill(self, form: WebElement, name: str, text: str) -> str:
        """Type ``text`` into a parameter's field and leave it; returns what the field then
        holds (a number field clamps to its schema's bounds when left)."""
        from selenium.webdriver.common.keys import Keys

        box = self.param(form, name)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.BACKSPACE)
        box.send_keys(text)
        self.driver.execute_script("arguments[0].blur()", box)  # leave the field
        return str(self.param(form, name).get_attribute("value"))

    def switch(self, form: WebElement, name: str, on: bool) -> None:
        box = self.param(form, name)
        if box.is_selected() != on:
            field_id = box.get_attribute("id")
            self.find(f"label[for='{field_id}'][data-scope=switch]", within=form).click()
        assert self.param(form, name).is_selected() == on

    def trigger(self, form: WebElement, dag_id: str) -> str:
        """Press Trigger; returns the new run's id (the UI opens the run's page)."""
        self.button("Trigger", within=form).click()
        prefix = f"{self.airflow.url}/dags/{dag_id}/runs/"
        wait_for("the run's page", lambda: self.driver.current_url.startswith(prefix), self.timeout)
        return urllib.parse.unquote(self.driver.current_url[len(prefix) :].split("/")[0])

    def open_graph(self, dag_id: str, run_id: str) -> WebElement:
        """The run's graph view; returns the graph (React Flow) once its nodes are drawn."""
        self.driver.get(self.airflow.url + self.airflow.run_path(dag_id, run_id))
        self.find("button[aria-label='Show Graph (Press g)']").click()
        self.find(".react-flow__node[data-id=finish]")
        return self.find(".react-flow")

    def open_task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        """A task instance's log as the log view shows it, once ``Post Execute`` is there."""
        path = self.airflow.run_path(dag_id, run_id) + f"/tasks/{task_id}"
        if map_index >= 0:
            path += f"/mapped/{map_index}"
        self.driver.get(self.airflow.url + path)
        return self.text("[data-testid=virtualized-list]", "Post Execute")

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        """The run's final state, waited for through the REST API on a blank page: the UI's
        pages refresh themselves while a run goes on, a renderer busy on a shared CPU."""
        self.driver.get("about:blank")
        return self.airflow.wait_run(dag_id, run_id, timeout)


def fill_sweep_form(pages: AirflowPages, config: str, *, workers: int = 2) -> WebElement:
    """`hpo_sweep`'s form filled as a person on a CPU machine does, each choice made explicitly
    (not left to the form's defaults): the config from the drop-down, ``workers`` local workers,
    CPU allowed, no dry run, the smoke trial, a small free-disk minimum (test folders may be in
    memory). Returns the form, ready to trigger."""
    form = pages.open_trigger_form("hpo_sweep")
    pages.choose(form, "config", config)
    filled = pages.fill(form, "workers", str(workers))
    assert filled == str(workers), f"workers: the field holds {filled!r}"
    pages.choose(form, "mode", "local")
    pages.switch(form, "allow_cpu", True)
    pages.switch(form, "dry_run", False)
    pages.switch(form, "smoke", True)
    filled = pages.fill(form, "min_free_gb", "0.1")
    assert float(filled) == 0.1, f"min_free_gb: the field holds {filled!r}"
    return form


def trigger_sweep(pages: AirflowPages, config: str, *, workers: int = 2) -> str:
    """:func:`fill_sweep_form`, then Trigger; returns the run's id."""
    return pages.trigger(fill_sweep_form(pages, config, workers=workers), "hpo_sweep")


class MlflowPages(Pages):
    """What a person does in MLflow 3.17's UI (the tracking server's React app, hash routes):
    the experiment's runs table sorted by a metric with chosen columns, a registered model
    version's page, a logged model's page. ``url``: the server (`mlflow server` or `mlflow ui`).

    Two settings of that UI are per browser (local storage), not per experiment: the
    "GenAI | Model training" switch, which alone decides whether an experiment opens on its
    runs or on an (empty) GenAI overview (the ``workflowType`` URL parameter sets it for one
    page), and the assistant's side panel, open on a first visit. A fresh browser gets the
    model-training view and no panel here."""

    TREE_NODE = ".du-bois-light-tree-treenode"

    def __init__(self, driver: WebDriver, url: str, *, timeout: float = 60) -> None:
        super().__init__(driver, timeout=timeout)
        self.url = url.rstrip("/")
        self._prepared = False

    def open(self, route: str) -> None:
        """``route`` (``/experiments/1/runs?...``) in the app, once its content has rendered."""
        if not self._prepared:  # set on the server's origin, read when the app loads
            self.driver.get(self.url + "/health")
            self.driver.execute_script(
                "localStorage.setItem('mlflow.workflowType_v1', JSON.stringify(arguments[0]));"
                "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');",
                "machine_learning",
            )
            self._prepared = True
        self.driver.get(f"{self.url}/#{route}")

    def runs(
        self, experiment_id: str, metric: str, *, descending: bool, search: str = ""
    ) -> list[tuple[str, str]]:
        """The experiment's runs table (those matching ``search``, the search box's filter)
        sorted by ``metric`` in the "Sort" menu, with the metric's column shown: (run id, the
        metric's cell as shown) per row, top to bottom. Sorting by anything but the creation
        time lists nested runs flat, each ranked on its own."""
        query = urllib.parse.urlencode(
            {"workflowType": "machine_learning", "searchFilter": search},
            quote_via=urllib.parse.quote,
        )
        self.open(f"/experiments/{experiment_id}/runs?{query}")
        self.find(".ag-center-cols-container [row-id]")
        # each choice in the menu closes it: the column, then the direction
        for choice in (metric, "desc" if descending else "asc"):
            self.find("button[aria-label^='Sort:']").click()
            if choice == metric:
                self.find("input[placeholder=Search]").send_keys(metric)
            self.find(f"[data-testid='sort-select-{choice}']").click()
        wanted = (
            f"orderByKey={urllib.parse.quote(f'metrics.`{metric}`')}",
            f"orderByAsc={str(not descending).lower()}",
        )
        wait_for(
            f"the runs sorted by {metric}",
            lambda: all(w in self.driver.current_url for w in wanted),
            self.timeout,
        )
        self.columns(show=[metric])
        return self.rows(f"metrics.`{metric}`")

    def columns(self, *, show: Sequence[str] = (), hide: Sequence[str] = ()) -> None:
        """Tick (``show``) or untick (``hide``) columns in the "Columns" menu, found by the
        name it lists them under (a metric, a parameter, a tag key, ``Dataset``...)."""
        from selenium.webdriver.common.keys import Keys

        for name, on in [*((n, True) for n in show), *((n, False) for n in hide)]:
            self.find("[data-testid=column-selection-dropdown]").click()
            search = self.find("input[placeholder='Search columns']")
            search.send_keys(Keys.CONTROL, "a")
            search.send_keys(name)

            def node(name: str = name) -> WebElement | None:
                found = self.driver.find_elements("css selector", self.TREE_NODE)
                return next((n for n in found if n.text.strip() == name), None)

            entry = wait_for(f"column {name!r} in the Columns menu", node, self.timeout)
            if ("checkbox-checked" in str(entry.get_attribute("class"))) != on:
                entry.find_element("css selector", "[class*=tree-checkbox]").click()
            search.send_keys(Keys.ESCAPE)

    def rows(self, col_id: str) -> list[tuple[str, str]]:
        """(run id, the text of column ``col_id``) for each row of the runs table, top to
        bottom, once every shown row has that cell."""

        def read() -> list[tuple[str, str]] | None:
            rows = self.driver.find_elements("css selector", ".ag-center-cols-container [row-id]")
            cells = []
            for row in sorted(rows, key=lambda r: int(r.get_attribute("row-index") or 0)):
                found = row.find_elements("css selector", f"[col-id='{col_id}']")
                if not found:
                    return None
                cells.append((str(row.get_attribute("row-id")), str(found[0].text)))
            return cells or None

        return wait_for(f"the runs table's {col_id} column", read, self.timeout)

    def parallel_coordinates(self, experiment_id: str, run_ids: list[str]) -> dict[str, list[str]]:
        """The compare view of ``run_ids`` (what "Compare" opens for the runs ticked in the
        table): the parameters and metrics its parallel-coordinates plot picks by default."""
        query = urllib.parse.urlencode(
            {"runs": json.dumps(run_ids), "experiments": json.dumps([experiment_id])}
        )
        self.open(f"/compare-runs?{query}")
        picked: dict[str, list[str]] = {}
        for label in ("Parameters:", "Metrics:"):
            self.text("body", label)
            select = self.driver.find_element(
                "xpath", f"//div[text()='{label}']/following-sibling::div[1]"
            )
            items = select.find_elements("css selector", "[class$=selection-item-content]")
            picked[label.rstrip(":").lower()] = [str(i.text) for i in items]
        return picked

    def version_page(self, model: str, version: str) -> str:
        """A registered model version's page (its description opened): the page's text."""
        self.open(f"/models/{urllib.parse.quote(model)}/versions/{version}")
        self.text("body", f"Version {version}")
        return self.text("body", "Tags")
