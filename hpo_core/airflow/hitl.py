"""People in the loop, with the standard provider's human-in-the-loop operator: the DAG asks a
person and waits (Airflow 3.3: the task waits in ``awaiting_input``; the Required Actions page
of the UI, or the REST API's ``hitlDetails``, takes the answer).

What is asked comes from ``hpo_core.pipeline`` at run time (:func:`~hpo_core.pipeline.gate_review`,
:func:`~hpo_core.pipeline.champion_review`): the spec says whether to ask, how long to wait and
what the default is. A run whose spec asks nobody skips the task. The options offered are the
review's, a subset of those declared when the DAG is parsed; Airflow refuses any other answer.

Who may answer: any user Airflow authorises to respond on the DAG (its auth manager's
human-in-the-loop permission), or, when the deployment sets the Airflow Variable
``sweepflow_respondents`` (comma-separated user ids), only those users: the deployment names
them, not the spec (a researcher does not pick who approves their own champion).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk.execution_time.hitl import HITLUser

from hpo_core.pipeline.review import APPROVAL_OPTIONS, OVERRIDE_OPTIONS

__all__ = [
    "RESPONDENTS_VARIABLE",
    "ChampionApprovalOperator",
    "GateOverrideOperator",
    "respondents",
]

RESPONDENTS_VARIABLE = "sweepflow_respondents"


def respondents() -> list[HITLUser] | None:
    """The users the deployment lets answer (Variable ``sweepflow_respondents``), or None: any
    user Airflow authorises on the DAG."""
    from airflow.sdk import Variable

    raw = Variable.get(RESPONDENTS_VARIABLE, default=None)
    ids = [part.strip() for part in str(raw or "").split(",") if part.strip()]
    return [HITLUser(id=i, name=i) for i in ids] or None


class _SweepReview(HITLOperator):
    """A question the pipeline writes at run time from the run's plan (the ``plan`` task's
    XCom); the answer comes back as an ``Answer`` dict (choice, who, when) for the next task."""

    all_options: tuple[str, ...] = ()
    nothing_to_ask = "nothing to ask"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            subject="(written when the task runs)",
            options=list(self.all_options),
            **kwargs,
        )

    def review(self, plan: Any) -> Any:  # a Review, or None: nothing to ask
        raise NotImplementedError

    def execute(self, context: Any) -> Any:
        from hpo_core.pipeline import RunPlan

        plan = RunPlan.from_dict(context["ti"].xcom_pull(task_ids="plan"))
        asked = self.review(plan)
        if asked is None:
            raise AirflowSkipException(self.nothing_to_ask)
        # narrowed to what this run offers: Airflow stores these and refuses any other answer
        self.options, self.defaults = list(asked.options), [asked.default]
        self.subject, self.body = asked.subject, asked.body
        self.response_timeout = timedelta(seconds=asked.timeout)
        self.assigned_users = respondents()
        self.log.info("%s\n\n%s", asked.subject, asked.body)
        self._announce(context, plan, asked)
        return super().execute(context)

    def _announce(self, context: Any, plan: Any, asked: Any) -> None:
        """Tell the people who may answer (the ``hpo_alerts`` connection) that a run waits."""
        from hpo_core.airflow.notifications import alert

        try:  # the Required Actions page, when the deployment sets [api] base_url
            where = self.generate_link_to_ui_from_context(context=context)
        except ValueError:
            where = f"Required Actions of run {context['run_id']} in Airflow"
        alert(
            f"sweepflow: waiting for a person: {asked.subject}",
            f"Task {self.task_id} of run {context['run_id']} waits for an answer "
            f"({', '.join(asked.options)}) until {int(asked.timeout)} s have passed, then takes "
            f"{asked.default}. Answer at: {where}",
            run_dir=plan.run_dir,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from hpo_core.pipeline import Answer

        done = super().execute_complete(context, event)
        user = done.get("responded_by_user")
        by = f"{user['name']} ({user['id']})" if user else None
        at = done.get("responded_at")
        answer = Answer(
            done["chosen_options"][0], by, at.isoformat() if hasattr(at, "isoformat") else at
        )
        self.log.info("answer: %s by %s", answer.choice, answer.who)
        return answer.as_dict()


class GateOverrideOperator(_SweepReview):
    """At a checkpoint (spec ``decision.override``): the rules' decision with its figures; a
    person keeps it, continues, stops, or extends the budget within the spec's ceiling."""

    all_options = OVERRIDE_OPTIONS
    nothing_to_ask = "no override asked here (decision.override unset, no checkpoint, or stopped)"

    def __init__(self, *, segment: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.segment = segment

    def review(self, plan: Any) -> Any:
        from hpo_core.airflow.hooks import storage_url
        from hpo_core.pipeline import gate_review

        return gate_review(plan, self.segment, storage_url=storage_url())


class ChampionApprovalOperator(_SweepReview):
    """Before ``@champion`` moves (spec ``champions.approval.required``): the new champion's
    evidence against the incumbent's; a person approves or rejects."""

    all_options = APPROVAL_OPTIONS
    nothing_to_ask = "no champion waits for approval (champions.approval off, or no move)"

    def review(self, plan: Any) -> Any:
        from hpo_core.pipeline import champion_review

        return champion_review(plan)
