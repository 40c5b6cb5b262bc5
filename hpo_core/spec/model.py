"""The sweep spec schema: what a sweep YAML file may say, checked when it is built.

The format is the one the user already writes by hand (``fixed:`` and ``param_ranges:``), with
sections added for what a product needs: sampler, pruner, objective, data, decision and worker.
Every check says the broken invariant with the values and the fix, in the way
``optuna.distributions`` does.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_CHOICES",
    "MAX_TRIALS",
    "MAX_WAIT_SECONDS",
    "PRUNER_NAMES",
    "SAMPLER_NAMES",
    "AnalysisSpec",
    "ApprovalSpec",
    "ChampionsSpec",
    "DecisionSpec",
    "HardLimit",
    "MetricsSpec",
    "NextSpec",
    "OverrideSpec",
    "ParamSpec",
    "ParamType",
    "PrunerSpec",
    "RefineSpec",
    "SamplerSpec",
    "SweepSpec",
    "WarmStartSpec",
    "WorkerSpec",
    "cross_check",
]

ParamType = Literal["float", "int", "categorical", "bool"]
Scalar = bool | int | float | str | None
# Optuna records categorical choices as JSON scalars; anything else cannot round-trip.
_SCALAR_TYPES = (bool, int, float, str, type(None))
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,119}$")
_OBJECTIVE_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Parameter names become CSV columns, markdown cells and MLflow param keys: identifiers only.
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_TRIALS = 10**7  # n_trials; TPE alone would take weeks to propose that many
MAX_CHOICES = 10_000  # values of one categorical parameter
MAX_GENERATIONS = 20  # next.max_generations: sweeps in one automatic chain


def _param_name(value: str) -> str:
    if not _PARAM_NAME.match(value):
        fixed = re.sub(r"[^A-Za-z0-9_]", "_", value)[:64] or "x"
        fixed = fixed if re.match(r"[A-Za-z_]", fixed) else f"_{fixed}"[:64]
        # no suggestion made from a URL: it would carry a password past the masking of URLs
        example = ", e.g. {fixed}" if "://" not in value else ""
        raise PydanticCustomError(
            "param_name",
            "is not a parameter name: use up to 64 letters, digits and '_', not starting with "
            "a digit" + example,
            {"fixed": fixed},
        )
    return value


ParamName = Annotated[str, AfterValidator(_param_name)]


class FieldProblems(ValueError):
    """Problems found by a model-level check, each tied to one sub-field.

    Pydantic reports a model validator's error at the model's own location; the loader appends
    ``field`` to that location so every line names the exact field path.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Optuna's samplers and pruners by name. Their classes live in hpo_core.study.search; a spec may
# also name a class of its own, `package.module:Class`, or one of a vendored OptunaHub package,
# `optunahub:<category>/<name>:Class` (allowed only where the deployment allows it).
SAMPLER_NAMES = ("tpe", "random", "cmaes", "qmc", "gp", "nsga2")
PRUNER_NAMES = ("hyperband", "median", "none")
_CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_HUB_PATH = re.compile(r"^optunahub:[a-z0-9_]+/[A-Za-z0-9_]+:[A-Za-z_]\w*$")


def _search_type(names: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if value in names or _CLASS_PATH.match(value) or _HUB_PATH.match(value):
            return value
        close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
        raise PydanticCustomError(
            "search_type",
            "must be one of {names}, `package.module:Class` or "
            "`optunahub:<category>/<name>:Class`, but got {value}{hint}",
            {
                "names": ", ".join(repr(n) for n in names),
                "value": repr(value)[:80],
                "hint": f" (did you mean {close[0]!r}?)" if close else "",
            },
        )

    return AfterValidator(check)


# keyword arguments for the class beyond what the section's own fields set; checked against the
# class's signature when the spec is checked (hpo_core.study.search), not here: that imports it
SearchOptions = dict[Annotated[str, Field(pattern=r"^[A-Za-z_]\w*$")], Any]


class SamplerSpec(_Section):
    """How Optuna proposes parameters."""

    # tpe learns from finished trials; random does not; cmaes, gp, qmc, nsga2: Optuna's others
    type: Annotated[str, _search_type(SAMPLER_NAMES)] = "tpe"
    # fixes the proposals for a given trial order; numpy (Optuna's samplers) takes 0 to 2**32 - 1
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    # random trials before the model takes over (tpe, cmaes, gp; the others have no model)
    n_startup_trials: Annotated[int, Field(ge=0)] = 10
    multivariate: bool = True  # model parameters jointly (TPE); better for correlated params
    constant_liar: bool = True  # keeps parallel workers from proposing the same point (TPE)
    options: SearchOptions = {}  # more keyword arguments of the sampler's class

    @model_validator(mode="after")
    def _own_class_takes_options(self) -> SamplerSpec:
        _options_only(self, SAMPLER_NAMES, {"n_startup_trials", "multivariate", "constant_liar"})
        return self

    @property
    def plain(self) -> bool:
        """A built-in without options: nothing to import or check against a signature."""
        return self.type in SAMPLER_NAMES and not self.options


class PrunerSpec(_Section):
    """How unpromising trials are stopped early (seed 002: Hyperband 3 / 20 / 3)."""

    type: Annotated[str, _search_type(PRUNER_NAMES)] = "hyperband"
    min_resource: Annotated[int, Field(ge=1)] = 1  # hyperband: epochs before a trial can be pruned
    max_resource: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"  # hyperband: epochs
    reduction_factor: Annotated[int, Field(ge=2)] = 3  # hyperband: keep 1/reduction_factor
    n_startup_trials: Annotated[int, Field(ge=0)] = 5  # median: trials before pruning starts
    n_warmup_steps: Annotated[int, Field(ge=0)] = 0  # median: steps before a trial can be pruned
    options: SearchOptions = {}  # more keyword arguments of the pruner's class

    @property
    def plain(self) -> bool:
        """A built-in without options: nothing to import or check against a signature."""
        return self.type in PRUNER_NAMES and not self.options

    @model_validator(mode="after")
    def _resources_ordered(self) -> PrunerSpec:
        _options_only(self, PRUNER_NAMES, set(type(self).model_fields) - {"type", "options"})
        if isinstance(self.max_resource, int) and self.max_resource < self.min_resource:
            raise FieldProblems(
                [
                    (
                        "max_resource",
                        "`min_resource <= max_resource` must hold, but got "
                        f"(min_resource={self.min_resource}, max_resource={self.max_resource}); "
                        "raise max_resource to the number of epochs a trial runs",
                    )
                ]
            )
        return self


def _options_only(section: Any, names: tuple[str, ...], fields: set[str]) -> None:
    """``options`` never repeats a field of the section; a class of the spec's own gets only
    ``options`` (and the sampler's ``seed``): the other fields configure Optuna's built-ins and
    would be dropped silently."""
    kind = "sampler" if names is SAMPLER_NAMES else "pruner"
    problems = [
        (f"options.{key}", f"is a field of {kind}: set `{kind}.{key}` instead")
        for key in sorted(set(section.options) & {*fields, "seed", "type", "options"})
    ]
    if section.type not in names:
        problems += [
            (
                name,
                f"configures Optuna's built-in {kind}s, not {section.type}; pass it in "
                "`options:` if that class takes it",
            )
            for name in sorted(fields & section.model_fields_set)
        ]
    if problems:
        raise FieldProblems(problems)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WAIT_SECONDS = 7 * 86400  # a person's answer: a week at most (the run holds its slot)


def _duration(value: Any) -> float:
    """Seconds from a number or a text such as ``90s``, ``30m``, ``24h``, ``7d``."""
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    found = _DURATION.match(text) if isinstance(text, str) else None
    seconds = float(found[1]) * _UNIT_SECONDS[found[2]] if found else None
    if seconds is None or not 1 <= seconds <= MAX_WAIT_SECONDS:
        raise PydanticCustomError(
            "duration",
            "must be a duration from 1s to 7d such as 90s, 30m, 24h or 7d (a bare number is "
            "seconds), but got {value}",
            {"value": repr(value)},
        )
    return seconds


# a wait for a person, in seconds (written 90s, 30m, 24h or 7d)
Duration = Annotated[float, BeforeValidator(_duration)]


class OverrideSpec(_Section):
    """A person may override a gate's automatic decision (Airflow's human-in-the-loop): the DAG
    shows the decision with its figures and waits for continue, stop or (when offered) a bounded
    budget extension; the choice and who made it are recorded in the study and the summary."""

    timeout: Duration = 3600.0  # how long the gate waits for an answer; then `default` applies
    default: Literal["automatic", "continue", "stop"] = "automatic"  # the answer on timeout
    # "extend" adds this many trials to the budget (None: not offered) ...
    extend_trials: Annotated[int, Field(ge=1, le=MAX_TRIALS)] | None = None
    # ... never taking the study's budget above this (required with extend_trials)
    max_n_trials: Annotated[int, Field(ge=1, le=MAX_TRIALS)] | None = None

    @model_validator(mode="after")
    def _bounded(self) -> OverrideSpec:
        if self.extend_trials is not None and self.max_n_trials is None:
            raise FieldProblems(
                [
                    (
                        "max_n_trials",
                        "required with extend_trials: an extension must have a ceiling; set "
                        "the largest budget a person may extend the sweep to (e.g. 2x n_trials)",
                    )
                ]
            )
        return self


class DecisionSpec(_Section):
    """Mid-sweep decision rules (seed 003: stop if best < 0.26, on track if > 0.30)."""

    checkpoints: list[Annotated[int, Field(ge=1)]] = []  # finished-trial counts to decide at
    stop_if_best_worse_than: float | None = None  # stop the sweep when best is still worse
    on_track_if_best_better_than: float | None = None  # report "on track" above this
    max_failure_rate: Annotated[float, Field(gt=0, le=1)] = 0.2  # alert and stop above this
    min_trials_for_failure_rate: Annotated[int, Field(ge=1)] = 10  # don't judge a rate on fewer
    # alert and stop when more than this share of ended trials were lost to the infrastructure
    # (dead, preempted or evicted workers; they are re-queued, and not in the failure rate);
    # None: never
    max_lost_rate: Annotated[float, Field(gt=0, le=1)] | None = 0.5
    target: float | None = None  # the sweep is done once the best reaches this
    plateau_trials: Annotated[int, Field(ge=1)] | None = None  # stop: no new best in this many
    # done at a checkpoint once Optuna's regret bound (a Gaussian process's high-probability
    # bound on how much better than the best the optimum is) falls below this, in metric units;
    # needs torch and 20 completed trials; None: never
    regret_bound: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    # at each checkpoint that continues, run the best configuration so far again with this many
    # other seeds (`seed` = fixed.seed + 1..k), so the analysis measures the seed noise; they are
    # trials like the others and count against n_trials (0: off)
    noise_probe: Annotated[int, Field(ge=0, le=100)] = 0
    # a person may override the decision at each checkpoint (None: the rules decide alone)
    override: OverrideSpec | None = None

    @field_validator("checkpoints")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if value != sorted(set(value)):
            raise PydanticCustomError(
                "checkpoints_order",
                "must be strictly increasing trial counts, but got {value}; "
                "sort them and drop repeats",
                {"value": value},
            )
        return value


class AnalysisSpec(_Section):
    """How a sweep is read (seed 000's analysis): elites, boundaries, power."""

    elite_quantile: Annotated[float, Field(gt=0, le=0.5)] = 0.25  # top share of completed trials
    boundary_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.1  # zone at each bound
    # no longer decides a boundary hit (that needs a corrected trend, docs/analysis.md); kept so
    # that older specs load
    boundary_share: Annotated[float, Field(gt=0, le=1)] = 0.34
    min_group_trials: Annotated[int, Field(ge=2)] = 5  # fewer per group = underpowered
    importance: Literal["ped_anova", "fanova", "none"] = "ped_anova"
    chance_headroom_flag: Annotated[float, Field(gt=0, lt=1)] = 0.25  # best-chance over 1-chance
    compare: list[str] = []  # categorical params compared group by group, e.g. [budget, tier]
    # the objective's seed noise (sd over seeds of one configuration), used when the study
    # measured none (no decision.noise_probe, no champions over 2+ seeds)
    noise_sd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None


class MetricsSpec(_Section):
    """Which figures judge a model and in what order (seed 004: precision first, recall second,
    AUC for ranking only, never F1 or accuracy). Names are the trial's recorded metrics."""

    optimize: str | None = None  # what the objective returns and Optuna ranks by; default metric
    priority: list[str] = []  # reported metrics, most important first
    forbidden: list[str] = []  # never computed, shown, logged or written (e.g. f1, accuracy)
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5  # decision threshold on the score
    top_percents: list[Annotated[float, Field(gt=0, le=100)]] = [1.0, 5.0, 10.0]  # top-k% cuts
    required_precision: Annotated[float, Field(gt=0, le=1)] | None = None  # thresholds target
    min_predicted: Annotated[int, Field(ge=1)] = 10  # fewer predicted positives: no precision
    thresholds_top: Annotated[int, Field(ge=1)] = 5  # models in the thresholds step

    def is_forbidden(self, name: str) -> bool:
        """``val_accuracy`` and ``f1_score`` are forbidden by ``accuracy`` and ``f1``."""
        words = set(re.split(r"[^a-z0-9]+", name.lower()))
        return any(f.lower() == name.lower() or f.lower() in words for f in self.forbidden)

    def ordered(self, names: list[str]) -> list[str]:
        """``names`` without forbidden ones, in priority order, the rest after in given order."""
        allowed = [n for n in names if not self.is_forbidden(n)]
        first = [p for p in self.priority if p in allowed]
        return first + [n for n in allowed if n not in first]


class HardLimit(_Section):
    low: float | None = None  # a bound may never be expanded below this
    high: float | None = None  # nor above this


class RefineSpec(_Section):
    """Rules that turn a sweep into the next search space (seed 001's defaults)."""

    # Every p below is Benjamini-Hochberg adjusted over all tests of the analysis (a q-value).
    fix_min_convergence: Annotated[float, Field(gt=0, le=1)] = 1.0  # elite share of one value
    fix_min_effect: Annotated[float, Field(ge=0)] = 0.05  # a fix: relative difference at least
    fix_max_p: Annotated[float, Field(gt=0, le=1)] = 0.10  # a fix or dropped choice: p below
    narrow_max_p: Annotated[float, Field(gt=0, le=1)] = 0.05  # a narrowing: p of trend or peak
    # no longer narrows on its own (importance has no test); kept so that older specs load
    narrow_min_importance: Annotated[float, Field(gt=0, le=1)] = 0.2
    narrow_margin: Annotated[float, Field(ge=0)] = 0.25  # of the elite span, added each side
    # grow a hit bound by this x the range, by at most a decade (log) or one range width
    expand_factor: Annotated[float, Field(gt=0)] = 0.5
    expand_max_p: Annotated[float, Field(gt=0, le=1)] = 0.05  # an expansion: p of the trend
    min_effect: Annotated[float, Field(ge=0)] = 0.05  # every rule: relative effect at least
    min_arm_trials: Annotated[int, Field(ge=2)] = 5  # every rule: trials per group (x2 numeric)
    arm_floor: Annotated[float, Field(gt=0, lt=0.5)] = 0.25  # weakest arm keeps at least this
    trials_per_param: Annotated[int, Field(ge=1)] = 8  # next n_trials ~ this x searched params
    hard_limits: dict[str, HardLimit] = {}  # e.g. {depth: {low: 1, high: 24}}


class ApprovalSpec(_Section):
    """A person approves before ``@champion`` moves (Airflow's human-in-the-loop): the champion
    is trained and registered, and the DAG shows the evidence and waits."""

    required: bool = False  # off: the alias moves on the promotion test alone, as before
    timeout: Duration = 86400.0  # how long the DAG waits for an answer; then `default` applies
    default: Literal["approve", "reject"] = "reject"  # the answer on timeout


class ChampionsSpec(_Section):
    """Retraining the best configurations to convergence (seed 003: top 3, 100 epochs)."""

    top_k: Annotated[int, Field(ge=1)] = 3  # configurations to retrain
    epochs: Annotated[int, Field(ge=1)] = 100
    early_stop_patience: Annotated[int, Field(ge=1)] | None = 10
    seeds: Annotated[int, Field(ge=1)] = 1  # runs per configuration; the mean decides
    model_name: str | None = None  # registered model; default: the study family's name
    trainer: str | None = None  # `package.module:function`; default: the objective's own
    # @champion moves only when the new mean beats the incumbent's by more than the noise:
    # welch (one-sided Welch t-test over seeds, p < promote_alpha) or k_se (the difference
    # above promote_k standard errors)
    promote_test: Literal["welch", "k_se"] = "welch"
    promote_alpha: Annotated[float, Field(gt=0, le=0.5)] = 0.05
    promote_k: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 2.0
    # a person approves the move of @champion (the DAG waits; `hpo champions` is run by one)
    approval: ApprovalSpec = ApprovalSpec()


class WorkerSpec(_Section):
    """How workers run trials; the defaults suit GPU trials of minutes to hours."""

    heartbeat_interval: Annotated[int, Field(ge=1)] = 30  # seconds between liveness records
    grace_period: Annotated[int, Field(ge=1)] | None = None  # default 2 * heartbeat_interval
    max_failed_trials: Annotated[int, Field(ge=1)] | None = None  # stop after this many failures
    poll_interval: Annotated[float, Field(gt=0)] = 2.0  # seconds between budget checks when full
    stale_trial_retries: Annotated[int, Field(ge=0)] = (
        1  # re-queue a dead worker's trial this often
    )
    # epochs between checkpoints of a trial's training state: a trial lost to a preemption or a
    # dead worker resumes from its last one (None: no checkpoints; a lost trial starts again)
    checkpoint_every: Annotated[int, Field(ge=1)] | None = 1
    # the folder of the checkpoints, one every worker can write (None: $HPO_HOME/artifacts; in
    # pods a mounted volume); one sub-folder per study
    checkpoint_dir: Annotated[str, Field(min_length=1)] | None = None
    # when a trial ends its checkpoint is deleted, unless it is one of the best this many
    # complete trials (their final states, for a closer look or more training)
    keep_checkpoints: Annotated[int, Field(ge=0)] = 0
    # seconds after which a worker starts no new trial (None: no limit); a worker pod also gets
    # an activeDeadlineSeconds of this plus the deployment's drain allowance
    timeout: Annotated[float, Field(gt=0)] | None = None
    # a worker pod's terminationGracePeriodSeconds: the time between SIGTERM and SIGKILL in which
    # the running trial saves its checkpoint (None: the deployment's default, 120 s; at most the
    # hpo_kubernetes connection's max_termination_grace_seconds)
    termination_grace_seconds: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _grace_covers_heartbeat(self) -> WorkerSpec:
        if self.grace_period is not None and self.grace_period <= self.heartbeat_interval:
            raise FieldProblems(
                [
                    (
                        "grace_period",
                        "`grace_period > heartbeat_interval` must hold, but got "
                        f"(grace_period={self.grace_period}, "
                        f"heartbeat_interval={self.heartbeat_interval}); a live worker would "
                        "be failed between two heartbeats, so raise grace_period",
                    )
                ]
            )
        return self


class WarmStartSpec(_Section):
    """Start a new study with the finished trials of an earlier one that fit its space
    (``hpo_core.study.warm``); ``hpo refine`` writes it into the next spec."""

    # the earlier study, in the same storage as this one (a URL never lives in a config)
    study: str

    @field_validator("study")
    @classmethod
    def _study_name_ok(cls, value: str) -> str:
        return SweepSpec._study_name_ok(value)  # the rule of a study_name


class NextSpec(_Section):
    """Generations: with ``auto``, the refined next spec a finished sweep writes starts the next
    sweep by itself (the config's ``hpo_next__<file>`` DAG, scheduled on the family's refined-spec
    asset), each with the budget ``n_trials`` refine gave it, until ``max_generations``."""

    auto: bool = False  # run the refined next spec when a sweep of this family finishes
    # sweeps in the chain, this config's own first one included: 3 = this sweep and two refined
    max_generations: int = 3

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise PydanticCustomError(
                "next_form",
                "must be a mapping such as `next: {example}`, but got {value}",
                {"example": "{auto: true, max_generations: 3}", "value": repr(data)[:60]},
            )
        return data

    @field_validator("max_generations")
    @classmethod
    def _limit(cls, value: int) -> int:
        if not 2 <= value <= MAX_GENERATIONS:
            raise PydanticCustomError(
                "max_generations",
                "must be from 2 (this sweep and one refined) to {limit}, but got {value}; "
                "a chain never runs unbounded, so give the number of sweeps to run",
                {"limit": MAX_GENERATIONS, "value": value},
            )
        return value


class ParamSpec(_Section):
    """One searched parameter: a float or int range, a categorical, or a bool."""

    type: ParamType  # float | int | categorical | bool
    low: float | None = None  # float, int: lower bound (inclusive)
    high: float | None = None  # float, int: upper bound (inclusive)
    log: bool = False  # float, int: sample uniformly in log space
    step: float | None = None  # float, int: grid step; must divide high - low
    choices: list[Any] | None = None  # categorical: the values to choose from
    weights: list[float] | None = None  # categorical: sampling weights, one per choice
    when: dict[str, Any] | None = None  # sampled only when these parameters have these values
    description: str | None = None  # free text shown in summaries

    @model_validator(mode="after")
    def _check_by_type(self) -> ParamSpec:
        problems: list[tuple[str, str]] = []
        if self.type in ("float", "int"):
            problems += self._check_range()
            for field in ("choices", "weights"):
                if getattr(self, field) is not None:
                    problems.append(
                        (field, f"not allowed for type {self.type}; remove it or use categorical")
                    )
        else:
            for field in ("low", "high", "step"):
                if getattr(self, field) is not None:
                    problems.append(
                        (field, f"not allowed for type {self.type}; remove it or use float/int")
                    )
            if self.log:
                problems.append(("log", f"not allowed for type {self.type}; remove it"))
            if self.type == "categorical":
                problems += self._check_choices()
            elif self.choices is not None or self.weights is not None:
                field = "choices" if self.choices is not None else "weights"
                problems.append(
                    (field, "not allowed for type bool (choices are true/false); use categorical")
                )
        if self.when is not None and not self.when:
            problems.append(("when", "is empty; give `parameter: value` pairs or remove it"))
        if problems:
            raise FieldProblems(problems)
        return self

    def _check_range(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for field in ("low", "high"):
            if getattr(self, field) is None:
                problems.append((field, f"required for type {self.type}; add `{field}: <number>`"))
        if problems:
            return problems
        low, high = self.low, self.high
        assert low is not None and high is not None
        if not (math.isfinite(low) and math.isfinite(high)):
            return [("low", f"bounds must be finite, but got (low={low}, high={high})")]
        if self.step is not None and not math.isfinite(self.step):
            return [("step", f"must be a finite number, but got {self.step}")]
        if self.type == "int":
            for field, value in (("low", low), ("high", high)):
                if value != int(value):
                    problems.append(
                        (
                            field,
                            f"must be a whole number for type int, but got {value}; "
                            "use type float or round it",
                        )
                    )
            if self.step is not None and (self.step != int(self.step) or self.step < 1):
                problems.append(
                    ("step", f"must be a whole number >= 1 for type int, but got {self.step}")
                )
        if low > high:
            problems.append(
                (
                    "high",
                    f"`low <= high` must hold, but got (low={_fmt(low)}, high={_fmt(high)}); "
                    "swap the bounds",
                )
            )
        if self.log:
            too_low = low < 1 if self.type == "int" else low <= 0
            if too_low:
                need = "low >= 1" if self.type == "int" else "low > 0"
                problems.append(
                    (
                        "low",
                        f"`{need}` must hold for log: true, but got (low={_fmt(low)}); "
                        "raise low (e.g. 1e-8) or set log: false",
                    )
                )
            if self.step is not None and (self.type == "float" or self.step != 1):
                problems.append(
                    (
                        "step",
                        f"cannot be combined with log: true (got step={_fmt(self.step)}); "
                        "remove step or set log: false",
                    )
                )
        elif self.step is not None and not problems:
            if self.step <= 0:
                problems.append(("step", f"must be > 0, but got {_fmt(self.step)}"))
            else:
                n_steps = (high - low) / self.step
                if abs(n_steps - round(n_steps)) > 1e-8 * max(1.0, abs(n_steps)):
                    problems.append(
                        (
                            "step",
                            f"must divide `high - low`, but got (low={_fmt(low)}, "
                            f"high={_fmt(high)}, step={_fmt(self.step)}); set high to "
                            f"{_fmt(low + math.floor(n_steps) * self.step)} or change step",
                        )
                    )
        return problems

    def _check_choices(self) -> list[tuple[str, str]]:
        if self.choices is None:
            return [("choices", "required for type categorical; add `choices: [a, b, ...]`")]
        if not self.choices:
            return [("choices", "is empty; list at least one value")]
        if len(self.choices) > MAX_CHOICES:
            return [
                (
                    "choices",
                    f"lists {len(self.choices):,} values, more than the {MAX_CHOICES:,} allowed; "
                    "search an int or float range instead",
                )
            ]
        problems: list[tuple[str, str]] = []
        bad = [c for c in self.choices if not isinstance(c, _SCALAR_TYPES)]
        if bad:
            problems.append(
                ("choices", f"must be numbers, strings, booleans or null, but got {bad!r}")
            )
            return problems
        seen: list[Any] = []
        dups = []
        for choice in self.choices:
            # `1 == True` in Python; compare with the type so 1 and true stay distinct choices.
            key = (type(choice), choice)
            if key in seen:
                dups.append(choice)
            seen.append(key)
        if dups:
            problems.append(("choices", f"has duplicates {dups!r}; list each value once"))
        if self.weights is not None:
            if len(self.weights) != len(self.choices):
                problems.append(
                    (
                        "weights",
                        f"needs one weight per choice: got {len(self.weights)} weights "
                        f"for {len(self.choices)} choices",
                    )
                )
            bad_w = [w for w in self.weights if not (math.isfinite(w) and w > 0)]
            if bad_w:
                problems.append(
                    (
                        "weights",
                        f"must all be positive finite numbers, but got {bad_w}; "
                        "drop the choice instead of giving it weight 0",
                    )
                )
        return problems

    @property
    def is_weighted(self) -> bool:
        return self.weights is not None

    @property
    def possible_values(self) -> list[Any] | None:
        """The values this parameter can take, or None for a continuous range."""
        if self.type == "bool":
            return [True, False]
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type == "int":
            assert self.low is not None and self.high is not None
            step = int(self.step or 1)
            if self.log:
                return list(range(int(self.low), int(self.high) + 1))
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.step is not None:
            assert self.low is not None and self.n_values is not None
            return [self.low + i * self.step for i in range(self.n_values)]
        return None

    @property
    def n_values(self) -> int | None:
        """How many values this parameter can take, counted without listing them (an int range
        of 0..1e9 is a count here, not gigabytes); None for a continuous range."""
        if self.type == "bool":
            return 2
        if self.type == "categorical":
            return len(self.choices or [])
        if self.type == "int":
            assert self.low is not None and self.high is not None
            step = 1 if self.log else int(self.step or 1)
            return (int(self.high) - int(self.low)) // step + 1
        if self.step is not None:
            assert self.low is not None and self.high is not None
            return round((self.high - self.low) / self.step) + 1
        return None

    def can_take(self, value: Any) -> bool:
        """Whether a sampled value of this parameter could ever equal ``value``."""
        if self.type in ("bool", "categorical"):
            return any(type(v) is type(value) and v == value for v in self.possible_values or [])
        assert self.low is not None and self.high is not None
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        if self.type == "float" and self.step is None:
            return self.low <= value <= self.high
        if not math.isfinite(value):
            return False
        # on the grid low + i * step, computed: listing possible_values of 0..1e9 takes GBs
        step = 1.0 if self.type == "int" and self.log else float(self.step or 1)
        i = round((value - self.low) / step)
        return 0 <= i <= round((self.high - self.low) / step) and self.low + i * step == value


class SweepSpec(_Section):
    """A whole sweep: the study, its search space, the objective and how to run and judge it."""

    study_name: str  # the Optuna study; workers with the same name share trials
    n_trials: Annotated[int, Field(ge=1)]  # study-wide budget of finished (complete/pruned) trials
    direction: Literal["maximize", "minimize"] = "maximize"
    objective: str  # a registered name (`hpo objectives`) or `package.module:function`
    metric: str = "value"  # what the objective returns, for reports (e.g. val_accuracy)
    description: str | None = None
    schedule: str | None = None  # Airflow schedule of this sweep's DAG: cron or @daily, @weekly...
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    fixed: dict[ParamName, Any] = {}  # passed to every trial unchanged
    param_ranges: dict[ParamName, ParamSpec] = {}  # the search space
    data: dict[str, Any] = {}  # passed to the objective (paths, dataset options)
    decision: DecisionSpec = DecisionSpec()
    analysis: AnalysisSpec = AnalysisSpec()
    refine: RefineSpec = RefineSpec()
    champions: ChampionsSpec = ChampionsSpec()
    worker: WorkerSpec = WorkerSpec()
    metrics: MetricsSpec = MetricsSpec()
    # copy the fitting finished trials of an earlier study in when this one is created
    warm_start: WarmStartSpec | None = None
    # generations: run the refined next spec on its own, up to a limit (the DAGs read it)
    next: NextSpec = NextSpec()

    @model_validator(mode="before")
    @classmethod
    def _metric_from_optimize(cls, data: Any) -> Any:
        """``metrics.optimize`` names the reported ``metric`` when that is left out."""
        if isinstance(data, dict) and "metric" not in data:
            metrics = data.get("metrics")  # not a mapping: its own validation error says so
            optimize = metrics.get("optimize") if isinstance(metrics, dict) else None
            if isinstance(optimize, str):
                return {**data, "metric": optimize}
        return data

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None, info: ValidationInfo) -> str | None:
        from hpo_core.spec.schedule import schedule_problem

        airflow = (info.context or {}).get("airflow")  # load_spec(..., airflow=True)
        problem = schedule_problem(value, airflow=airflow) if value is not None else None
        if problem:
            raise PydanticCustomError("schedule", "{problem}", {"problem": problem})
        return value

    @field_validator("n_trials")
    @classmethod
    def _n_trials_bounded(cls, value: int) -> int:
        if value > MAX_TRIALS:
            raise PydanticCustomError(
                "n_trials_too_large",
                "must be at most {limit}, but got {value}; a study that size never finishes, "
                "so run a smaller sweep and refine it",
                {"limit": f"{MAX_TRIALS:,}", "value": f"{value:,}"},
            )
        return value

    @field_validator("study_name")
    @classmethod
    def _study_name_ok(cls, value: str) -> str:
        if not _STUDY_NAME.match(value):
            raise PydanticCustomError(
                "study_name",
                "must be 1-120 letters, digits, '_', '.' or '-', starting with a letter or "
                "digit, but got {value}",
                {"value": repr(value)},
            )
        return value

    @field_validator("objective")
    @classmethod
    def _objective_form(cls, value: str, info: ValidationInfo) -> str:
        """The form of the name here; whether a bare name is registered is the objective
        registry's to say (a layer above the spec), through the ``objective_problem`` that
        :func:`hpo_core.objectives.load_spec` passes in the validation context, so that one
        `hpo validate` still lists an unknown objective with every other problem."""
        if ":" in value:
            if not _OBJECTIVE_PATH.match(value):
                raise PydanticCustomError(
                    "objective_path",
                    "{value} is not of the form `package.module:function`",
                    {"value": repr(value)},
                )
            return value
        name_problem = (info.context or {}).get("objective_problem")
        problem = name_problem(value) if name_problem is not None else None
        if problem:
            raise PydanticCustomError("objective_unknown", "{problem}", {"problem": problem})
        return value

    @field_validator("fixed")
    @classmethod
    def _fixed_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, item in value.items():
            if not _is_plain_data(item):
                raise PydanticCustomError(
                    "fixed_value",
                    "fixed.{name}: must be a number, string, boolean, null or a list/mapping of "
                    "those, but got {kind}",
                    {"name": name, "kind": type(item).__name__},
                )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> SweepSpec:
        problems = cross_check(
            n_trials=self.n_trials,
            direction=self.direction,
            fixed=self.fixed,
            params=self.param_ranges,
            decision=self.decision,
        )
        problems += _metric_problems(self)
        if self.warm_start is not None and self.warm_start.study == self.study_name:
            problems.append(
                (
                    "warm_start.study",
                    f"names this study itself ({self.study_name!r}); name the earlier study "
                    "whose trials start this one, or remove warm_start",
                )
            )
        if problems:
            raise FieldProblems(problems)
        return self

    # -- derived views -------------------------------------------------------------------------

    def sampling_order(self) -> list[str]:
        """Parameter names with every condition's parent before the child."""
        order: list[str] = []
        placed: set[str] = set()
        pending = list(self.param_ranges)
        while pending:
            progressed = False
            for name in list(pending):
                parents = [
                    p for p in (self.param_ranges[name].when or {}) if p in self.param_ranges
                ]
                if all(p in placed for p in parents):
                    order.append(name)
                    placed.add(name)
                    pending.remove(name)
                    progressed = True
            if not progressed:  # a cycle; validation rejects these, so this is unreachable
                order.extend(pending)
                break
        return order

    def condition_groups(self) -> dict[str, list[str]]:
        """Conditional parameters grouped by their condition, e.g. ``encoder_type=cnn``."""
        groups: dict[str, list[str]] = {}
        for name, param in self.param_ranges.items():
            if param.when:
                key = ", ".join(
                    f"{p}={_fmt_values(v if isinstance(v, list) else [v])}"
                    for p, v in param.when.items()
                )
                groups.setdefault(key, []).append(name)
        return groups


def _metric_problems(spec: SweepSpec) -> list[tuple[str, str]]:
    m = spec.metrics
    problems: list[tuple[str, str]] = []
    if m.optimize is not None and m.optimize != spec.metric:
        problems.append(
            (
                "metrics.optimize",
                f"`metrics.optimize == metric` must hold, but got (optimize={m.optimize!r}, "
                f"metric={spec.metric!r}); leave one of them out",
            )
        )
    if m.is_forbidden(spec.metric):
        problems.append(
            (
                "metric" if m.optimize is None else "metrics.optimize",
                f"{spec.metric!r} is in metrics.forbidden; optimise another metric or drop it "
                "from the forbidden list",
            )
        )
    for i, name in enumerate(m.priority):
        if m.is_forbidden(name):
            problems.append(
                (
                    f"metrics.priority.{i}",
                    f"{name!r} is also forbidden (metrics.forbidden); remove it from one list",
                )
            )
    if len(set(m.priority)) != len(m.priority):
        problems.append(("metrics.priority", "lists a metric twice; keep each once"))
    for i, name in enumerate(spec.analysis.compare):
        param = spec.param_ranges.get(name)
        if param is None or param.type not in ("categorical", "bool"):
            problems.append(
                (
                    f"analysis.compare.{i}",
                    f"{name!r} is not a categorical or boolean parameter in param_ranges; "
                    "compare groups of a searched categorical (e.g. budget, tier)",
                )
            )
    return problems


def cross_check(
    *,
    n_trials: int | None,
    direction: str,
    fixed: Mapping[str, Any],
    params: Mapping[str, ParamSpec],
    decision: DecisionSpec,
) -> list[tuple[str, str]]:
    """Checks that span sections: fixed vs searched, conditions, decision rules.

    Kept apart from the model so the loader can run it on the parts that did validate, and so
    report these problems together with the others instead of after they are fixed.
    """
    problems: list[tuple[str, str]] = []
    for name in params:
        if name in fixed:
            problems.append(
                (
                    f"param_ranges.{name}",
                    f"is also in fixed (fixed.{name}={fixed[name]!r}); "
                    "remove it from one of the two",
                )
            )
    for name, param in params.items():
        for parent, wanted in (param.when or {}).items():
            path = f"param_ranges.{name}.when.{parent}"
            values = wanted if isinstance(wanted, list) else [wanted]
            if parent == name:
                problems.append((path, "a parameter cannot depend on itself; remove it"))
            elif parent in params:
                spec = params[parent]
                impossible = [v for v in values if not spec.can_take(v)]
                if impossible:
                    problems.append(
                        (
                            path,
                            f"{parent} can never be {_fmt_values(impossible)} "
                            f"({_describe(spec)}); use one of its values",
                        )
                    )
            elif parent in fixed:
                if not any(_same(fixed[parent], v) for v in values):
                    problems.append(
                        (
                            path,
                            f"{parent} is fixed to {fixed[parent]!r}, so {name} would "
                            f"never be sampled; remove {name} or the condition",
                        )
                    )
            else:
                problems.append(
                    (
                        path,
                        f"conditions on unknown parameter {parent!r}"
                        f"{_did_you_mean(parent, [*params, *fixed])}; "
                        "name a parameter from param_ranges or fixed",
                    )
                )
    if decision.noise_probe and "seed" in params:
        problems.append(
            (
                "decision.noise_probe",
                "a probe varies the seed alone, but `seed` is searched (param_ranges.seed); "
                "fix seed in `fixed:` or set noise_probe: 0",
            )
        )
    cycle = _find_cycle(params)
    if cycle:
        problems.append(
            (
                f"param_ranges.{cycle[0]}.when",
                f"conditions form a cycle ({' -> '.join(cycle)}); break it",
            )
        )
    for i, checkpoint in enumerate(decision.checkpoints):
        if n_trials is not None and checkpoint >= n_trials:
            problems.append(
                (
                    f"decision.checkpoints.{i}",
                    f"`checkpoint < n_trials` must hold, but got "
                    f"(checkpoint={checkpoint}, n_trials={n_trials}); lower it or raise "
                    "n_trials",
                )
            )
    override = decision.override
    if override is not None and not decision.checkpoints:
        problems.append(
            (
                "decision.override",
                "is asked at checkpoints, but decision.checkpoints is empty; add checkpoints "
                "(e.g. [50]) or remove override",
            )
        )
    extend, ceiling = (override.extend_trials, override.max_n_trials) if override else (0, 0)
    if extend and ceiling and n_trials and ceiling < n_trials + extend:
        problems.append(
            (
                "decision.override.max_n_trials",
                "`max_n_trials >= n_trials + extend_trials` must hold, but got "
                f"(max_n_trials={ceiling}, n_trials={n_trials}, extend_trials={extend}); raise "
                "max_n_trials or lower extend_trials",
            )
        )
    if decision.regret_bound is not None and not decision.checkpoints:
        problems.append(
            (
                "decision.regret_bound",
                "is judged at checkpoints, but decision.checkpoints is empty; add checkpoints "
                "(e.g. [50]) or remove regret_bound",
            )
        )
    stop, on_track = decision.stop_if_best_worse_than, decision.on_track_if_best_better_than
    if stop is not None and on_track is not None:
        ordered = stop <= on_track if direction == "maximize" else stop >= on_track
        if not ordered:
            sign = "<=" if direction == "maximize" else ">="
            problems.append(
                (
                    "decision.on_track_if_best_better_than",
                    f"`stop_if_best_worse_than {sign} on_track_if_best_better_than` must hold for "
                    f"direction {direction}, but got (stop_if_best_worse_than={stop}, "
                    f"on_track_if_best_better_than={on_track}); swap them",
                )
            )
    return problems


def condition_holds(when: Mapping[str, Any] | None, values: Mapping[str, Any]) -> bool:
    """Whether every ``parent: value(s)`` pair of a condition is met by the known values."""
    if not when:
        return True
    for parent, wanted in when.items():
        if parent not in values:
            return False
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(_same(values[parent], option) for option in options):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _is_plain_data(value: Any) -> bool:
    if isinstance(value, _SCALAR_TYPES):
        return True
    if isinstance(value, list):
        return all(_is_plain_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_data(v) for k, v in value.items())
    return False


def _find_cycle(params: Mapping[str, ParamSpec]) -> list[str] | None:
    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        for parent in params[name].when or {}:
            if parent in params:
                found = visit(parent, [*path, name])
                if found:
                    return found
        return None

    for name in params:
        found = visit(name, [])
        if found:
            return found
    return None


def _did_you_mean(word: str, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(param: ParamSpec) -> str:
    if param.type in ("bool", "categorical"):
        return f"choices {_fmt_values(param.possible_values or [])}"
    step = f", step {_fmt(param.step)}" if param.step is not None else ""
    return f"range [{_fmt(param.low)}, {_fmt(param.high)}]{step}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "None"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def _fmt_values(values: list[Any]) -> str:
    import json

    return ", ".join(json.dumps(v) for v in values)
