"""Champions: retrain a sweep's top configurations for longer, log them, register the best.

For each of the top-k completed trials (``hpo top``) and each seed, the objective's own training
function runs again with the spec's ``champions:`` epochs and patience, inside an MLflow run under
the sweep's parent run: parameters, the config, per-epoch metrics, per-class validation accuracy,
and the model (``mlflow.pytorch.log_model`` with ``serialization_format="pickle"``, so it loads
back as the project's own model class, not MLflow 3's default exported graph, and with an input
example and a signature), and again as a weights-only ``state_dict`` with the config that rebuilds
it (``weights/``, see :mod:`hpo_core.champions.weights`: the copy to trust). The configuration with
the best mean over seeds is registered (one registered model per study family) and the
``champion`` alias moves to it only if it beats the current champion's mean; a tie keeps the
incumbent. Registering and moving the alias happen under the study storage's lock, so racing
promotions end on the best mean (:func:`promote_champion`). The decision and both figures are
logged.

Resumable: every champion run carries a key (study, trial, seed, epochs, patience). A finished run
with the key is reused; an unfinished one (its process died) is marked KILLED and retrained, so
a retried task never duplicates a champion.

A trainer is ``fn(params, data_settings, *, epochs, early_stop_patience, seed, on_epoch_end,
spec)``
returning ``(model, TrainResult, extras)``; extras hold an ``input_example`` (the array the served
model takes) and optionally ``class_names`` (per-class accuracy is logged), ``metrics`` (final
figures, e.g. on the test split) and ``artifacts`` ({file name: text or PNG bytes}, e.g. threshold
tables). ``arc_classifier`` registers :func:`hpo_core.objectives.arc_classifier.train_config`,
``binary_classifier`` :func:`hpo_core.objectives.binary_classifier.train_config`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo_core.champions.compare import seed_score
from hpo_core.champions.promotion import PromotionRule, PromotionTest, promotion_test
from hpo_core.champions.provenance import TAG_GIT_COMMIT, data_input, git_commit, system_metrics
from hpo_core.champions.weights import WEIGHTS_DIR, save_champion_weights
from hpo_core.errors import HpoError
from hpo_core.objectives import resolve_champion_trainer
from hpo_core.study import SweepStudy, TopTrial, top_trials
from hpo_core.tracking import ATTR_EXPERIMENT, ATTR_TRACKING_URI, Tracker, fluent_tracking

__all__ = [
    "ALIAS",
    "ChampionResult",
    "ChampionRun",
    "Evidence",
    "Promotion",
    "RegistryLock",
    "approve_champion",
    "family_name",
    "promote_champion",
    "record_approval",
    "record_version",
    "registry_lock_name",
    "train_champions",
]

_log = logging.getLogger(__name__)

ALIAS = "champion"
TAG_KEY = "sweepflow.champion_key"
TAG_GROUP_KEY = "sweepflow.champion_group_key"
TAG_GROUP_RUN = "sweepflow.group_run"  # on a version: the run holding the mean it was chosen by
TAG_APPROVAL = "sweepflow.approval"
TAG_DECISION = "sweepflow.decision"
STATUS = "**Status**: "  # the line of a version's description that an approval rewrites
TAG_MEAN = "sweepflow.metric_mean"
TAG_VALUES = "sweepflow.metric_values"  # the scores over seeds, JSON: the promotion test reads them


@dataclass(frozen=True)
class ChampionRun:
    rank: int  # the configuration's rank in the sweep (1 = best trial)
    trial: int
    seed: int
    run_id: str
    value: float  # best validation metric of the run
    epochs: int  # epochs trained (early stopping may end a run before the budget)
    train_seconds: float
    n_params: int
    reused: bool  # a finished run from an earlier call, not trained again
    group_run: str | None = None  # the configuration's group run, this run's parent


@dataclass(frozen=True)
class ChampionResult:
    model_name: str
    runs: list[ChampionRun]
    means: dict[int, tuple[float, float]]  # trial -> (mean, stdev) over seeds
    best_trial: int
    version: str  # the registered model version of the best configuration
    promoted: bool  # the alias moved to it
    incumbent: float | None  # the previous champion's mean, None when there was none
    message: str
    promotion: PromotionTest | None = None  # the test the alias move passed or failed
    # the test says move, and the spec wants a person to approve first: the alias stays put
    pending: bool = False
    incumbent_version: str | None = None  # the version that held the alias, None when none
    # trial -> its champion group run (the mean over seeds; parent of the seed runs)
    group_runs: dict[int, str] = dataclasses.field(default_factory=dict)


def family_name(study_name: str) -> str:
    """``visual_classifier_v3_refined`` -> ``visual_classifier``: one model per study family."""
    return re.sub(r"_v\d+.*$", "", study_name) or study_name


@dataclass(frozen=True)
class Promotion:
    version: str  # the registered model version of the candidate run
    moved: bool  # the alias moved to it
    incumbent: float | None  # the previous champion's mean, None when there was none
    incumbent_version: str | None  # the version that held the alias before, None when none
    test: PromotionTest | None = None  # candidate vs incumbent; None when nothing was compared
    pending: bool = False  # it would have moved, but ``hold`` kept it for a person to approve
    model_id: str | None = None  # the version's LoggedModel


# The lock a promotion holds: ``StorageHandle.study_lock`` of the study storage, given a name.
RegistryLock = Callable[[str], AbstractContextManager[Any]]


def registry_lock_name(model_name: str) -> str:
    """The name under which promotions of one registered model take turns."""
    return f"registry:{model_name}"


def promote_champion(
    client: Any,
    model_name: str,
    run_id: str,
    scores: float | Sequence[float],
    *,
    maximize: bool,
    lock: RegistryLock,
    experiment_id: str,
    tracking_uri: str,
    rule: PromotionRule | None = None,
    hold: bool = False,
) -> Promotion:
    """Register the run's logged model (once: a run registered before keeps its version) and
    move the ``champion`` alias to it if its ``scores`` (one per seed) beat the incumbent's by
    more than the noise (:mod:`hpo_core.champions.promotion`; a tie, a worse mean or a
    difference within the noise keeps the incumbent).

    ``lock`` is the study storage's ``study_lock``, held across reading the incumbent,
    registering, comparing and setting the alias, so whatever the interleaving of two
    promotions (two sweeps of one family finishing together, a retried task) the alias ends on
    the best mean. With ``hold`` the alias does not move: a move the test allows comes back
    ``pending``, for :func:`approve_champion` once a person said yes.
    """
    # MLflow has no transaction over a registered model's versions and aliases: without a lock,
    # two promoters both read the same incumbent and the later alias write wins, worse or not.
    # The lock is the study storage's (a PostgreSQL advisory lock, shared across machines; a file
    # lock beside a journal or SQLite file, shared by the processes of one machine), not
    # MLflow's: it serialises only writers that go through sweepflow with the same study
    # storage, so every writer of a registered model must (docs: security model).
    with lock(registry_lock_name(model_name)):
        version, model_id = _register(
            client, model_name, run_id, experiment_id=experiment_id, tracking_uri=tracking_uri
        )
        values = [float(scores)] if isinstance(scores, int | float) else list(scores)
        done = _move_alias(
            client,
            model_name,
            version,
            values,
            maximize=maximize,
            rule=rule or PromotionRule(),
            hold=hold,
        )
        return dataclasses.replace(done, model_id=model_id)


def _move_alias(
    client: Any,
    model_name: str,
    version: str,
    values: list[float],
    *,
    maximize: bool,
    rule: PromotionRule,
    hold: bool = False,
) -> Promotion:
    """The compare-and-set of the alias; callers hold the registry lock."""
    mean = statistics.fmean(values)
    client.set_model_version_tag(model_name, version, TAG_MEAN, repr(mean))
    client.set_model_version_tag(model_name, version, TAG_VALUES, json.dumps(values))
    # read the aliases rather than catch get_model_version_by_alias's error: a failed read
    # (a server outage) must not pass for "no champion yet" and move the alias
    held = client.get_registered_model(model_name).aliases.get(ALIAS)
    if held is None:
        if hold:
            return Promotion(version, False, None, None, pending=True)
        client.set_registered_model_alias(model_name, ALIAS, version)
        return Promotion(version, True, None, None)
    held = str(held)
    if held == str(version):
        return Promotion(version, False, mean, held)  # already the champion (a re-run)
    tags = client.get_model_version(model_name, held).tags
    raw = tags.get(TAG_MEAN)
    old = float(raw) if raw is not None else None
    if old is None:  # a version registered outside sweepflow: nothing to compare with
        if hold:
            return Promotion(version, False, None, held, pending=True)
        client.set_registered_model_alias(model_name, ALIAS, version)
        return Promotion(version, True, None, held)
    # an incumbent from before the seeds were recorded counts as one run at its mean
    old_values = json.loads(tags[TAG_VALUES]) if TAG_VALUES in tags else [old]
    test = promotion_test(values, old_values, maximize=maximize, rule=rule)
    if test.passed and hold:
        return Promotion(version, False, old, held, test, pending=True)
    if test.passed:
        client.set_registered_model_alias(model_name, ALIAS, version)
    return Promotion(version, test.passed, old, held, test)


def approve_champion(
    client: Any,
    model_name: str,
    version: str,
    *,
    incumbent_version: str | None,
    lock: RegistryLock,
) -> bool:
    """Move the alias to a held (``pending``) ``version`` once a person approved it, if the alias
    is still where it was when they were asked (``incumbent_version``); False when it moved since
    (another sweep's champion: the evidence shown no longer holds), True when it moved now or
    already points at ``version``."""
    with lock(registry_lock_name(model_name)):
        held = client.get_registered_model(model_name).aliases.get(ALIAS)
        held = None if held is None else str(held)
        if held == str(version):
            return True
        if held != incumbent_version:
            return False
        client.set_registered_model_alias(model_name, ALIAS, version)
        return True


def train_champions(
    sweep: SweepStudy,
    *,
    tracking_uri: str | None = None,
    top_k: int | None = None,
    epochs: int | None = None,
    early_stop_patience: int | None = None,
    seeds: int | None = None,
    model_name: str | None = None,
    hold: bool = False,
) -> ChampionResult:
    """Retrain the top configurations (spec ``champions:`` unless overridden), register the
    best, move the alias on improvement (with ``hold``, only mark the move ``pending``: a person
    approves it, :func:`approve_champion`). Idempotent: finished runs are reused."""
    cfg = sweep.spec.champions
    top_k = top_k or cfg.top_k
    epochs = epochs or cfg.epochs
    patience = early_stop_patience if early_stop_patience is not None else cfg.early_stop_patience
    n_seeds = seeds or cfg.seeds
    model_name = model_name or cfg.model_name or family_name(sweep.name)
    maximize = sweep.spec.direction == "maximize"
    trainer = resolve_champion_trainer(sweep.spec.objective, cfg.trainer)
    top = top_trials(sweep, top_k)
    if not top:
        raise HpoError(f"{sweep.name}: no completed trials yet; run the sweep before champions")

    tracker = Tracker(tracking_uri, stored=sweep.study.user_attrs.get(ATTR_TRACKING_URI))
    parent = tracker.ensure_parent_run(sweep)
    try:
        session = _Session(sweep, tracker, parent, trainer, epochs=epochs, patience=patience)
        seed_list = list(range(session.base_seed, session.base_seed + n_seeds))
        groups = {entry.number: session.group(entry, seed_list) for entry in top}
        runs = [
            session.run(entry, seed, groups[entry.number]) for entry in top for seed in seed_list
        ]
        return _decide(
            session, top, runs, groups, model_name, maximize=maximize, n_seeds=n_seeds, hold=hold
        )
    except HpoError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("mlflow") or isinstance(exc, OSError):
            raise HpoError(
                f"champions: tracking at {tracker.masked_uri} failed ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); bring it back and run "
                f"`hpo champions {sweep.name}` again (finished runs are reused)"
            ) from None
        raise


@dataclass
class _Group:
    """A configuration's champion group run: its seeds and the metrics it holds already."""

    entry: TopTrial
    seeds: list[int]
    run_id: str
    metrics: dict[str, float]
    finished: bool = False


class _Session:
    """One `hpo champions` call: the sweep, its tracking store, the training settings."""

    def __init__(
        self,
        sweep: SweepStudy,
        tracker: Tracker,
        parent: str,
        trainer: Callable[..., Any],
        *,
        epochs: int,
        patience: int | None,
    ) -> None:
        self.sweep = sweep
        self.tracker = tracker
        self.client = tracker.client
        self.parent = parent
        self.trainer = trainer
        self.epochs = epochs
        self.patience = patience
        self.metric = sweep.spec.metric
        self.experiment = str(sweep.study.user_attrs.get(ATTR_EXPERIMENT))
        self.base_seed = int(sweep.spec.fixed.get("seed", 0))

    def _key(self, trial: int, seed: int) -> str:
        return f"{self.sweep.name}:{trial}:{seed}:{self.epochs}:{self.patience}"

    def _tags(self, entry: TopTrial, role: str) -> dict[str, str]:
        tags = {
            "sweepflow.sweep": self.sweep.name,
            "sweepflow.role": role,
            "sweepflow.trial_number": str(entry.number),
            "sweepflow.rank": str(entry.rank),
            "sweepflow.metric": self.metric,
            "sweepflow.direction": self.sweep.spec.direction,
        }
        commit = git_commit()
        return tags | ({TAG_GIT_COMMIT: commit} if commit else {})

    def _params(self, entry: TopTrial) -> dict[str, str]:
        """The configuration as run params; ``seed`` is each run's own (set by the caller), the
        spec's fixed seed stays as ``sweep_seed`` (what the trials used, and what a data split
        reading ``seed`` from the configuration, as arc_classifier's does, still uses)."""
        params = {k: str(v)[:500] for k, v in {**self.sweep.spec.fixed, **entry.params}.items()}
        if "seed" in params:
            params["sweep_seed"] = params.pop("seed")
        return params | {
            "champion_epochs": str(self.epochs),
            "champion_patience": str(self.patience),
            "sweep_trial_value": repr(entry.value),
        }

    def group(self, entry: TopTrial, seeds: list[int]) -> _Group:
        """The configuration's group run (found by its key, else created): child of the sweep's
        parent run, parent of the seed runs; the decision logs the mean over seeds on it."""
        from mlflow.entities import Param

        seed_list = ",".join(map(str, seeds))
        key = f"{self.sweep.name}:{entry.number}:{self.epochs}:{self.patience}:{seed_list}"
        found = self.client.search_runs(
            [self.experiment], filter_string=f"tags.`{TAG_GROUP_KEY}` = '{key}'", max_results=5
        )
        if found:
            run = sorted(found, key=lambda r: r.info.status != "FINISHED")[0]
            finished = run.info.status == "FINISHED"
            return _Group(entry, seeds, run.info.run_id, dict(run.data.metrics), finished)
        run_id = self.client.create_run(
            self.experiment,
            run_name=f"champion-{entry.rank}-trial-{entry.number}",
            tags=self._tags(entry, "champion_group")
            | {"mlflow.parentRunId": self.parent, TAG_GROUP_KEY: key},
        ).info.run_id
        params = self._params(entry) | {"seeds": seed_list, "trial_number": str(entry.number)}
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        return _Group(entry, seeds, run_id, {})

    def run(self, entry: TopTrial, seed: int, group: _Group) -> ChampionRun:
        key = self._key(entry.number, seed)
        found = self.client.search_runs(
            [self.experiment], filter_string=f"tags.`{TAG_KEY}` = '{key}'", max_results=20
        )
        for stale in (r for r in found if r.info.status in ("RUNNING", "SCHEDULED")):
            # its process died mid-training (a killed task, a lost node): retrain, keep the trace
            _log.warning(
                "champion #%d seed %d: run %s was interrupted; training it again",
                entry.rank,
                seed,
                stale.info.run_id,
            )
            self.client.set_tag(stale.info.run_id, "sweepflow.superseded", "interrupted")
            self.client.set_terminated(stale.info.run_id, status="KILLED")
        done = [r for r in found if r.info.status == "FINISHED"]
        if done:
            run = done[0]
            _log.info(
                "champion #%d seed %d: finished run %s reused", entry.rank, seed, run.info.run_id
            )
            if run.data.tags.get("mlflow.parentRunId") != group.run_id:
                # a run from before group runs hung under the sweep's parent directly
                self.client.set_tag(run.info.run_id, "mlflow.parentRunId", group.run_id)
            metrics = run.data.metrics
            return ChampionRun(
                entry.rank,
                entry.number,
                seed,
                run.info.run_id,
                seed_score(metrics, self.metric),
                int(metrics.get("epochs_trained", 0)),
                float(metrics.get("train_seconds", 0.0)),
                int(metrics.get("n_params", 0)),
                reused=True,
                group_run=group.run_id,
            )
        return self._train(entry, seed, key, group)

    def _train(self, entry: TopTrial, seed: int, key: str, group: _Group) -> ChampionRun:
        from mlflow.entities import Metric, Param

        # what the trainer gets: the sweep's configuration (its fixed seed included, see
        # _params); the run's own seed comes as the trainer's ``seed``
        params = {**self.sweep.spec.fixed, **entry.params}
        run_id = self.client.create_run(
            self.experiment,
            run_name=f"champion-{entry.rank}-trial-{entry.number}-seed-{seed}",
            tags=self._tags(entry, "champion")
            | {
                "mlflow.parentRunId": group.run_id,
                "sweepflow.seed": str(seed),
                # compare-runs shows these first (spec metrics.priority), on validation and test
                "sweepflow.priority": ",".join(self.sweep.spec.metrics.priority),
                TAG_KEY: key,
            },
        ).info.run_id
        logged = self._params(entry) | {"seed": str(seed)}
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in logged.items()])
        self.client.log_text(
            run_id,
            json.dumps(params | {"seed": seed, "sweep_seed": params.get("seed")}, indent=2,
                       default=str),
            "config.json",
        )  # fmt: skip
        settings = dict(self.sweep.spec.data)
        dataset = data_input(settings, name=f"{self.sweep.spec.objective} data")
        self.client.log_inputs(run_id, [dataset])
        label = f"champion #{entry.rank} (trial {entry.number}) seed {seed}"
        _log.info("%s: training up to %d epochs, run %s", label, self.epochs, run_id)
        better = max if self.sweep.spec.direction == "maximize" else min
        best = -math.inf if better is max else math.inf

        def on_epoch_end(m: Any) -> None:
            nonlocal best
            best = better(best, m.val_score)
            stamp = int(time.time() * 1000)
            figures = {
                f"{self.metric}_epoch": m.val_score,
                "train_loss": m.train_loss,
                "val_loss": m.val_loss,
                "lr": m.lr,
            }
            figures |= {k: v for k, v in m.metrics.items() if k not in figures}
            self.client.log_batch(
                run_id,
                metrics=[
                    Metric(k, float(v), stamp, m.epoch)
                    for k, v in figures.items()
                    if v is not None and math.isfinite(v)
                ],
            )
            _log.info(
                "%s: epoch %d/%d %s %.4f (best %.4f), %.1fs",
                label,
                m.epoch,
                self.epochs,
                self.metric,
                m.val_score,
                best,
                m.seconds,
            )

        with system_metrics(run_id, self.tracker.uri):
            model, result, extras = self.trainer(
                params,
                settings,
                epochs=self.epochs,
                early_stop_patience=self.patience,
                seed=seed,
                on_epoch_end=on_epoch_end,
                spec=self.sweep.spec,
            )
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        finals = {
            self.metric: result.best_score,  # the seed's score: what the decision averages
            "best_epoch": result.best_epoch,
            "epochs_trained": result.epochs_trained,
            "train_seconds": result.train_seconds,
            "n_params": n_params,
        }
        # the trainer's own final figures (e.g. test-split precision and recall)
        finals |= {k: v for k, v in extras.get("metrics", {}).items() if k not in finals}
        stamp = int(time.time() * 1000)
        per_class: dict[str, float | None] = {}
        if result.per_class_val_acc and extras.get("class_names"):
            per_class = dict(zip(extras["class_names"], result.per_class_val_acc, strict=True))
        self.client.log_batch(
            run_id,
            metrics=[
                Metric(k, float(v), stamp, 0)
                for k, v in finals.items()
                if v is not None and math.isfinite(float(v))
            ]
            + [
                Metric(f"val_acc_{name}", float(acc), stamp, 0)
                for name, acc in per_class.items()
                if acc is not None
            ],
        )
        if per_class:
            self.client.log_text(run_id, json.dumps(per_class, indent=2), "per_class_val_acc.json")
        for name, content in extras.get("artifacts", {}).items():
            if isinstance(content, bytes):
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / name
                    path.write_bytes(content)
                    self.client.log_artifact(run_id, str(path))
            else:
                self.client.log_text(run_id, content, name)
        self._log_model(run_id, model, extras["input_example"], extras.get("input_shape"))
        self._log_weights(run_id, model, label)
        self.client.set_terminated(run_id, status="FINISHED")
        _log.info(
            "%s: best %s %.4f at epoch %d of %d, %.0fs",
            label,
            self.metric,
            result.best_score,
            result.best_epoch,
            result.epochs_trained,
            result.train_seconds,
        )
        return ChampionRun(
            entry.rank,
            entry.number,
            seed,
            run_id,
            result.best_score,
            result.epochs_trained,
            result.train_seconds,
            n_params,
            reused=False,
            group_run=group.run_id,
        )

    def _log_weights(self, run_id: str, model: Any, label: str) -> None:
        """The model again as tensors and a config: loading it unpickles nothing (weights.py)."""
        with tempfile.TemporaryDirectory() as tmp:
            written = save_champion_weights(model, Path(tmp))
            self.client.log_artifacts(run_id, tmp, WEIGHTS_DIR)
        if len(written) == 1:
            _log.warning(
                "%s: %s is not one of the project's model classes: its state_dict is logged "
                "without a config, so load_champion_weights cannot rebuild it",
                label,
                type(model).__name__,
            )

    def _log_model(
        self, run_id: str, model: Any, example: Any, shape: tuple[int, ...] | None = None
    ) -> None:
        """The model as the project's own class (pickle format), with an example and a signature:
        the trainer's input ``shape`` (-1 for a free size), else grid sizes left free (ARC tasks
        come in every size up to 30x30)."""
        import mlflow
        import mlflow.pytorch
        import numpy as np
        import torch
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        with torch.no_grad():
            output = model(torch.from_numpy(example)).numpy()
        if shape is not None:
            free = tuple(shape)
        elif example.ndim >= 3:
            free = (-1, *example.shape[1:-2], -1, -1)
        else:
            free = (-1, *example.shape[1:])
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(example.dtype), free)]),
            outputs=Schema([TensorSpec(np.dtype(output.dtype), (-1, *output.shape[1:]))]),
        )
        import hpo_core

        # pickle on purpose (the project's class loads back; see the module doc): quiet MLflow's
        # caution about it and its note on torch's "+cpu" label, which say nothing actionable
        quiet = [
            logging.getLogger(n) for n in ("mlflow.pytorch", "mlflow.utils.requirements_utils")
        ]
        levels = [q.level for q in quiet]
        for q in quiet:
            q.setLevel(logging.ERROR)
        try:
            with fluent_tracking(self.tracker.uri), mlflow.start_run(run_id=run_id):
                mlflow.pytorch.log_model(
                    model,
                    name="model",
                    serialization_format="pickle",
                    input_example=example,
                    signature=signature,
                    # the model's classes travel with it: it loads where sweepflow is not installed
                    code_paths=[str(Path(hpo_core.__file__).parent)],
                    # what the model's classes import, stated: MLflow would otherwise load the
                    # model in a subprocess to infer it (about 6 s per champion run)
                    pip_requirements=[
                        *mlflow.pytorch.get_default_pip_requirements(),
                        f"numpy=={np.__version__}",
                    ],
                )
        finally:
            for q, level in zip(quiet, levels, strict=True):
                q.setLevel(level)


def _decide(
    session: _Session,
    top: list[TopTrial],
    runs: list[ChampionRun],
    groups: dict[int, _Group],
    model_name: str,
    *,
    maximize: bool,
    n_seeds: int,
    hold: bool = False,
) -> ChampionResult:
    from mlflow.entities import Metric, RunTag

    client, metric = session.client, session.metric
    means: dict[int, tuple[float, float]] = {}
    scores: dict[int, list[float]] = {}
    for entry in top:
        values = [r.value for r in runs if r.trial == entry.number]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        means[entry.number] = (statistics.fmean(values), spread)
        scores[entry.number] = values
    pick = max if maximize else min
    best_trial = pick(means, key=lambda t: means[t][0])
    best_mean = means[best_trial][0]
    best_run = pick((r for r in runs if r.trial == best_trial), key=lambda r: r.value)
    promotion = promote_champion(
        client,
        model_name,
        best_run.run_id,
        scores[best_trial],
        maximize=maximize,
        lock=session.sweep.handle.study_lock,
        experiment_id=session.experiment,
        tracking_uri=session.tracker.uri,
        rule=PromotionRule.from_spec(session.sweep.spec, _seed_noise(session.sweep, scores)),
        hold=hold,
    )
    version, promoted, incumbent = promotion.version, promotion.moved, promotion.incumbent
    what = (
        f"version {version} (trial {best_trial}, mean {metric} {best_mean:.4f} over "
        f"{n_seeds} seed(s))"
    )
    verdict = _verdict(what, promotion)
    for trial, group in groups.items():
        _close_group(
            session, group, means[trial], len(scores[trial]),
            promotion if trial == best_trial else None,
        )  # fmt: skip
    stamp = int(time.time() * 1000)
    figures = [Metric("champion_mean", best_mean, stamp, 0)]
    if incumbent is not None:
        figures.append(Metric("incumbent_mean", incumbent, stamp, 0))
    tags = promotion.test.tags() if promotion.test is not None else {}
    client.log_batch(
        session.parent, metrics=figures, tags=[RunTag(k, v) for k, v in tags.items()]
    )
    client.set_tag(session.parent, "sweepflow.champion_decision", verdict)
    group = groups[best_trial]
    evidence = Evidence(
        session.sweep.name,
        best_trial,
        metric,
        session.sweep.spec.direction,
        group.seeds,
        *means[best_trial],
        group.run_id,
        best_run.run_id,
        best_run.seed,
    )
    record_version(client, model_name, promotion, verdict, evidence)
    _log.info("champions of %s: %s", session.sweep.name, verdict)
    return ChampionResult(
        model_name,
        runs,
        means,
        best_trial,
        version,
        promoted,
        incumbent,
        verdict,
        promotion.test,
        pending=promotion.pending,
        incumbent_version=promotion.incumbent_version,
        group_runs={trial: g.run_id for trial, g in groups.items()},
    )


def _close_group(
    session: _Session,
    group: _Group,
    mean_sd: tuple[float, float],
    n: int,
    promotion: Promotion | None,
) -> None:
    """The mean over seeds on the configuration's group run, then FINISHED. For the registered
    configuration the decision's figures go onto the version's LoggedModel as well (MLflow
    logs a model's metrics through a run: this one), which the version's page links to."""
    from mlflow.entities import Metric

    client, metric = session.client, session.metric
    figures = {metric: mean_sd[0], f"{metric}_sd": mean_sd[1], "n_seeds": float(n)}
    model_id = promotion.model_id if promotion is not None else None
    if promotion is not None and promotion.incumbent_version != promotion.version:
        # the figures the alias was judged by (a re-run that finds it the champion has none)
        test = promotion.test
        extra = {
            "incumbent_mean": promotion.incumbent,
            "promotion_statistic": None if test is None else test.statistic,
            "promotion_p": None if test is None else test.p,
        }
        figures |= {k: v for k, v in extra.items() if v is not None}
    figures = {k: float(v) for k, v in figures.items() if math.isfinite(float(v))}
    on_model: set[str] = set()
    if model_id is not None:
        # the model has its seed run's figures already (log_model links them): the decision's
        # are the ones this group run logged
        on_model = {
            m.key
            for m in client.get_logged_model(model_id).metrics or []
            if m.run_id == group.run_id
        }
    stamp = int(time.time() * 1000)
    # a re-run logs only what changed: the run's history keeps one point per figure
    todo = [
        Metric(k, v, stamp, 0, model_id=model_id if k not in on_model else None)
        for k, v in figures.items()
        if group.metrics.get(k) != v or (model_id is not None and k not in on_model)
    ]
    if todo:
        client.log_batch(group.run_id, metrics=todo)
    if not group.finished:
        client.set_terminated(group.run_id, status="FINISHED")


@dataclass(frozen=True)
class Evidence:
    """What a registered version was chosen by: one configuration's scores over seeds."""

    sweep: str
    trial: int
    metric: str
    direction: str
    seeds: list[int]
    mean: float
    sd: float
    group_run: str  # the run holding the mean (role champion_group)
    source_run: str  # the seed run whose model the version is
    source_seed: int


def record_version(
    client: Any, model_name: str, promotion: Promotion, verdict: str, evidence: Evidence
) -> None:
    """The version's description (how it was chosen, in words) and tags (the decision's
    figures); a held version says pending until :func:`record_approval`. A re-run that finds the
    version already the champion keeps what the decision that made it one wrote."""
    version, e, test = promotion.version, evidence, promotion.test
    if promotion.incumbent_version == version and client.get_model_version(
        model_name, version
    ).description:
        return
    seeds = ",".join(map(str, e.seeds))
    tags = {
        TAG_DECISION: verdict,
        "sweepflow.sweep": e.sweep,
        "sweepflow.trial": str(e.trial),
        "sweepflow.metric": e.metric,
        "sweepflow.direction": e.direction,
        "sweepflow.metric_sd": repr(e.sd),
        "sweepflow.seeds": seeds,
        "sweepflow.n_seeds": str(len(e.seeds)),
        "sweepflow.source_seed": str(e.source_seed),
        TAG_GROUP_RUN: e.group_run,
    }
    if promotion.incumbent_version is not None:
        tags["sweepflow.incumbent_version"] = promotion.incumbent_version
    if promotion.incumbent is not None:
        tags["sweepflow.incumbent_mean"] = repr(promotion.incumbent)
    if test is not None:
        tags |= test.tags()
    if promotion.pending:
        tags[TAG_APPROVAL] = "pending"
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    lines = [
        f"Chosen by sweepflow from sweep `{e.sweep}`: {verdict}.",
        "",
        f"Evidence: mean {e.metric} {e.mean:.4f} (sd {e.sd:.4f}) over {len(e.seeds)} seed(s) "
        f"({seeds}) of trial {e.trial}, held by the champion group run `{e.group_run}`; this "
        f"version's files are seed {e.source_seed}'s run `{e.source_run}`, the best of those "
        "seeds.",
    ]
    if test is not None and test.test != "none":
        incumbent_sd = "-" if test.incumbent_sd is None else f"{test.incumbent_sd:.4f}"
        lines += [
            "",
            f"Test: {test.test}, {test.reason} (needed {test.needed}); incumbent version "
            f"{promotion.incumbent_version}: mean {test.incumbent_mean:.4f} (sd {incumbent_sd}) "
            f"over {test.incumbent_n} seed(s).",
        ]
    lines += ["", STATUS + _status(promotion)]
    client.update_model_version(model_name, version, description="\n".join(lines))


def _status(promotion: Promotion) -> str:
    held = promotion.incumbent_version
    if promotion.pending:
        stays = f"stays on version {held}" if held else "stays unset"
        return f"pending: awaiting a person's approval; `@{ALIAS}` {stays} until then"
    if promotion.moved:
        return f"`@{ALIAS}` moved to this version"
    if held == promotion.version:
        return f"holds `@{ALIAS}`"
    return f"not promoted: `@{ALIAS}` stays on version {held}"


def record_approval(
    client: Any, model_name: str, version: str, verdict: str, decision: str
) -> None:
    """A person's answer on a held version: its approval tag, its decision tag and the status
    line of its description, which said pending until now."""
    client.set_model_version_tag(model_name, version, TAG_APPROVAL, verdict)
    client.set_model_version_tag(model_name, version, TAG_DECISION, decision)
    text = client.get_model_version(model_name, version).description or ""
    kept = [line for line in text.splitlines() if not line.startswith(STATUS)]
    while kept and not kept[-1]:
        kept.pop()
    client.update_model_version(
        model_name, version, description="\n".join([*kept, "", STATUS + verdict]).lstrip()
    )


def _verdict(what: str, promotion: Promotion) -> str:
    """The promotion in one line: the candidate, the incumbent, the test and its outcome."""
    incumbent, test = promotion.incumbent, promotion.test
    if promotion.incumbent_version == promotion.version:
        return f"{what} is already the champion"
    if promotion.pending:
        against = "no incumbent" if incumbent is None else f"incumbent {incumbent:.4f}"
        ran = f"; {test.test}: {test.reason}" if test is not None else ""
        return f"{what} would take the alias ({against}{ran}): awaiting a person's approval"
    if incumbent is None:
        return f"{what} is the new champion (no incumbent)"
    if test is None:  # moved: the incumbent had no recorded mean
        return f"{what} beats the incumbent (no recorded mean): alias moved"
    old, ran = f"({incumbent:.4f})", f"{test.test}: {test.reason}; needed {test.needed}"
    if promotion.moved:
        return f"{what} beats the incumbent {old} by more than the noise ({ran}): alias moved"
    if test.test == "none" and test.needed == "a better mean":
        return f"{what} {test.reason} {old}: alias kept"
    if test.test == "none":
        return f"{what} has a better mean than the incumbent {old}, but {test.reason}: alias kept"
    return f"{what} beats the incumbent {old} only within the noise ({ran}): alias kept"


def _seed_noise(sweep: SweepStudy, scores: dict[int, list[float]]) -> Any:
    """The study's seed-noise estimate (:mod:`hpo_core.analysis.noise`) for a side with one
    seed, after storing this retraining's own spread over seeds in the study (2+ seeds)."""
    from hpo_core.analysis import build_trials_table
    from hpo_core.analysis.noise import ATTR_CHAMPION_NOISE, estimate_noise, pooled_sd

    pooled = pooled_sd([[v for v in vs if math.isfinite(v)] for vs in scores.values()])
    if pooled is not None:
        sd, n, dof = pooled
        record = {"sd": sd, "n": n, "dof": dof, "configs": len(scores)}
        sweep.study.set_user_attr(ATTR_CHAMPION_NOISE, record)
    champions = sweep.study.user_attrs.get(ATTR_CHAMPION_NOISE)
    table = build_trials_table(sweep.study.get_trials(deepcopy=False), sweep.spec)
    return estimate_noise(table, champions=champions)


def _register(
    client: Any, model_name: str, run_id: str, *, experiment_id: str, tracking_uri: str
) -> tuple[str, str]:
    """Register the run's logged model (idempotent: a run registered before keeps its version);
    returns the version and the LoggedModel's id."""
    try:
        client.create_registered_model(
            model_name, description=f"champions of the {model_name} sweeps (sweepflow)"
        )
    except Exception as exc:  # exists already
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    models = client.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
    )
    if not models:
        raise HpoError(f"champions: run {run_id} has no logged model; run `hpo champions` again")
    model_id = str(models[0].model_id)
    version = next(
        (
            str(mv.version)
            for mv in client.search_model_versions(f"name = '{model_name}'")
            if mv.run_id == run_id
        ),
        None,
    )
    if version is None:
        # MLflow resolves a `models:/` source through the fluent API's tracking URI
        with fluent_tracking(tracking_uri):
            version = str(
                client.create_model_version(
                    model_name, f"models:/{model_id}", run_id=run_id, model_id=model_id
                ).version
            )
    _mark_registered(client, model_id, model_name, version)
    return version, model_id


def _mark_registered(client: Any, model_id: str, model_name: str, version: str) -> None:
    """List the version on its LoggedModel, as ``mlflow.register_model`` does: the UI's logged
    model page reads this tag (else "Not registered"). ``create_model_version`` does not write
    it, and MLflow's own stores keep no ``model_id`` on a version (the version's source,
    ``models:/<model_id>``, is its link the other way)."""
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    raw = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
    listed = json.loads(raw) if raw else []
    entry = {"name": model_name, "version": str(version)}
    if not any((str(e.get("name")), str(e.get("version"))) == (model_name, entry["version"])
               for e in listed):  # fmt: skip
        listed.append(entry)
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(listed)})
