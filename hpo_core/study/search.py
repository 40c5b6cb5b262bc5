"""Samplers and pruners: Optuna's by name, or a class the spec names, checked before use.

A spec's ``sampler.type`` / ``pruner.type`` is a built-in name (``tpe``, ``cmaes``, ...), a
class ``package.module:Class``, or a class of a vendored OptunaHub package,
``optunahub:<category>/<name>:Class``. Naming a class imports its module in every worker, so it
runs the spec author's code: a deployment allows it by listing module prefixes in
``HPO_ALLOWED_SEARCH_MODULES`` (unset: built-ins only; Optuna's own ``optuna.samplers`` and
``optuna.pruners`` are always allowed). OptunaHub packages load only from the deployment's local
copy, ``HPO_OPTUNAHUB_DIR``, never from the network.

Checked before anything is imported (the allowlist), then: the module imports, the class is a
``BaseSampler``/``BasePruner``, and the keyword arguments the build passes (the section's fields
and its ``options``) bind to the class's signature. The same functions build the objects, so
what ``hpo validate`` accepted is what a worker constructs.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_core.errors import HpoError, SpecError, SpecIssue

if TYPE_CHECKING:
    from collections.abc import Callable

    from hpo_core.spec import PrunerSpec, SamplerSpec, SweepSpec

__all__ = [
    "BUILTIN_PRUNERS",
    "BUILTIN_SAMPLERS",
    "ENV_ALLOWED_SEARCH_MODULES",
    "ENV_OPTUNAHUB_DIR",
    "Builtin",
    "allowed_search_modules",
    "pruner_call",
    "pruner_class",
    "pruner_kwargs",
    "require_installed",
    "sampler_call",
    "sampler_class",
    "sampler_kwargs",
    "search_problems",
    "search_requirements",
]

ENV_ALLOWED_SEARCH_MODULES = "HPO_ALLOWED_SEARCH_MODULES"
ENV_OPTUNAHUB_DIR = "HPO_OPTUNAHUB_DIR"
HUB_PREFIX = "optunahub:"
# Optuna's own classes: installed by the deployment, importing them runs no spec author's code
_ALWAYS_ALLOWED = ("optuna.samplers", "optuna.pruners")
_MODULE_PREFIX = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_HUB_PACKAGE = re.compile(r"^optunahub:[a-z0-9_]+(/[A-Za-z0-9_]+)?$")


@dataclass(frozen=True)
class Builtin:
    """A sampler or pruner the spec names by its short name."""

    target: str  # module:Class
    requires: tuple[str, ...] = ()  # modules it imports when it runs, beyond sweepflow's own
    extra: str | None = None  # the sweepflow extra that installs them


BUILTIN_SAMPLERS = {
    "tpe": Builtin("optuna.samplers:TPESampler"),
    "random": Builtin("optuna.samplers:RandomSampler"),
    "cmaes": Builtin("optuna.samplers:CmaEsSampler", ("cmaes",), "cmaes"),
    "qmc": Builtin("optuna.samplers:QMCSampler"),  # scipy: a core dependency
    "gp": Builtin("optuna.samplers:GPSampler", ("torch",), "gp"),
    "nsga2": Builtin("optuna.samplers:NSGAIISampler"),
}
# hyperband is built as hpo_core.study.sampling.ResumableHyperbandPruner, which takes Optuna's
# arguments unchanged
BUILTIN_PRUNERS = {
    "hyperband": Builtin("optuna.pruners:HyperbandPruner"),
    "median": Builtin("optuna.pruners:MedianPruner"),
    "none": Builtin("optuna.pruners:NopPruner"),
}
# the sampler fields each built-in takes (seed goes to every one)
_STARTUP = {"tpe", "cmaes", "gp"}


def allowed_search_modules(value: str | None = None) -> tuple[str, ...]:
    """The deployment's allowed module prefixes from ``value`` (default:
    ``$HPO_ALLOWED_SEARCH_MODULES``): ``package.module`` entries and ``optunahub:<category>``
    or ``optunahub:<category>/<name>`` entries, comma-separated. An entry of another form is
    an error: a typo must not silently allow nothing (or everything)."""
    raw = os.environ.get(ENV_ALLOWED_SEARCH_MODULES, "") if value is None else value
    entries = tuple(e.strip() for e in raw.split(",") if e.strip())
    bad = [e for e in entries if not (_MODULE_PREFIX.match(e) or _HUB_PACKAGE.match(e))]
    if bad:
        raise HpoError(
            f"{ENV_ALLOWED_SEARCH_MODULES}: {bad[0]!r} is neither a module prefix "
            "(package.module) nor `optunahub:<category>[/<name>]`; fix the list"
        )
    return entries


def _is_allowed(module: str, entries: tuple[str, ...]) -> bool:
    sep = "/" if module.startswith(HUB_PREFIX) else "."
    return any(module == e or module.startswith(e + sep) for e in (*_ALWAYS_ALLOWED, *entries))


def _check_allowed(field: str, type_: str) -> None:
    module = type_.rpartition(":")[0]
    entries = allowed_search_modules()
    if not _is_allowed(module, entries):
        now = f"{ENV_ALLOWED_SEARCH_MODULES}={','.join(entries)}" if entries else "none allowed"
        raise SpecError(
            [
                SpecIssue(
                    f"{field}.type",
                    f"{module!r} is not allowed in this deployment ({now}); use a built-in "
                    "name, or ask the platform engineer to add the module to "
                    f"{ENV_ALLOWED_SEARCH_MODULES}",
                )
            ]
        )


@functools.cache
def _hub_module(package: str, root: str) -> Any:
    import optunahub

    return optunahub.load_local_module(package, registry_root=root)


def _import(field: str, module: str) -> Any:
    """The module of a class path; a SpecError naming ``field`` when it cannot be imported."""
    issue = functools.partial(SpecIssue, f"{field}.type")
    if module.startswith(HUB_PREFIX):
        package = module.removeprefix(HUB_PREFIX)
        root = os.environ.get(ENV_OPTUNAHUB_DIR, "")
        if not root:
            raise SpecError(
                [
                    issue(
                        f"OptunaHub packages load from a local copy only, and {ENV_OPTUNAHUB_DIR} "
                        "is not set; the platform engineer vendors the package (docs/security.md)"
                    )
                ]
            )
        if not (Path(root) / package / "__init__.py").is_file():
            raise SpecError(
                [
                    issue(
                        f"no OptunaHub package {package!r} in {ENV_OPTUNAHUB_DIR} ({root}); "
                        "vendor it there or fix the name"
                    )
                ]
            )
        if importlib.util.find_spec("optunahub") is None:
            raise SpecError(
                [
                    issue(
                        "OptunaHub packages need the optunahub package; "
                        "pip install 'sweepflow[hub]'"
                    )
                ]
            )
        load: Callable[[], Any] = functools.partial(_hub_module, package, str(Path(root).resolve()))
    else:
        load = functools.partial(importlib.import_module, module)
    try:
        return load()
    except ModuleNotFoundError as exc:
        problem = (
            f"cannot import {module!r} ({exc.name} is missing); put the module on PYTHONPATH "
            "or install its package"
        )
    except Exception as exc:  # the module's own code failed: say so, in one line
        problem = f"importing {module!r} failed: {type(exc).__name__}: {exc}".splitlines()[0]
    raise SpecError([issue(problem)])


def _resolve(field: str, type_: str, builtins: dict[str, Builtin], base: type) -> type:
    if type_ in builtins:
        module, _, name = builtins[type_].target.partition(":")
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
    _check_allowed(field, type_)
    module, _, name = type_.rpartition(":")
    cls = getattr(_import(field, module), name, None)
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        what = (
            "no such name"
            if cls is None
            else "a class of another kind"
            if inspect.isclass(cls)
            else f"a {type(cls).__name__}"
        )
        raise SpecError(
            [
                SpecIssue(
                    f"{field}.type",
                    f"{type_} is not a subclass of optuna's {base.__name__} ({what}); name a "
                    f"{base.__name__} subclass after ':'",
                )
            ]
        )
    return cls


def sampler_class(cfg: SamplerSpec) -> type:
    """The sampler's class; :class:`SpecError` naming ``sampler.type`` when it is not allowed,
    not importable or not a ``BaseSampler``."""
    from optuna.samplers import BaseSampler

    return _resolve("sampler", cfg.type, BUILTIN_SAMPLERS, BaseSampler)


def pruner_class(cfg: PrunerSpec) -> type:
    """The pruner's class, checked as :func:`sampler_class` checks a sampler's."""
    from optuna.pruners import BasePruner

    return _resolve("pruner", cfg.type, BUILTIN_PRUNERS, BasePruner)


def sampler_kwargs(spec: SweepSpec) -> dict[str, Any]:
    """The keyword arguments the sampler's class is built with (weighted choices and per-trial
    reseeding are added around it, in :func:`hpo_core.study.build_sampler`)."""
    cfg = spec.sampler
    kwargs: dict[str, Any] = {}
    if cfg.seed is not None:
        kwargs["seed"] = cfg.seed
    elif cfg.type == "qmc":
        # QMC's workers must share one scrambling seed, or each draws its own sequence and the
        # points lose their spread (Optuna's QMCSampler docs); the study name fixes one
        kwargs["seed"] = zlib.crc32(spec.study_name.encode())
    if cfg.type in _STARTUP:
        kwargs["n_startup_trials"] = cfg.n_startup_trials
    if cfg.type == "tpe":
        conditional = any(p.when for p in spec.param_ranges.values())
        kwargs |= {
            "multivariate": cfg.multivariate,
            # conditional spaces need TPE's group decomposition to stay multivariate
            "group": cfg.multivariate and conditional,
            "constant_liar": cfg.constant_liar,
        }
    return kwargs | cfg.options


def pruner_kwargs(spec: SweepSpec) -> dict[str, Any]:
    """The keyword arguments the pruner's class is built with."""
    cfg = spec.pruner
    kwargs: dict[str, Any] = {}
    if cfg.type == "hyperband":
        kwargs = {
            "min_resource": cfg.min_resource,
            "max_resource": cfg.max_resource,
            "reduction_factor": cfg.reduction_factor,
        }
    elif cfg.type == "median":
        kwargs = {"n_startup_trials": cfg.n_startup_trials, "n_warmup_steps": cfg.n_warmup_steps}
    return kwargs | cfg.options


def _bind(field: str, cls: type, kwargs: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # a class without a readable signature: Python checks it
        return
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        takes = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        unknown = sorted(set(kwargs) - set(takes))
        has_varkw = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        if unknown and not has_varkw:
            where = "seed" if unknown == ["seed"] else f"options.{unknown[0]}"
            fix = "remove sampler.seed" if where == "seed" else f"remove {unknown[0]!r}"
            close = difflib.get_close_matches(unknown[0], takes, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problem = (
                f"{cls.__name__} takes no argument {unknown[0]!r} ({hint}it takes "
                f"{', '.join(takes) or 'none'}); {fix}"
            )
        else:
            where, problem = "options", f"{cls.__name__}: {exc}; fix `options:`"
        raise SpecError([SpecIssue(f"{field}.{where}", problem)]) from None


def sampler_call(spec: SweepSpec) -> tuple[type, dict[str, Any]]:
    """The sampler's class and the keyword arguments to build it with, checked to bind
    (:class:`SpecError` naming the field otherwise)."""
    cls, kwargs = sampler_class(spec.sampler), sampler_kwargs(spec)
    _bind("sampler", cls, kwargs)
    return cls, kwargs


def pruner_call(spec: SweepSpec) -> tuple[type, dict[str, Any]]:
    """The pruner's class and keyword arguments, checked as :func:`sampler_call` checks."""
    cls, kwargs = pruner_class(spec.pruner), pruner_kwargs(spec)
    _bind("pruner", cls, kwargs)
    return cls, kwargs


def search_problems(spec: SweepSpec) -> list[SpecIssue]:
    """What keeps the spec's sampler or pruner from being built, each naming its field (the
    deployment's allowlist is asked before a module is imported)."""
    issues: list[SpecIssue] = []
    for call in (sampler_call, pruner_call):
        try:
            call(spec)
        except SpecError as exc:
            issues += exc.issues
    return issues


def _requirements(spec: SweepSpec) -> list[tuple[str, str, str | None]]:
    found = []
    for field, builtins in (("sampler", BUILTIN_SAMPLERS), ("pruner", BUILTIN_PRUNERS)):
        type_ = getattr(spec, field).type
        builtin = builtins.get(type_)
        found += [(field, module, builtin.extra) for module in builtin.requires] if builtin else []
        if type_.startswith(HUB_PREFIX):
            found.append((field, "optunahub", "hub"))
    return found


def search_requirements(spec: SweepSpec) -> list[tuple[str, str | None]]:
    """Modules the spec's sampler or pruner imports when it runs that sweepflow does not
    install by default, each with the extra that installs it."""
    return [(module, extra) for _, module, extra in _requirements(spec)]


def require_installed(spec: SweepSpec) -> None:
    """:class:`SpecError` when a package the spec's sampler or pruner needs is missing here
    (checked where they are built: a scheduler that only validates may lack it)."""
    for field, module, extra in _requirements(spec):
        if importlib.util.find_spec(module) is None:
            raise SpecError(
                [
                    SpecIssue(
                        f"{field}.type",
                        f"{getattr(spec, field).type} needs the {module} package, not "
                        f"installed here; pip install 'sweepflow[{extra}]' where workers run",
                    )
                ]
            )
