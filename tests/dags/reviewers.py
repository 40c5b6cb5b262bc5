"""People answering a DAG run's human-in-the-loop requests while `dag.test()` waits for them: in
a thread of the test process, through Airflow's REST API (`hitlDetails`, what the UI's Required
Actions page calls) as users of the simple auth manager, on the metadata database the run uses;
a request nobody answers gets its default from the scheduler's own timeout sweep
(`dag.test()` runs no scheduler)."""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

USERS = "reviewer:admin,intruder:admin"  # AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS


class Reviewers:
    """Answers ``answers`` ({task id: option}) as ``reviewer``; before each answer, tries as
    ``intruder`` (not among the deployment's respondents) and with ``not_offered`` (an option
    the request does not offer), recording both status codes. Requests of ``left_to_time_out``
    are left until their timeout passes, then the scheduler's sweep applies the default."""

    def __init__(
        self,
        dag_id: str,
        answers: dict[str, str],
        *,
        not_offered: dict[str, str],
        left_to_time_out: set[str],
        timeout: float = 600,
    ) -> None:
        self.dag_id, self.answers, self.not_offered = dag_id, answers, not_offered
        self.left = set(left_to_time_out)
        self.requests: dict[str, dict[str, Any]] = {}  # task id -> the request as listed
        self.probes: dict[str, tuple[int, int]] = {}  # task id -> (intruder, not offered)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + timeout
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Reviewers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        try:
            self._serve()
        except Exception:
            self.errors.append(traceback.format_exc())

    def _serve(self) -> None:
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from fastapi.testclient import TestClient

        api = TestClient(create_app("core"))
        auth = {
            name: {
                "Authorization": "Bearer "
                + get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=name, role="admin"))
            }
            for name in ("reviewer", "intruder")
        }
        waiting = set(self.answers) | self.left
        while waiting and not self._stop.is_set() and time.monotonic() < self._deadline:
            listed = api.get(
                f"/api/v2/dags/{self.dag_id}/dagRuns/~/hitlDetails",
                params={"response_received": False},
                headers=auth["reviewer"],
            )
            listed.raise_for_status()
            for request in listed.json()["hitl_details"]:
                ti = request["task_instance"]
                task_id = ti["task_id"]
                if task_id not in waiting:
                    continue
                self.requests[task_id] = request
                url = (
                    f"/api/v2/dags/{self.dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/"
                    f"{task_id}/-1/hitlDetails"
                )
                if task_id in self.answers:

                    def answer(user: str, option: str, url: str = url) -> int:
                        body = {"chosen_options": [option]}
                        return api.patch(url, json=body, headers=auth[user]).status_code

                    self.probes[task_id] = (
                        answer("intruder", self.answers[task_id]),
                        answer("reviewer", self.not_offered[task_id]),
                    )
                    status = answer("reviewer", self.answers[task_id])
                    if status != 200:
                        self.errors.append(f"{task_id}: answer refused ({status})")
                    waiting.discard(task_id)
                else:  # left to time out: the scheduler's sweep once the timeout has passed
                    SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()
                    done = api.get(url, headers=auth["reviewer"]).json()
                    if done["response_received"]:
                        self.requests[task_id] = done
                        waiting.discard(task_id)
            time.sleep(0.5)
        if waiting:
            self.errors.append(f"never asked, or never answered: {sorted(waiting)}")
