"""What every `hpo` command group shares: exit codes, the options several commands take, the
argument types, and the few steps before a command's work (output paths, the storage)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo_core.errors import HpoError

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_USAGE",
    "Command",
    "Group",
    "fraction",
    "gpu_args",
    "open_sweep",
    "out_file",
    "out_folder",
    "positive_float",
    "positive_int",
    "short",
    "storage_arg",
    "storage_url",
    "tracking_args",
]

# EXIT_STOPPED: the study's stop flag is set, so no worker starts (`hpo resume` clears it);
# distinct so a scheduler or a script can tell "stopped on purpose" from "broken".
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass(frozen=True)
class Command:
    """One subcommand: its name and one-line help, its handler, and the options it takes."""

    name: str
    help: str
    handler: Callable[[argparse.Namespace], int]
    options: Callable[[argparse.ArgumentParser], None]


Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Group:
    """The commands of one stage of a sweep, listed together in `hpo --help`."""

    title: str
    commands: list[Command] = field(default_factory=list)

    def command(
        self, name: str, help: str, options: Callable[[argparse.ArgumentParser], None]
    ) -> Callable[[Handler], Handler]:
        """Declare the decorated handler as subcommand ``name`` (its options: ``options``)."""

        def register(handler: Handler) -> Handler:
            self.commands.append(Command(name, help, handler, options))
            return handler

        return register


def tracking_args(p: argparse.ArgumentParser, *, optional: bool = True) -> None:
    p.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking (default: $MLFLOW_TRACKING_URI, else $HPO_HOME/mlflow.db)",
    )
    if optional:
        p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def gpu_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpus",
        metavar="IDS",
        help="GPUs for the workers, round robin: 0,1,2,3 or GPU-/MIG- UUIDs (default: "
        "$CUDA_VISIBLE_DEVICES, else what nvidia-smi -L lists, else the CPU)",
    )
    p.add_argument(
        "--workers-per-gpu",
        type=positive_int,
        metavar="K",
        help="put K workers on each GPU in turn (--workers must be at most K x GPUs)",
    )


def storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        metavar="URL",
        help="study storage (default: $HPO_STORAGE_URL, else the local journal)",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, but got {value}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], but got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], e.g. 0.5 for 50%, but got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, but got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, but got {value:g}")
    return value


def out_folder(value: str, option: str = "--out") -> Path:
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


def out_file(value: str, option: str = "--out") -> Path:
    """An output file: its folder is created if missing; a folder at the path is refused."""
    path = Path(value)
    if path.is_dir():
        raise HpoError(f"{option}: {path} is a folder; give a file name, e.g. {path / 'out.yaml'}")
    out_folder(str(path.parent or Path(".")), option)
    return path


def storage_url(args: argparse.Namespace) -> str:
    from hpo_core.pipeline import storage_url as resolve

    return resolve(args.storage)  # a password in it was refused by main()


def open_sweep(args: argparse.Namespace, name: str) -> Any:
    from hpo_core.pipeline import open_sweep as load

    return load(name, storage_url(args))


def short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
