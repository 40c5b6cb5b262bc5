"""People in the loop: a person approves a new champion before ``@champion`` moves, and may
override a gate's automatic decision (spec ``champions.approval`` and ``decision.override``).

This layer says what a person is asked (a :class:`Review`: subject, the evidence as markdown, the
options, the default and the timeout, all from the spec) and applies their answer (an
:class:`Answer`). The Airflow provider (:mod:`hpo_core.airflow.hitl`) puts the question to a
person with the standard provider's human-in-the-loop operators and hands the answer back.

Trust: the spec (a researcher's) decides whether a person is asked, how long the run waits and
what happens on timeout; the answer comes from a person Airflow lets respond, and can only be one
of the options offered (checked by Airflow when the answer is written and again here).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hpo_core.errors import HpoError

if TYPE_CHECKING:
    from hpo_core.pipeline.run import RunPlan
    from hpo_core.study import SweepStudy

__all__ = [
    "APPROVAL_OPTIONS",
    "ATTR_OVERRIDES",
    "OVERRIDE_OPTIONS",
    "Answer",
    "Review",
    "apply_override",
    "champion_review",
    "decide_champion",
    "gate_review",
    "run_link",
]

ATTR_OVERRIDES = "sweepflow.overrides"  # study user attr: every gate a person was asked about
APPROVE, REJECT = "Approve", "Reject"
AUTOMATIC, CONTINUE, STOP, EXTEND = "Automatic", "Continue", "Stop", "Extend budget"
APPROVAL_OPTIONS = (APPROVE, REJECT)
OVERRIDE_OPTIONS = (AUTOMATIC, CONTINUE, STOP, EXTEND)
_SPEC_DEFAULTS = {"approve": APPROVE, "reject": REJECT, "automatic": AUTOMATIC}
_SPEC_DEFAULTS |= {"continue": CONTINUE, "stop": STOP}


@dataclass(frozen=True)
class Review:
    """What a person is asked: ``options`` is what they may answer, ``default`` the answer
    taken when ``timeout`` seconds pass without one."""

    subject: str
    body: str  # markdown: the evidence
    options: list[str]
    default: str
    timeout: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """A person's answer, or the default taken on timeout (``by`` None)."""

    choice: str
    by: str | None = None  # who answered, "name (id)" as the deployment knows them
    at: str | None = None  # when, ISO 8601

    @property
    def who(self) -> str:
        return self.by or "nobody (the timeout default)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Answer:
        return cls(str(raw["choice"]), raw.get("by"), raw.get("at"))


def _offered(answer: Answer, options: list[str] | tuple[str, ...], what: str) -> None:
    if answer.choice not in options:
        raise HpoError(
            f"{what}: answer {answer.choice!r} is not one of the options offered "
            f"({', '.join(options)}); answer again with one of them"
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- the gate override -------------------------------------------------------------------------


def _extension(sweep: SweepStudy) -> tuple[int, int] | None:
    """(current budget, budget after "extend"), or None when extending is not offered: the spec
    offers none, or the budget is at the spec's ceiling (``decision.override.max_n_trials``)."""
    from hpo_core.study import ATTR_N_TRIALS

    override = sweep.spec.decision.override
    if override is None or not override.extend_trials or not override.max_n_trials:
        return None
    budget = int(sweep.study.user_attrs.get(ATTR_N_TRIALS, sweep.spec.n_trials))
    extended = min(budget + override.extend_trials, override.max_n_trials)
    return (budget, extended) if extended > budget else None


def gate_review(plan: RunPlan, segment: int, *, storage_url: str) -> Review | None:
    """What a person is asked at the gate after ``segment``: the rules' decision with its
    figures, and continue / stop / (bounded) extend; None when the spec asks nobody, there is
    no checkpoint here, or the study was stopped."""
    from hpo_core.pipeline.sweeps import judge
    from hpo_core.storage import open_storage
    from hpo_core.study import ATTR_STOP, load_study

    if plan.dry_run or segment >= len(plan.segments) - 1:
        return None
    handle = open_storage(storage_url, create=False)
    try:
        sweep = load_study(plan.study_name, handle)
        override = sweep.spec.decision.override
        if override is None or sweep.study.user_attrs.get(ATTR_STOP):
            return None
        decision = judge(sweep)
        extension = _extension(sweep)
    finally:
        handle.dispose()
    options = [AUTOMATIC, CONTINUE, STOP] + ([EXTEND] if extension else [])
    default = _SPEC_DEFAULTS[override.default]
    figures = "\n".join(f"| {k} | {_figure(v)} |" for k, v in decision.figures.items())
    lines = [
        f"**The rules say: {decision.action}** ({decision.rule}): {decision.message}",
        "",
        "| figure | value |",
        "|---|---|",
        figures,
        "",
        f"- **{AUTOMATIC}**: do what the rules say ({decision.action})",
        f"- **{CONTINUE}**: run the next segment (to {plan.segments[segment + 1]} trials)",
        f"- **{STOP}**: set the study's stop flag; champions are skipped",
    ]
    if extension:
        lines.append(
            f"- **{EXTEND}**: continue with the budget raised from {extension[0]} to "
            f"{extension[1]} trials (at most decision.override.max_n_trials, "
            f"{override.max_n_trials})"
        )
    lines += ["", f"No answer within {_span(override.timeout)}: **{default}**."]
    return Review(
        subject=f"Sweep {plan.study_name}, checkpoint {plan.segments[segment]}: the rules "
        f"say {decision.action}",
        body="\n".join(lines),
        options=options,
        default=default,
        timeout=override.timeout,
    )


def apply_override(sweep: SweepStudy, record: dict[str, Any], answer: Answer) -> dict[str, Any]:
    """The gate's ``record`` (the rules' decision) after a person's ``answer``: its action
    replaced (``Extend budget`` raises the budget, bounded by the spec, and continues), the
    rules' own decision kept under ``automatic``, and the answer stored in the study
    (:data:`ATTR_OVERRIDES`)."""
    from hpo_core.study import set_budget

    extension = _extension(sweep)
    retried = any(
        k.get("checkpoint") == record.get("checkpoint_target") and k.get("at") == answer.at
        for k in sweep.study.user_attrs.get(ATTR_OVERRIDES, [])
    )
    offered = [AUTOMATIC, CONTINUE, STOP] + ([EXTEND] if extension or retried else [])
    _offered(answer, offered, f"gate at checkpoint {record.get('checkpoint_target')}")
    automatic = {k: record[k] for k in ("action", "rule", "message")}
    action = {AUTOMATIC: automatic["action"], CONTINUE: "continue", STOP: "stop"}.get(
        answer.choice, "continue"
    )
    note: dict[str, Any] = {"choice": answer.choice, "by": answer.who, "at": answer.at or _now()}
    kept = list(sweep.study.user_attrs.get(ATTR_OVERRIDES, []))
    checkpoint = record.get("checkpoint_target")
    # a retried gate task brings the same answer (same time): its extension is applied once
    same = [k for k in kept if k.get("checkpoint") == checkpoint and k.get("at") == answer.at]
    if answer.choice == EXTEND and same and same[-1].get("budget") and answer.at:
        note["budget"] = same[-1]["budget"]
        record.setdefault("figures", {})["n_trials"] = note["budget"][1]
    elif answer.choice == EXTEND and extension:
        old, new = set_budget(sweep, extension[1])
        note["budget"] = [old, new]
        record.setdefault("figures", {})["n_trials"] = new
    if answer.choice != AUTOMATIC:
        what = f"budget {note['budget'][0]} -> {note['budget'][1]}" if "budget" in note else action
        record.update(
            action=action,
            rule="override",
            message=f"{answer.choice} ({what}) by {answer.who}; the rules said "
            f"{automatic['action']} ({automatic['rule']}): {automatic['message']}",
        )
    record["automatic"] = automatic
    record["override"] = note
    entry = {"segment": record.get("segment"), "checkpoint": checkpoint}
    entry |= note | {"automatic": automatic["action"], "action": action}
    # the last answer at each checkpoint (a retried gate, a re-triggered run)
    kept = [k for k in kept if k.get("checkpoint") != checkpoint] + [entry]
    sweep.study.set_user_attr(ATTR_OVERRIDES, kept)
    return record


# -- the champion approval ---------------------------------------------------------------------


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """A link to an MLflow run for a person to open: an http(s) server's page with no
    credential in it (user-info, query and fragment dropped), else the run id and the masked
    store URI."""
    from hpo_core.storage.urls import mask_url

    base = ui_base(tracking_uri)
    if base is not None:
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"run {run_id} in {mask_url(tracking_uri)}"


def ui_base(tracking_uri: str) -> str | None:
    """An http(s) tracking server's UI address with no credential in it (user-info, query and
    fragment dropped); None for a store that is not a server."""
    parts = urlsplit(tracking_uri)
    if parts.scheme in ("http", "https") and parts.hostname:
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        base = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
        return base + parts.path.rstrip("/")
    return None


def _read_summary(plan: RunPlan) -> dict[str, Any]:
    path = Path(plan.run_dir, "summary.json")
    if not path.is_file():
        raise HpoError(f"{plan.study_name}: no summary at {path}; the finish step runs first")
    summary: dict[str, Any] = json.loads(path.read_text())
    return summary


def champion_review(plan: RunPlan) -> Review | None:
    """What a person is asked before a new champion takes ``@champion``: new vs incumbent mean
    and spread over seeds, the promotion test, the configuration and links to the MLflow runs
    (from the finish step's summary); None when no move waits for approval."""
    summary = _read_summary(plan)
    champion = summary.get("champion") or {}
    if not champion.get("pending"):
        return None
    ask = champion["ask"]
    test = champion.get("promotion") or {}
    incumbent = champion.get("incumbent_version")
    lines = [
        f"**{champion['model']} version {champion['version']}** (trial {champion['best_trial']} "
        f"of sweep {summary['study']}) passed the promotion test and would take "
        f"`@champion`" + (f" from version {incumbent}." if incumbent else " (no champion yet)."),
        "",
        "| | mean | spread (sd) | seeds |",
        "|---|---|---|---|",
        f"| new | {_figure(champion['mean'])} | {_figure(champion.get('spread'))} | "
        f"{champion.get('seeds')} |",
    ]
    if incumbent:
        lines.append(
            f"| incumbent (version {incumbent}) | {_figure(test.get('incumbent_mean'))} | "
            f"{_figure(test.get('incumbent_sd'))} | {test.get('incumbent_n')} |"
        )
    if test:
        lines += [
            "",
            f"Test: {test.get('test')}: {test.get('reason')}; needed {test.get('needed')}"
            + (f"; statistic {_figure(test.get('statistic'))}" if test.get("statistic") else "")
            + (f", p {_figure(test.get('p'))}" if test.get("p") is not None else ""),
        ]
    lines += ["", "Configuration:", "", "```json", json.dumps(champion.get("params", {}),
              indent=2, sort_keys=True, default=str), "```", "", "MLflow runs:"]
    if champion.get("group_run"):  # older summaries have none
        group = champion["group_run"]
        lines.append(f"- mean over seeds: {_figure(champion.get('mean'))}: {group['link']}")
    lines += [f"- seed {r['seed']}: {_figure(r['value'])}: {r['link']}" for r in champion["runs"]]
    lines += [
        "",
        f"- **{APPROVE}**: `@champion` moves to version {champion['version']}",
        f"- **{REJECT}**: "
        + (f"version {incumbent} stays the champion" if incumbent else "no champion is set")
        + f"; version {champion['version']} stays registered",
        "",
        f"No answer within {_span(ask['timeout'])}: "
        f"**{_SPEC_DEFAULTS[ask['default']]}**. Report: {summary['report']}",
    ]
    return Review(
        subject=f"Approve {champion['model']} version {champion['version']} as @champion?",
        body="\n".join(lines),
        options=list(APPROVAL_OPTIONS),
        default=_SPEC_DEFAULTS[ask["default"]],
        timeout=float(ask["timeout"]),
    )


def decide_champion(
    plan: RunPlan, answer: Answer, *, storage_url: str, tracking_uri: str | None
) -> dict[str, Any]:
    """Apply a person's answer to a champion waiting for approval: approve moves ``@champion``
    (if it is still where it was when they were asked), reject keeps the incumbent. The answer
    goes into the summary (json and markdown), the model version's and the parent run's tags.
    Safe to retry."""
    from hpo_core.champions import approve_champion, record_approval
    from hpo_core.files import write_atomic
    from hpo_core.pipeline.run import _summary_markdown
    from hpo_core.storage import open_storage
    from hpo_core.tracking import Tracker

    _offered(answer, APPROVAL_OPTIONS, "champion approval")
    summary = _read_summary(plan)
    champion = summary.get("champion") or {}
    if not champion.get("pending"):
        raise HpoError(f"{plan.study_name}: no champion waits for approval in this run")
    model, version = champion["model"], str(champion["version"])
    tracker = Tracker(tracking_uri)
    moved = False
    if answer.choice == APPROVE:
        handle = open_storage(storage_url, create=False)
        try:
            moved = approve_champion(
                tracker.client,
                model,
                version,
                incumbent_version=champion.get("incumbent_version"),
                lock=handle.study_lock,
            )
        finally:
            handle.dispose()
        outcome = (
            "alias moved"
            if moved
            else "alias kept: @champion moved to another version since the request, so the "
            "evidence no longer holds; run the finish step again to compare"
        )
    else:
        outcome = "alias kept" + (
            f" on version {champion['incumbent_version']}"
            if champion.get("incumbent_version")
            else ""
        )
    done = "approved" if answer.choice == APPROVE else "rejected"
    verdict = f"{done} by {answer.who} at {answer.at or _now()}: {outcome}"
    champion |= {
        "pending": False,
        "promoted": moved,
        "approval": answer.as_dict() | {"outcome": outcome},
        "message": f"{champion['message'].split(': awaiting')[0]}: {verdict}",
    }
    # the version said "pending" (tags and description) since it was registered: now the answer
    record_approval(tracker.client, model, version, verdict, champion["message"])
    if champion.get("parent_run"):
        tracker.client.set_tag(champion["parent_run"], "sweepflow.champion_approval", verdict)
        tracker.client.set_tag(
            champion["parent_run"], "sweepflow.champion_decision", champion["message"]
        )
    summary["champion"] = champion
    run_dir = Path(plan.run_dir)
    write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    write_atomic(run_dir / "summary.md", _summary_markdown(summary))
    return summary


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
