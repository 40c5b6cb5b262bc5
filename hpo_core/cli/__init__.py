"""The `hpo` command: one module per stage of a sweep, each command's options beside its handler.

User mistakes end as `error: <what and how to fix>` with a non-zero exit. The commands parse
arguments and print; the work is a call into :mod:`hpo_core.pipeline`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hpo_core.cli import champions, control, data, decide, plan, run, watch
from hpo_core.cli._common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STOPPED,
    Group,
)
from hpo_core.errors import HpoError, StudyStopped

__all__ = ["main"]

_log = logging.getLogger("hpo")

# in the order of a sweep's life: `hpo --help` lists them so
GROUPS: tuple[Group, ...] = (
    plan.GROUP,
    run.GROUP,
    watch.GROUP,
    control.GROUP,
    decide.GROUP,
    champions.GROUP,
    data.GROUP,
)


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

    from hpo_core.pipeline import hpo_home, mask_url

    text = mask_url("".join(traceback.format_exception(exc)))
    first = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"hpo-{args.command}-{stamp}-{os.getpid()}.log"
    for folder in (hpo_home() / "logs", Path(tempfile.gettempdir())):
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
        f"{type(exc).__name__}: {first} (unexpected; please report it with the traceback in {path})"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpo",
        description="sweepflow: hyperparameter sweeps on Optuna studies.",
        epilog=_commands_by_stage()
        + "\n\nStorage: --storage, else $HPO_STORAGE_URL, else a journal file under $HPO_HOME "
        "(default ./.hpo).\nKeep passwords in the environment, not in commands.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of the commands below"
    )
    for group in GROUPS:
        for command in group.commands:
            # no help= here: argparse would list every command again, ungrouped
            p = sub.add_parser(command.name, description=command.help)
            command.options(p)
            p.set_defaults(handler=command.handler)
    return parser


def _commands_by_stage() -> str:
    width = max(len(c.name) for g in GROUPS for c in g.commands)
    lines = ["commands, by stage:"]
    for group in GROUPS:
        lines += ["", f"  {group.title}"]
        lines += [f"    {c.name:<{width}}  {c.help}" for c in group.commands]
    return "\n".join(lines)


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
    from hpo_core.pipeline import has_url_password

    for attribute, flag, instead in _URL_OPTIONS:
        value = getattr(args, attribute, None)
        if value and has_url_password(value):
            raise HpoError(
                f"{flag}: contains a password, which any user can read from the process list; "
                f"{instead} and drop {flag}"
            )
