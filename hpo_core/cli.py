"""The `hpo` command. User mistakes end as `error: <what and how to fix>` with a non-zero exit."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hpo_core.errors import HpoError, StudyStopped

__all__ = ["main"]

_log = logging.getLogger("hpo")

# EXIT_STOPPED: the study's stop flag is set, so no worker starts (`hpo resume` clears it);
# distinct so a scheduler or a script can tell "stopped on purpose" from "broken".
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        _refuse_inline_passwords(args)
        code: int = args.handler(args)
        return code
    except StudyStopped as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except HpoError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `hpo top | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the last resort: a bug or a case we did not foresee
        print(f"error: {_unexpected(exc, args)}", file=sys.stderr)
        return EXIT_ERROR


def _unexpected(exc: Exception, args: argparse.Namespace) -> str:
    """One line for an exception nobody turned into an HpoError; the traceback goes to a file
    (masked), so a user has something to attach to a bug report and the terminal stays clean."""
    import tempfile
    import traceback
    from datetime import datetime

    from hpo_core.storage import ENV_HOME, mask_url

    text = mask_url("".join(traceback.format_exception(exc)))
    first = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"hpo-{args.command}-{stamp}-{os.getpid()}.log"
    for folder in (Path(os.environ.get(ENV_HOME) or ".hpo") / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(f"hpo {args.command}: unexpected error\n{text}")
            break
        except OSError:
            continue
    else:
        return f"{type(exc).__name__}: {first} (unexpected; no log file could be written)"
    return (
        f"{type(exc).__name__}: {first} (unexpected; please report it with the traceback in "
        f"{path})"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpo",
        description="sweepflow: hyperparameter sweeps on Optuna studies.",
        epilog="Storage: --storage, else $HPO_STORAGE_URL, else a journal file under "
        "$HPO_HOME (default ./.hpo). Keep passwords in the environment, not in commands.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check sweep specs and summarise their search spaces")
    p.add_argument("configs", nargs="+", metavar="CONFIG")
    p.set_defaults(handler=_cmd_validate)

    p = sub.add_parser("check", help="pre-launch checklist: spec, storage, data, GPU, disk, ...")
    p.add_argument("config")
    _storage_arg(p)
    _tracking_args(p)
    p.add_argument(
        "--allow-cpu", action="store_true", help="a missing GPU warns instead of failing"
    )
    p.add_argument("--min-free-gb", type=_positive_float, default=10.0, help="default: 10")
    p.add_argument("--manifest", help="sha256sum listing of the data files to verify")
    p.add_argument("--no-smoke", action="store_true", help="skip the smoke trial")
    p.add_argument(
        "--workers", type=_positive_int, default=1, help="list each worker's GPU (default 1)"
    )
    _gpu_args(p)
    p.add_argument("--out", help="write checklist.md and checklist.json here")
    p.add_argument("--json", action="store_true", help="print the checklist as JSON")
    p.set_defaults(handler=_cmd_check)

    p = sub.add_parser("worker", help="join a study and run trials until its budget is used")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config", help="a spec: creates its study, or joins it if the stored spec matches"
    )
    source.add_argument(
        "--study", metavar="NAME", help="join an existing study and run its stored spec"
    )
    _storage_arg(p)
    p.add_argument("--timeout", type=_positive_float, help="stop starting trials after S seconds")
    p.add_argument("--stop-file", help="finish the current trial and exit once this file exists")
    p.add_argument("--worker-id", help="name in logs and trial attributes (default host:pid)")
    p.add_argument("--max-trials", type=_positive_int, help="cap on trials for this worker alone")
    p.add_argument(
        "--until",
        type=_positive_int,
        metavar="N",
        help="stop once the study has N finished trials (a mid-sweep checkpoint)",
    )
    p.set_defaults(handler=_cmd_worker)

    p = sub.add_parser("sweep", help="run N local workers with a live progress line")
    p.add_argument("--config", required=True)
    _tracking_args(p)
    p.add_argument("--workers", type=_positive_int, default=1)
    _gpu_args(p)
    _storage_arg(p)
    p.add_argument("--timeout", type=_positive_float, help="workers stop starting trials after S s")
    p.add_argument(
        "--status-interval",
        type=_positive_float,
        default=30.0,
        help="seconds between status lines when not on a terminal",
    )
    p.add_argument(
        "--warm-start-from",
        metavar="STUDY",
        help="create the study with the finished trials of STUDY (same storage) that fit its "
        "space; they do not count in n_trials (the spec's warm_start: does the same)",
    )
    p.set_defaults(handler=_cmd_sweep)

    p = sub.add_parser("status", help="progress of one study")
    p.add_argument("study")
    _storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_status)

    p = sub.add_parser("top", help="the best completed trials of a study")
    p.add_argument("study")
    p.add_argument("-k", "--top", type=_positive_int, default=5, help="how many (default 5)")
    p.add_argument("--out", help="write the configurations (fixed + sampled) to this YAML file")
    _storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_top)

    p = sub.add_parser("analyze", help="report on a study: statistics, elites, flags, next spec")
    p.add_argument("study")
    p.add_argument("--out", required=True, help="folder for report.md, CSVs, JSON and plots")
    _storage_arg(p)
    p.add_argument(
        "--importance",
        choices=["ped_anova", "fanova", "none"],
        help="importance method (default: the spec's analysis.importance)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(handler=_cmd_analyze)

    p = sub.add_parser("decide", help="mid-sweep decision: continue, stop or done (JSON)")
    p.add_argument("study")
    _storage_arg(p)
    p.add_argument(
        "--apply",
        action="store_true",
        help="on stop, set the study's stop flag (workers finish their trial and exit); on "
        "continue, queue the noise probe (decision.noise_probe)",
    )
    p.set_defaults(handler=_cmd_decide)

    p = sub.add_parser(
        "replay", help="replay decision rules over a finished study: when each would have stopped"
    )
    p.add_argument("study")
    p.add_argument(
        "--decision",
        required=True,
        metavar="FILE",
        help="YAML: a spec with a decision: section, or the section alone",
    )
    _storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_replay)

    p = sub.add_parser("refine", help="write the next search space from a study's evidence")
    p.add_argument("study")
    p.add_argument("--out", required=True, help="the next spec (YAML)")
    p.add_argument("--study-name", help="study_name of the next spec (default: next version)")
    _storage_arg(p)
    p.set_defaults(handler=_cmd_refine)

    p = sub.add_parser(
        "lineage", help="the chain of refined and warm-started studies a study belongs to"
    )
    p.add_argument("study")
    _storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_lineage)

    p = sub.add_parser("compare", help="two studies side by side (e.g. v2 vs v3)")
    p.add_argument("study_a")
    p.add_argument("study_b")
    _storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_compare)

    p = sub.add_parser("enqueue", help="queue specific trials in a study")
    p.add_argument("study")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--params", help="NAME=VALUE,NAME=VALUE,...")
    group.add_argument("--file", help="YAML/JSON: one mapping of parameters, or a list")
    _storage_arg(p)
    p.set_defaults(handler=_cmd_enqueue)

    p = sub.add_parser("stop", help="ask every worker of a study to stop after its trial")
    p.add_argument("study")
    p.add_argument("--reason", default="hpo stop", help="recorded with the stop flag")
    p.add_argument(
        "--now",
        action="store_true",
        help="stop running trials at their next batch: they save a checkpoint and are "
        "re-queued, to resume after `hpo resume`",
    )
    _storage_arg(p)
    p.set_defaults(handler=_cmd_stop)

    p = sub.add_parser("resume", help="clear a study's stop flag, so workers may join again")
    p.add_argument("study")
    _storage_arg(p)
    p.set_defaults(handler=_cmd_resume)

    p = sub.add_parser("budget", help="change a study's trial budget (n_trials)")
    p.add_argument("study")
    p.add_argument("n_trials", type=_positive_int, metavar="N")
    _storage_arg(p)
    p.set_defaults(handler=_cmd_budget)

    p = sub.add_parser(
        "configs", help="the specs of the config folder the DAGs offer, and the broken ones"
    )
    p.add_argument(
        "--dir", help="the config folder (default: $SWEEPFLOW_CONFIG_DIR, else configs/hpo)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_configs)

    p = sub.add_parser(
        "cleanup", help="mark trials left RUNNING by dead workers as lost, and re-queue them"
    )
    p.add_argument("study")
    p.add_argument(
        "--older-than",
        type=_positive_float,
        metavar="SECONDS",
        help="also fail RUNNING trials started longer ago than this (workers on other hosts, "
        "storages without heartbeats)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    _storage_arg(p)
    p.set_defaults(handler=_cmd_cleanup)

    p = sub.add_parser("champions", help="retrain the top configurations, register the best")
    p.add_argument("study")
    p.add_argument("-k", "--top", type=_positive_int, help="configurations (spec: champions.top_k)")
    p.add_argument("--epochs", type=_positive_int, help="epochs (spec: champions.epochs)")
    p.add_argument("--patience", type=_positive_int, help="early-stop patience")
    p.add_argument("--seeds", type=_positive_int, help="runs per configuration")
    p.add_argument("--model-name", help="registered model (default: the study family)")
    _storage_arg(p)
    _tracking_args(p, optional=False)
    p.set_defaults(handler=_cmd_champions)

    p = sub.add_parser("track", help="create a study's MLflow parent run, back-fill trial runs")
    p.add_argument("study")
    _storage_arg(p)
    _tracking_args(p, optional=False)
    p.set_defaults(handler=_cmd_track)

    p = sub.add_parser(
        "compare-runs", help="champions across sweeps from MLflow (table, CSV, plot)"
    )
    p.add_argument(
        "studies", nargs="*", metavar="STUDY", help="default: every sweep with champions"
    )
    p.add_argument("--model-name", help="only this registered model's versions")
    p.add_argument("--out", help="folder for champions.csv, champions.md and champions.png")
    _tracking_args(p, optional=False)
    p.set_defaults(handler=_cmd_compare_runs)

    p = sub.add_parser("studies", help="list the studies in a storage")
    _storage_arg(p)
    p.set_defaults(handler=_cmd_studies)

    p = sub.add_parser("spec", help="print the spec stored with a study")
    p.add_argument("study")
    _storage_arg(p)
    p.set_defaults(handler=_cmd_spec)

    p = sub.add_parser(
        "smoke", help="run a spec's objective briefly in a scratch study (pre-launch check)"
    )
    p.add_argument("config")
    p.add_argument("--trials", type=_positive_int, default=1, help="smoke trials (default 1)")
    p.add_argument("--epochs", type=_positive_int, default=1, help="epochs per trial (default 1)")
    p.add_argument(
        "--max-samples",
        type=_positive_int,
        default=64,
        help="use the first N samples of the data, where the objective reads a subset "
        "(arc_classifier; a time series is used whole) (default 64)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_smoke)

    p = sub.add_parser("data", help="the data a spec trains on: ARC tasks, or a feature table")
    p.add_argument("config")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--generate",
        action="store_true",
        help="binary_classifier: write the synthetic imbalanced time series to data.path "
        "(demo and tests; never overwrites a file)",
    )
    p.add_argument("--rows", type=_positive_int, default=20000, help="with --generate")
    p.add_argument("--seed", type=int, default=0, help="with --generate")
    p.set_defaults(handler=_cmd_data)

    p = sub.add_parser(
        "thresholds",
        help="precision and recall per decision threshold for a study's best models",
    )
    p.add_argument("study")
    p.add_argument(
        "-k", "--top", type=_positive_int, help="models (default metrics.thresholds_top)"
    )
    p.add_argument(
        "--required-precision",
        type=_fraction,
        help="pick the threshold with the best recall at this precision (default "
        "metrics.required_precision, else 0.5)",
    )
    p.add_argument(
        "--min-predicted",
        type=_positive_int,
        help="a threshold needs this many predicted positives (default metrics.min_predicted)",
    )
    p.add_argument("--out", help="folder for thresholds.md, thresholds.csv and the plot")
    _storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_thresholds)

    p = sub.add_parser("objectives", help="list the registered objectives")
    p.set_defaults(handler=_cmd_objectives)
    return parser


def _tracking_args(p: argparse.ArgumentParser, *, optional: bool = True) -> None:
    p.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking (default: $MLFLOW_TRACKING_URI, else $HPO_HOME/mlflow.db)",
    )
    if optional:
        p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def _gpu_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpus",
        metavar="IDS",
        help="GPUs for the workers, round robin: 0,1,2,3 or GPU-/MIG- UUIDs (default: "
        "$CUDA_VISIBLE_DEVICES, else what nvidia-smi -L lists, else the CPU)",
    )
    p.add_argument(
        "--workers-per-gpu",
        type=_positive_int,
        metavar="K",
        help="put K workers on each GPU in turn (--workers must be at most K x GPUs)",
    )


def _storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        metavar="URL",
        help="study storage (default: $HPO_STORAGE_URL, else the local journal)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, but got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], but got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], e.g. 0.5 for 50%, but got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, but got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, but got {value:g}")
    return value


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )
    # MLflow sets its own loggers' level when it is imported (lazily, later): tell it by env
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if verbose else "WARNING")
    for noisy in ("sqlalchemy", "alembic", "matplotlib", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # a dead tracking server: one clear line from us, not urllib3's retry chatter
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose else logging.ERROR)


# URL options whose value any user can read from the process list: (attribute, flag, instead)
_URL_OPTIONS = (
    ("storage", "--storage", "export HPO_STORAGE_URL instead"),
    (
        "tracking_uri",
        "--tracking-uri",
        "export MLFLOW_TRACKING_URI (or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD) "
        "instead",
    ),
)


def _refuse_inline_passwords(args: argparse.Namespace) -> None:
    """A password in a URL option is refused before any work, and never echoed."""
    from hpo_core.storage import has_url_password

    for attribute, flag, instead in _URL_OPTIONS:
        value = getattr(args, attribute, None)
        if value and has_url_password(value):
            raise HpoError(
                f"{flag}: contains a password, which any user can read from the process list; "
                f"{instead} and drop {flag}"
            )


def _out_folder(value: str, option: str = "--out") -> Path:
    """An output folder, created if missing; checked before any work, so a bad path costs one
    line, not an analysis run and a traceback."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise HpoError(f"{option}: {path} exists and is not a folder; give a folder for the files")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HpoError(f"{option}: cannot create the folder {path} ({exc.strerror})") from None
    return path


def _out_file(value: str, option: str = "--out") -> Path:
    """An output file: its folder is created if missing; a folder at the path is refused."""
    path = Path(value)
    if path.is_dir():
        raise HpoError(f"{option}: {path} is a folder; give a file name, e.g. {path / 'out.yaml'}")
    _out_folder(str(path.parent or Path(".")), option)
    return path


def _storage_url(args: argparse.Namespace) -> str:
    from hpo_core.pipeline import storage_url

    return storage_url(args.storage)  # a password in it was refused by main()


# -- commands ----------------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace) -> int:
    from hpo_core.errors import SpecError
    from hpo_core.objectives import check_objective_spec, is_available
    from hpo_core.spec import load_spec, render_summary, summarize_spec

    failed = False
    for path in args.configs:
        try:
            loaded = load_spec(path, airflow=True)  # a schedule checked by Airflow itself
        except SpecError as exc:
            failed = True
            for line in str(exc).splitlines():
                print(f"error: {line}", file=sys.stderr)
            print(f"{path}: {len(exc.issues)} problem(s)", file=sys.stderr)
            continue
        issues = check_objective_spec(loaded.spec)
        if issues:
            failed = True
            for line in str(SpecError(issues, source=path)).splitlines():
                print(f"error: {line}", file=sys.stderr)
            print(f"{path}: {len(issues)} problem(s)", file=sys.stderr)
            continue
        print(render_summary(summarize_spec(loaded.spec), source=path))
        if not is_available(loaded.spec.objective):
            print(
                f"  warning    objective {loaded.spec.objective!r} is not installed here; "
                "workers on this machine cannot run it"
            )
    return EXIT_ERROR if failed else EXIT_OK


def _cmd_worker(args: argparse.Namespace) -> int:
    from hpo_core.spec import load_spec
    from hpo_core.worker import run_worker

    report = run_worker(
        load_spec(args.config) if args.config else args.study,
        _storage_url(args),
        timeout=args.timeout,
        stop_file=args.stop_file,
        worker_id=args.worker_id,
        max_trials=args.max_trials,
        until=args.until,
    )
    print(json.dumps({k: v for k, v in asdict(report).items() if k != "trial_numbers"}))
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    from hpo_core.checks import run_checks
    from hpo_core.storage import ENV_HOME
    from hpo_core.tracking import resolve_tracking_uri

    if args.out:
        _out_folder(args.out)
    home = Path(os.environ.get(ENV_HOME) or ".hpo")
    checklist = run_checks(
        args.config,
        storage_url=_storage_url(args),
        tracking_uri=None if args.no_tracking else resolve_tracking_uri(args.tracking_uri),
        allow_cpu=args.allow_cpu,
        min_free_gb=args.min_free_gb,
        disk_path=home,
        manifest=args.manifest,
        smoke=not args.no_smoke,
        workers=args.workers,
        gpus=args.gpus,
        per_gpu=args.workers_per_gpu,
        on_result=None if args.json else lambda r: print(r.line, flush=True),
    )
    if args.out:
        for path in checklist.write(args.out):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(checklist.to_json())
    elif checklist.ok:
        print(f"ready to launch {checklist.study_name}")
    if not checklist.ok:
        first = checklist.failed[0]
        print(f"error: check {first.name} failed: {first.reason}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _cmd_sweep(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import plan_local_sweep, run_local_sweep
    from hpo_core.storage import mask_url

    # a bad spec, GPU list or warm-start source: one line, before the banner
    plan = plan_local_sweep(
        args.config,
        _storage_url(args),
        workers=args.workers,
        gpus=args.gpus,
        per_gpu=args.workers_per_gpu,
        warm_start=args.warm_start_from,
    )
    print(
        f"sweep {plan.loaded.spec.study_name}: {args.workers} workers, storage "
        f"{mask_url(plan.url)}",
        file=sys.stderr,
    )
    print(
        f"  worker logs in {plan.log_dir}; stop gracefully with Ctrl-C or "
        f"`touch {plan.stop_file}`",
        file=sys.stderr,
    )
    print(f"  {plan.gpus.line()}", file=sys.stderr)
    result = run_local_sweep(
        plan,
        workers=args.workers,
        timeout=args.timeout,
        status_interval=args.status_interval,
        tracking=not args.no_tracking,
        tracking_uri=args.tracking_uri,
        warm_start=args.warm_start_from,
    )
    print(result.progress.line())
    if result.failed_workers:
        for i in result.failed_workers:
            print(
                f"error: worker {i} exited with code {result.exit_codes[i]}; see "
                f"{result.log_dir / f'worker-{i}.log'}",
                file=sys.stderr,
            )
        return EXIT_ERROR
    return EXIT_INTERRUPTED if result.stopped_by_user else EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    from hpo_core.storage import open_storage
    from hpo_core.study import load_study, stop_flag, study_progress

    handle = open_storage(_storage_url(args), create=False)
    sweep = load_study(args.study, handle)
    progress = study_progress(sweep)
    flag = stop_flag(sweep.study.user_attrs)
    if args.json:
        data = asdict(progress)
        data["started_at"] = progress.started_at.isoformat() if progress.started_at else None
        data.update(finished=progress.finished, failure_rate=progress.failure_rate)
        data["stopped"] = asdict(flag) if flag else None
        print(json.dumps(data, indent=2))
    else:
        print(progress.line())
        if flag is not None:
            print(f"  {flag.line(sweep.name)}")
    return EXIT_OK


def _cmd_studies(args: argparse.Namespace) -> int:
    from hpo_core.storage import mask_url, open_storage
    from hpo_core.study import list_studies

    url = _storage_url(args)
    rows = list_studies(open_storage(url, create=False))
    if not rows:
        print(f"no studies in {mask_url(url)}")
        return EXIT_OK
    width = max(len(r.name) for r in rows)
    print(f"{'study':<{width}}  trials  budget  best        started")
    for r in rows:
        best = f"{r.best_value:.6g}" if r.best_value is not None else "-"
        started = r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "-"
        budget = str(r.n_trials) if r.n_trials is not None else "-"
        print(f"{r.name:<{width}}  {r.trials:>6}  {budget:>6}  {best:<10}  {started}")
    return EXIT_OK


def _cmd_spec(args: argparse.Namespace) -> int:
    from hpo_core.storage import open_storage
    from hpo_core.study import load_study

    sweep = load_study(args.study, open_storage(_storage_url(args), create=False))
    sys.stdout.write(sweep.loaded.text)
    return EXIT_OK


def _cmd_top(args: argparse.Namespace) -> int:
    from hpo_core.storage import open_storage
    from hpo_core.study import load_study, top_trials

    handle = open_storage(_storage_url(args), create=False)
    sweep = load_study(args.study, handle)
    if args.out:
        _out_file(args.out)
    top = top_trials(sweep, args.top)
    if args.out:
        from hpo_core.files import write_atomic

        configs = [
            {
                "rank": t.rank,
                "trial": t.number,
                "value": t.value,
                "params": {**sweep.spec.fixed, **t.params},
            }
            for t in top
        ]
        import yaml

        path = write_atomic(Path(args.out), yaml.safe_dump(configs, sort_keys=False))
        print(f"wrote {len(configs)} configuration(s) to {path}", file=sys.stderr)
    if args.json:
        allowed = sweep.spec.metrics
        rows = [
            asdict(t) | {"attrs": {k: v for k, v in t.attrs.items() if not allowed.is_forbidden(k)}}
            for t in top
        ]
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    if not top:
        print(f"{args.study}: no completed trials yet")
        return EXIT_OK
    metric = sweep.spec.metric or "value"
    for t in top:
        chance = t.attrs.get("chance_level")
        versus = f" (chance level {chance:.3f})" if isinstance(chance, int | float) else ""
        took = f", {t.seconds:.0f}s" if t.seconds is not None else ""
        epochs = t.attrs.get("epochs_trained")
        trained = f", {epochs} epochs" if epochs is not None else ""
        print(f"#{t.rank}  trial {t.number}  {metric}={t.value:.4f}{versus}{trained}{took}")
        figures = _priority_figures(sweep.spec, t.attrs)
        if figures:
            print("    " + "  ".join(f"{k}={v}" for k, v in figures.items()))
        print("    " + ", ".join(f"{k}={_short(v)}" for k, v in t.params.items()))
    return EXIT_OK


def _priority_figures(spec: Any, attrs: dict[str, Any]) -> dict[str, str]:
    """The spec's priority metrics a trial recorded, in order (precision and recall as %)."""
    shown = {}
    for name in spec.metrics.ordered(list(spec.metrics.priority)):
        value = attrs.get(name)
        if isinstance(value, int | float):
            share = name.startswith(("precision", "recall"))
            shown[name] = f"{100 * value:.1f}%" if share else f"{value:.4f}"
    return shown


def _open_sweep(args: argparse.Namespace, name: str) -> Any:
    from hpo_core.pipeline import open_sweep

    return open_sweep(name, _storage_url(args))


def _progress(sweep: Any, *, show: bool) -> Any:
    """An ``on_step`` that prints each analysis step with the time so far (or nothing)."""
    import time

    began = time.perf_counter()

    def on_step(step: str) -> None:
        if show:
            print(
                f"analyze {sweep.name}: {step} ({time.perf_counter() - began:.1f}s)",
                file=sys.stderr,
                flush=True,
            )

    return on_step


def _analysis(sweep: Any, importance: Any = None, *, progress: bool = False) -> Any:
    from hpo_core.pipeline import analyze_sweep

    return analyze_sweep(sweep, importance, on_step=_progress(sweep, show=progress))


def _cmd_analyze(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import report_study

    sweep = _open_sweep(args, args.study)
    _out_folder(args.out)
    done = report_study(
        sweep,
        args.out,
        importance=args.importance,  # choices checked by argparse
        plots=not args.no_plots,
        on_step=_progress(sweep, show=True),
        on_file=lambda name: print(f"analyze {args.study}: wrote {name}", file=sys.stderr),
        on_warning=lambda text: print(f"warning: {text}", file=sys.stderr),
    )
    analysis, files = done.analysis, done.files
    s = analysis.summary
    print(
        f"{s.study_name}: {s.complete} completed, {s.pruned} pruned, {s.failed} failed, "
        f"{s.lost} lost; best {_short(s.best_value)}; decision {analysis.decision.action} "
        f"({analysis.decision.rule})"
    )
    for flag in analysis.flags:
        print(f"  red flag  {flag.message}")
    print(f"report: {Path(args.out) / 'report.md'} ({len(files)} files)")
    _attach(sweep, Path(args.out), "report", backfill=True)
    return EXIT_OK


def _attach(sweep: Any, path: Path, artifact_path: str | None, *, backfill: bool = False) -> None:
    """A tracked sweep's report or next spec goes to its MLflow parent run too (best effort:
    the files on disk are the result; a tracking outage only costs the copy)."""
    from hpo_core.pipeline import publish

    done = publish(sweep, path, artifact_path, backfill=backfill)
    if done is None:
        return
    uri = done.tracker.masked_uri
    if done.backfilled:  # trials whose runs were lost to an outage while the sweep ran
        print(f"tracking: back-filled {done.backfilled} trial run(s) in {uri}")
    if done.warning is not None:
        print(f"warning: {done.warning}", file=sys.stderr)
    elif done.attached:
        print(f"tracking: attached {path.name} to run {done.parent} in {uri}")


def _cmd_decide(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import decide_sweep

    record = decide_sweep(_open_sweep(args, args.study), apply=args.apply)
    print(json.dumps(record, indent=2, default=str))
    return EXIT_OK


def _cmd_replay(args: argparse.Namespace) -> int:
    from hpo_core.analysis import render_replay, replay_decision
    from hpo_core.spec import load_decision

    sweep = _open_sweep(args, args.study)
    n_trials = sweep.study.user_attrs.get("sweepflow.n_trials") or sweep.spec.n_trials
    decision = load_decision(args.decision, direction=sweep.spec.direction, n_trials=n_trials)
    replay = replay_decision(
        sweep.study.get_trials(deepcopy=False), sweep.spec, decision, n_trials=n_trials
    )
    print(json.dumps(replay.as_dict(), indent=2) if args.json else render_replay(replay))
    return EXIT_OK


def _cmd_cleanup(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import cleanup_sweep

    sweep = _open_sweep(args, args.study)
    cleaned, running = cleanup_sweep(sweep, older_than=args.older_than, dry_run=args.dry_run)
    # a trial whose worker is gone is lost (the infrastructure's doing, not the trial's) and
    # re-queued, up to worker.stale_trial_retries: it does not count as a failure
    verb = "would mark lost" if args.dry_run else "marked lost"
    arrow = "would go RUNNING -> lost" if args.dry_run else "RUNNING -> lost"
    for t in cleaned:
        print(f"trial {t.number}: {arrow} ({t.reason})")
    print(
        f"{args.study}: {verb} {len(cleaned)} stale trial(s); {running} still running"
        if cleaned
        else f"{args.study}: no stale trials; {running} running"
    )
    return EXIT_OK


def _cmd_refine(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import refine_sweep

    sweep = _open_sweep(args, args.study)
    _out_file(args.out)
    refinement = refine_sweep(sweep, Path(args.out), study_name=args.study_name)
    width = max(len(st.param) for st in refinement.steps) if refinement.steps else 5
    for st in refinement.steps:
        print(f"{st.param:<{width}}  {st.rule:<11} {st.old} -> {st.new}  ({st.evidence})")
    print(
        f"wrote {args.out}: study {refinement.spec.study_name}, "
        f"{len(refinement.spec.param_ranges)} searched parameters, n_trials "
        f"{refinement.n_trials}; check it with `hpo validate {args.out}`"
    )
    _attach(sweep, Path(args.out), "next_spec")
    return EXIT_OK


def _cmd_lineage(args: argparse.Namespace) -> int:
    from hpo_core.storage import open_storage
    from hpo_core.study import load_study

    handle = open_storage(_storage_url(args), create=False)
    load_study(args.study, handle)  # an unknown study fails before the analysis is imported
    from hpo_core.analysis import render_lineage, study_lineage

    lineage = study_lineage(args.study, handle)
    print(json.dumps(lineage.as_dict(), indent=2) if args.json else render_lineage(lineage))
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from hpo_core.analysis import compare_analyses

    a = _analysis(_open_sweep(args, args.study_a), "none")
    b = _analysis(_open_sweep(args, args.study_b), "none")
    rows = compare_analyses(a, b)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2, default=str))
        return EXIT_OK
    width = max(len(r.figure) for r in rows)
    for r in rows:
        print(f"{r.figure:<{width}}  {_short(r.a):>24}  {_short(r.b):>24}  {r.change}")
    return EXIT_OK


def _cmd_enqueue(args: argparse.Namespace) -> int:
    from hpo_core.study import enqueue_trials, parse_assignments, read_trial_file

    trials = [parse_assignments(args.params)] if args.params else read_trial_file(args.file)
    sweep = _open_sweep(args, args.study)
    queued, skipped = enqueue_trials(sweep, trials)
    also = f" ({skipped} skipped: the study already has a trial with those parameters)"
    print(
        f"queued {queued} trial(s) in {args.study}{also if skipped else ''}; workers run them next"
    )
    return EXIT_OK


def _cmd_stop(args: argparse.Namespace) -> int:
    from hpo_core.study import stop_study

    flag = stop_study(_open_sweep(args, args.study), args.reason, now=args.now)
    how = (
        "running trials save a checkpoint at their next batch and are re-queued (an objective "
        "without checkpoints finishes its trial), workers exit"
        if flag.now
        else "every worker finishes its current trial and exits"
    )
    print(
        f"{args.study}: stop flag set by {flag.by}; {how}, and no new worker starts until "
        f"`hpo resume {args.study}`"
    )
    return EXIT_OK


def _cmd_resume(args: argparse.Namespace) -> int:
    from hpo_core.study import resume_study

    flag = resume_study(_open_sweep(args, args.study))
    if flag is None:
        print(f"{args.study}: not stopped; nothing to do")
    else:
        print(f"{args.study}: stop flag cleared (was: {flag.reason}); workers may join again")
    return EXIT_OK


def _cmd_budget(args: argparse.Namespace) -> int:
    from hpo_core.study import set_budget

    old, new = set_budget(_open_sweep(args, args.study), args.n_trials)
    print(
        f"{args.study}: budget {old} -> {new} trials"
        if old != new
        else f"{args.study}: budget is {new} trials already"
    )
    return EXIT_OK


def _cmd_configs(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import config_catalog, config_dir

    folder = Path(args.dir).resolve() if args.dir else config_dir()
    if not folder.is_dir():
        raise HpoError(f"--dir: {folder} is not a folder; give the config folder")
    entries = config_catalog(folder)
    if args.json:
        rows = [asdict(e) | {"ok": e.ok, "dag_id": e.schedule and e.dag_id} for e in entries]
        print(json.dumps(rows, indent=2))
    else:
        for e in entries:
            if e.ok:
                when = f"  scheduled {e.schedule!r} as {e.dag_id}" if e.schedule else ""
                print(f"ok      {e.file}  study {e.study_name}{when}")
            else:
                print(f"broken  {e.error}")
        broken = sum(not e.ok for e in entries)
        print(f"{folder}: {len(entries)} spec(s), {broken} broken")
    return EXIT_ERROR if any(not e.ok for e in entries) else EXIT_OK


def _cmd_champions(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import champion_ui, train_sweep_champions

    sweep = _open_sweep(args, args.study)
    result = train_sweep_champions(
        sweep,
        tracking_uri=args.tracking_uri,
        top_k=args.top,
        epochs=args.epochs,
        early_stop_patience=args.patience,
        seeds=args.seeds,
        model_name=args.model_name,
    )
    metric = sweep.spec.metric
    for run in result.runs:
        again = " (finished earlier, reused)" if run.reused else ""
        print(
            f"champion #{run.rank} trial {run.trial} seed {run.seed}: {metric}={run.value:.4f}, "
            f"{run.epochs} epochs, {run.train_seconds:.0f}s, {run.n_params:,} parameters, "
            f"run {run.run_id}{again}"
        )
    for trial, (mean, std) in result.means.items():
        print(f"trial {trial}: mean {metric} {mean:.4f} +- {std:.4f}")
    print(f"registered model {result.model_name}: {result.message}")
    print(f"MLflow UI: {champion_ui(sweep)}")
    return EXIT_OK


def _cmd_compare_runs(args: argparse.Namespace) -> int:
    from hpo_core.champions import compare_champions, format_table, write_comparison

    if args.out:
        _out_folder(args.out)
    comparison = compare_champions(
        args.tracking_uri, studies=args.studies, model_name=args.model_name
    )
    print(format_table(comparison))
    if args.out:
        files = write_comparison(comparison, args.out)
        print(f"wrote {', '.join(str(f) for f in files)}")
    return EXIT_OK


def _cmd_track(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import track_sweep

    logged, present, parent, uri = track_sweep(_open_sweep(args, args.study), args.tracking_uri)
    print(
        f"{args.study}: parent run {parent} in {uri}; logged {logged} missing trial run(s), "
        f"{present} were there"
    )
    return EXIT_OK


def _cmd_smoke(args: argparse.Namespace) -> int:
    from hpo_core.spec import load_spec
    from hpo_core.worker import run_smoke_trials

    loaded = load_spec(args.config)
    results = run_smoke_trials(
        loaded.spec,
        n_trials=args.trials,
        epochs=args.epochs,
        max_samples=args.max_samples,
        seed=args.seed,
    )
    if args.json:
        print(
            json.dumps(
                [{k: v for k, v in asdict(r).items() if k != "traceback"} for r in results],
                indent=2,
                default=str,
            )
        )
    for r in results:
        if args.json:
            break
        if r.ok:
            print(f"smoke trial {r.number}: COMPLETE value={r.value:.4f} in {r.seconds:.1f}s")
        else:
            print(f"smoke trial {r.number}: {r.state} in {r.seconds:.1f}s: {r.error}")
        shown = ", ".join(f"{k}={_short(v)}" for k, v in r.params.items())
        print(f"  params  {shown}")
        facts = {k: v for k, v in r.attrs.items() if not isinstance(v, dict)}
        if facts:
            print("  attrs   " + ", ".join(f"{k}={_short(v)}" for k, v in facts.items()))
        if r.traceback and args.verbose:
            print(r.traceback, file=sys.stderr)
    failed = [r for r in results if r.state == "FAIL"]
    if failed:
        print(
            f"error: {len(failed)} of {len(results)} smoke trial(s) failed: {failed[0].error}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return EXIT_OK


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _cmd_data(args: argparse.Namespace) -> int:
    from hpo_core.spec import load_spec

    loaded = load_spec(args.config)
    if loaded.spec.objective == "binary_classifier":
        return _binary_data(loaded.spec, args)
    if loaded.spec.objective != "arc_classifier":
        raise HpoError(
            f"{args.config}: objective {loaded.spec.objective!r} reads no data files; "
            "`hpo data` reads arc_classifier and binary_classifier specs"
        )
    if args.generate:
        raise HpoError("--generate: only binary_classifier specs have a synthetic data set")
    from hpo_core.data import ArcDataConfig, load_arc_data

    data = load_arc_data(ArcDataConfig.from_params({**loaded.spec.fixed, **loaded.spec.data}))
    counts = [int(c) for c in data.labels.bincount(minlength=data.n_classes)]
    summary = {
        "source": data.source,
        "tasks": len(data.task_ids),
        "train": len(data.train_idx),
        "val": len(data.val_idx),
        "labels": data.config.labels or "rule labels",
        "classes": dict(zip(data.class_names, counts, strict=True)),
        "chance_level": round(data.chance_level, 4),
        "centroids": None if data.centroids is None else list(data.centroids.shape),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print(
        f"{summary['source']}: {summary['tasks']} tasks ({summary['train']} train, "
        f"{summary['val']} validation), labels from {summary['labels']}"
    )
    width = max(len(name) for name in data.class_names)
    for name, count in summary["classes"].items():
        print(f"  {name:<{width}}  {count:>5}  {count / len(data.task_ids):6.1%}")
    print(f"chance level (majority class on validation): {summary['chance_level']:.3f}")
    if data.centroids is not None:
        print(f"centroids: {data.config.centroids} {tuple(data.centroids.shape)}")
    return EXIT_OK


def _binary_data(spec: Any, args: argparse.Namespace) -> int:
    from hpo_core.data import (
        TabularConfig,
        check_table,
        generate_binary_dataset,
        write_table,
    )

    where = {key: "data" for key in spec.data}
    config = TabularConfig.from_params({**spec.fixed, **spec.data}, where)
    if args.generate:
        path = Path(config.path)
        if path.exists():
            raise HpoError(
                f"data.path: {path} exists already; delete it to generate a new one, or use it"
            )
        frame = generate_binary_dataset(args.rows, seed=args.seed)
        write_table(frame, path)
        print(f"wrote {len(frame):,} rows to {path}", file=sys.stderr)
    status, reason, details = check_table(config)
    if status == "fail":
        raise HpoError(f"data: {reason}")
    if args.json:
        print(json.dumps({"status": status, "reason": reason, **details}, indent=2, default=str))
    else:
        print(f"{status}: {reason}")
    return EXIT_OK


def _cmd_thresholds(args: argparse.Namespace) -> int:
    from hpo_core.analysis.thresholds import (
        render_markdown,
        threshold_report,
        write_threshold_report,
    )

    sweep = _open_sweep(args, args.study)
    if args.out:
        _out_folder(args.out)
    report = threshold_report(
        sweep,
        top=args.top,
        required_precision=args.required_precision,
        min_predicted=args.min_predicted,
    )
    if args.out:
        for path in write_threshold_report(report, args.out):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "rank": m.rank,
                        "trial": m.trial,
                        report.metric: m.value,
                        "chosen": asdict(m.chosen) if m.chosen else None,
                        "rows": [asdict(r) for r in m.rows],
                    }
                    for m in report.models
                ],
                indent=2,
                default=str,
            )
        )
        return EXIT_OK
    print(render_markdown(report).split("\n## ")[0].rstrip())
    return EXIT_OK


def _cmd_objectives(args: argparse.Namespace) -> int:
    from hpo_core.objectives import is_available, registered_objectives

    for objective in registered_objectives():
        mark = "" if is_available(objective.name) else "  (not installed here)"
        print(f"{objective.name:<16} {objective.summary}{mark}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
