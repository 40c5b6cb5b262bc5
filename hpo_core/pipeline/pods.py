"""Worker pods: what the deployment sets, and the little a run may ask for.

Airflow's security model trusts DAG authors and deployment managers, and gives a person who may
only trigger a DAG validated parameters, nothing more. So everything that decides what a worker
pod is and what it can reach (image, namespace, service account, Secret, node selector,
tolerations, priority class, the GPU resource name, the /tmp size, the deadline's drain allowance,
the termination grace period's maximum, deferral) comes from the ``hpo_kubernetes`` connection's
extra, over :data:`POD_DEFAULTS`. A run's ``pod`` parameter may
set ``gpus``, ``cpu`` and ``memory`` only, each at most the connection's ``max_gpus``,
``max_cpu``, ``max_memory`` (by default, the deployment's own values). Both are checked at the
run's ``plan`` task, before any pod exists; the DAG's form says the same in its JSON schema
(:data:`POD_REQUEST_SCHEMA`), so the form refuses a bad request before the run is queued.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from hpo_core.errors import HpoError

if TYPE_CHECKING:
    from hpo_core.pipeline.run import RunPlan

__all__ = [
    "CONN_KUBERNETES",
    "POD_DEFAULTS",
    "POD_REQUEST_SCHEMA",
    "RUN_POD_SETTINGS",
    "PodDeployment",
    "parse_quantity",
    "pod_arguments",
    "pod_deployment",
    "pod_request",
    "pod_settings",
]

CONN_KUBERNETES = "hpo_kubernetes"
RUN_POD_SETTINGS = ("gpus", "cpu", "memory")  # all a run's `pod` parameter may set

# Kubernetes' canonical quantity grammar (apimachinery resource.Quantity), unsigned: a request
# is never negative. The kubernetes client's parse_quantity is laxer ("1K", "Infinity", "NaN").
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_DECIMAL_SI = {"n": -3, "u": -2, "m": -1, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_BINARY_SI = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}

# distribution/reference's grammar (what `docker pull` and the kubelet accept): a name, an
# optional tag, an optional digest; only sha256 digests, the one registries use for images
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
_IMAGE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Za-z=_-]+))?",
    re.ASCII,
)
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# the name part of a qualified name (apimachinery validation.IsQualifiedName)
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("500m", "4", "16Gi", "1.5G") as a number, so that requests compare
    by value ("16000m" is "16"). Raises :class:`ValueError` outside the canonical grammar."""
    found = _QUANTITY.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    try:  # the kubernetes client is a dependency of the cncf provider, not of hpo_core
        from kubernetes.utils.quantity import parse_quantity as k8s_parse_quantity
    except ImportError:
        return _parse_quantity(found)
    return Decimal(k8s_parse_quantity(text))


def _parse_quantity(found: re.Match[str]) -> Decimal:
    number, suffix = Decimal(found.group(1)), found.group(3) or ""
    if suffix in _BINARY_SI:
        return number * Decimal(1024) ** _BINARY_SI[suffix]
    if suffix in _DECIMAL_SI:
        return number * Decimal(1000) ** _DECIMAL_SI[suffix]
    return number.scaleb(int(suffix[1:])) if suffix else number


def _quantity(value: Any) -> str:
    # a JSON integer is a quantity too (`"cpu": 8`); a bool is not
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or _QUANTITY.fullmatch(text) is None:
        raise PydanticCustomError(
            "quantity",
            "must be a Kubernetes quantity such as '4', '500m', '16Gi' or '1.5G', got {value}",
            {"value": repr(value)},
        )
    if parse_quantity(text) <= 0:
        raise PydanticCustomError("quantity", "must be above 0, got {value}", {"value": repr(text)})
    return text


def _image(value: str) -> str:
    found = _IMAGE.fullmatch(value)
    if found is None or len(found["name"]) > 255:
        raise PydanticCustomError(
            "image",
            "{value} is not an image reference; write registry/repository:tag or "
            "registry/repository@sha256:<64 hex digits>",
            {"value": repr(value)},
        )
    digest = found["digest"]
    if digest is not None and _SHA256.fullmatch(digest) is None:
        raise PydanticCustomError(
            "image",
            "the digest of {value} must be sha256:<64 lowercase hex digits>",
            {"value": repr(value)},
        )
    return value


def _extended_resource(value: str) -> str:
    """Kubernetes' rule for an extended resource name (apimachinery IsExtendedResourceName): a
    ``domain/name`` outside ``kubernetes.io`` whose quota name ``requests.<domain>/<name>`` is a
    qualified name. The API server refuses a pod whose limits break it; here it fails ``plan``."""
    domain, _, name = value.partition("/")
    quota_domain = f"requests.{domain}"
    if (
        not name
        or "/" in name
        or "kubernetes.io/" in value
        or value.startswith("requests.")
        or len(quota_domain) > 253
        or _DNS_SUBDOMAIN.fullmatch(quota_domain) is None
        or len(name) > 63
        or _QUALIFIED_NAME.fullmatch(name) is None
    ):
        raise PydanticCustomError(
            "extended_resource",
            "{value} is not an extended resource name; write <domain>/<name> outside "
            "kubernetes.io, such as 'nvidia.com/gpu' or a MIG profile 'nvidia.com/mig-1g.10gb'",
            {"value": repr(value)},
        )
    return value


def _name(pattern: re.Pattern[str], what: str, longest: int) -> Any:
    def check(value: str) -> str:
        if len(value) > longest or pattern.fullmatch(value) is None:
            raise PydanticCustomError(
                "k8s_name",
                "{value} is not a Kubernetes name ({what}: lowercase letters, digits and '-', "
                "at most {longest} characters)",
                {"value": repr(value), "what": what, "longest": longest},
            )
        return value

    return AfterValidator(check)


Quantity = Annotated[str, BeforeValidator(_quantity)]
Gpus = Annotated[int, Field(ge=0, strict=True)]
Image = Annotated[str, Field(strict=True), AfterValidator(_image)]
DnsLabel = Annotated[str, Field(strict=True), _name(_DNS_LABEL, "RFC 1123 label", 63)]
DnsSubdomain = Annotated[str, Field(strict=True), _name(_DNS_SUBDOMAIN, "RFC 1123 subdomain", 253)]
ExtendedResource = Annotated[str, Field(strict=True), AfterValidator(_extended_resource)]
Seconds = Annotated[int, Field(ge=1, strict=True)]


class Toleration(BaseModel):
    """A Kubernetes toleration, in the client's (snake_case) field names."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class PodDeployment(BaseModel):
    """The worker pods as the deployment manager sets them: the ``hpo_kubernetes`` connection's
    extra (JSON object) over these defaults. Nothing here can come from a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: Image = "sweepflow-worker:0.1.0"  # a tag, or a digest: repo@sha256:<64 hex>
    namespace: DnsLabel = "sweepflow"
    secret: DnsSubdomain = "sweepflow-storage"  # a Secret with keys storage-url, tracking-uri
    service_account: DnsSubdomain | None = None  # its API token is never mounted in the pod
    node_selector: dict[str, str] = {"nvidia.com/gpu.present": "true"}
    tolerations: list[Toleration] = [
        Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
    ]
    priority_class: DnsSubdomain | None = None  # a PriorityClass the cluster defines
    # the extended resource a worker's GPUs are counted in: whole GPUs, or a MIG profile the
    # device plugin advertises (`kubectl describe node`), e.g. nvidia.com/mig-1g.10gb
    gpu_resource: ExtendedResource = "nvidia.com/gpu"
    gpus: Gpus = 1  # `gpu_resource` per worker, unless the run asks for another count
    cpu: Quantity = "4"  # requested and limit, unless the run asks
    memory: Quantity = "16Gi"  # requested and limit, unless the run asks
    max_gpus: Gpus | None = None  # the most a run may ask for; None: `gpus`
    max_cpu: Quantity | None = None  # None: `cpu`
    max_memory: Quantity | None = None  # None: `memory`
    tmp_size: Quantity = "2Gi"  # sizeLimit of the /tmp emptyDir (the root filesystem is read-only)
    # a PersistentVolumeClaim (ReadWriteMany, in `namespace`) mounted where workers keep trial
    # checkpoints ($HPO_HOME/artifacts): a trial re-queued after its pod was evicted or preempted
    # resumes from it in another pod. None: checkpoints live in the pod's /tmp and go with it
    checkpoint_claim: DnsSubdomain | None = None
    # activeDeadlineSeconds = the spec's worker.timeout + this: the worker starts no trial after
    # its timeout, and this is the time its last trial (and the image pull, which the deadline
    # counts from the pod's start) gets before Kubernetes kills the pod
    drain_seconds: Annotated[int, Field(ge=0, strict=True)] = 3600
    # terminationGracePeriodSeconds: between SIGTERM (eviction, preemption, a killed task, the
    # deadline) and SIGKILL the worker finishes its batch and saves the trial's checkpoint. 120 s
    # covers the batch plus writing a few GB of model and optimizer state at ~100 MB/s, and is
    # the notice AWS gives before reclaiming a spot node. A spec's worker.termination_grace_seconds
    # wins, up to `max_termination_grace_seconds` (None: this value)
    termination_grace_seconds: Seconds = 120
    max_termination_grace_seconds: Seconds | None = None
    # Deferrable pods: the task creates its pod and hands the wait to the triggerer, so a pod
    # holds no Airflow worker slot while it trains; false for a deployment without a triggerer
    deferrable: Annotated[bool, Field(strict=True)] = True
    poll_seconds: Seconds = 10  # how often the triggerer reads each pod's state
    log_seconds: Seconds = 60  # how often the triggerer copies new pod log lines to the task log
    # a pod waiting this long for a node (GPUs busy) or this long to start on one (pulling the
    # worker image) fails its task; the provider's 120 s suits neither a shared GPU cluster nor
    # a multi-GB CUDA image
    schedule_timeout_seconds: Seconds = 3600
    startup_timeout_seconds: Seconds = 900

    def maximum(self, key: str) -> Any:
        """The most a run may ask for of ``key`` (one of :data:`RUN_POD_SETTINGS`)."""
        found = getattr(self, f"max_{key}")
        return getattr(self, key) if found is None else found

    @property
    def grace_maximum(self) -> int:
        """The longest termination grace period a spec may ask for."""
        most = self.max_termination_grace_seconds
        return self.termination_grace_seconds if most is None else most


POD_DEFAULTS: dict[str, Any] = PodDeployment().model_dump()

# The form's schema for the `pod` parameter (the maxima are the connection's, known at run time)
POD_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "gpus": {"type": ["null", "integer"], "minimum": 0},
        **{
            key: {"type": ["null", "string", "integer"], "minimum": 1, "pattern": QUANTITY_PATTERN}
            for key in ("cpu", "memory")
        },
    },
    "additionalProperties": False,
}


class _PodRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: Gpus | None = None
    cpu: Quantity | None = None
    memory: Quantity | None = None


def _one_line(exc: ValidationError, prefix: str, known: Any) -> HpoError:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return HpoError(f"{prefix}{where}: unknown setting; known: {', '.join(known)}")
    shown = repr(first.get("input"))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    got = "" if "got" in first["msg"] else f", got {shown}"
    return HpoError(f"{prefix}{where}: {first['msg']}{got}")


def pod_deployment(extra: str | dict[str, Any] | None) -> PodDeployment:
    """The connection's extra (JSON text or its object), checked; each problem names
    ``extra.<field>``. None or empty: no connection, the defaults."""
    where = f"connection {CONN_KUBERNETES}: extra"
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra.strip() else None
        except ValueError as exc:
            raise HpoError(f"{where}: not valid JSON ({exc}); write a JSON object") from None
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        kind = type(extra).__name__
        raise HpoError(f"{where}: must be a JSON object of pod settings, not a {kind}")
    try:
        deployment = PodDeployment.model_validate(extra)
    except ValidationError as exc:
        raise _one_line(exc, f"{where}.", PodDeployment.model_fields) from None
    for key in RUN_POD_SETTINGS:
        value, most = getattr(deployment, key), deployment.maximum(key)
        if _amount(key, value) > _amount(key, most):
            raise HpoError(
                f"{where}.{key}: {value!r} is above extra.max_{key} {most!r}; lower {key} or "
                f"raise max_{key}"
            )
    if deployment.termination_grace_seconds > deployment.grace_maximum:
        raise HpoError(
            f"{where}.termination_grace_seconds: {deployment.termination_grace_seconds} is above "
            f"extra.max_termination_grace_seconds {deployment.grace_maximum}; lower "
            "termination_grace_seconds or raise max_termination_grace_seconds"
        )
    return deployment


def pod_request(raw: Any) -> dict[str, Any]:
    """A run's ``pod`` parameter, checked: ``gpus``, ``cpu``, ``memory`` and nothing else (the
    empty ones dropped). The maxima are checked by :func:`pod_settings`."""
    allowed = ", ".join(RUN_POD_SETTINGS)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise HpoError(f"params.pod: must be a mapping that sets {allowed}, got {raw!r}")
    for key in sorted(raw, key=str):
        if key in RUN_POD_SETTINGS:
            continue
        if key in PodDeployment.model_fields:
            raise HpoError(
                f"params.pod.{key}: set by the deployment (connection {CONN_KUBERNETES}), not "
                f"by a run; a run may set {allowed}"
            )
        raise HpoError(f"params.pod.{key}: unknown setting; a run may set {allowed}")
    try:
        request = _PodRequest.model_validate(raw)
    except ValidationError as exc:
        raise _one_line(exc, "params.pod.", RUN_POD_SETTINGS) from None
    return request.model_dump(exclude_none=True)


def pod_settings(
    request: Any = None,
    *,
    connection: str | dict[str, Any] | None = None,
    timeout: float | None = None,
    grace: int | None = None,
) -> dict[str, Any]:
    """The worker pods' settings (JSON-safe, for the run plan): the deployment's (``connection``,
    the ``hpo_kubernetes`` extra) with the run's ``request`` of gpus, cpu, memory within its
    maxima; ``timeout`` is the spec's ``worker.timeout`` (``hpo worker --timeout``), and the
    pod's ``active_deadline_seconds`` is that plus the deployment's drain allowance. ``grace`` is
    the spec's ``worker.termination_grace_seconds``: the pod's termination grace period, at most
    the deployment's maximum (the deployment's own value without it)."""
    deployment = pod_deployment(connection)
    asked = pod_request(request)
    for key, value in asked.items():
        most = deployment.maximum(key)
        if _amount(key, value) > _amount(key, most):
            raise HpoError(
                f"params.pod.{key}: {value!r} is above the deployment's maximum of {most!r} "
                f"(connection {CONN_KUBERNETES}, extra.max_{key}); ask for at most {most!r}"
            )
    if grace is not None and grace > deployment.grace_maximum:
        raise HpoError(
            f"worker.termination_grace_seconds: {grace} is above the deployment's maximum of "
            f"{deployment.grace_maximum} (connection {CONN_KUBERNETES}, "
            f"extra.max_termination_grace_seconds); ask for at most {deployment.grace_maximum}"
        )
    settings = deployment.model_dump(
        exclude={
            "max_gpus",
            "max_cpu",
            "max_memory",
            "drain_seconds",
            "max_termination_grace_seconds",
        }
    )
    if grace is not None:
        settings["termination_grace_seconds"] = grace
    settings["tolerations"] = [t.model_dump(exclude_none=True) for t in deployment.tolerations]
    settings.update(asked)
    settings["worker_timeout"] = timeout
    settings["active_deadline_seconds"] = (
        None if timeout is None else math.ceil(timeout) + deployment.drain_seconds
    )
    return settings


def _amount(key: str, value: Any) -> Decimal:
    return Decimal(value) if key == "gpus" else parse_quantity(value)


def pod_arguments(plan: RunPlan, slot: dict[str, Any]) -> list[str]:
    """`hpo worker` arguments for a pod (the image's entrypoint is `hpo`): the pod joins the
    study by name and runs its stored spec (prepare created it), so a config baked into the
    image can never disagree with it. No credential: the storage URL comes from a Kubernetes
    Secret as HPO_STORAGE_URL."""
    from hpo_core.worker import worker_command

    return worker_command(
        study=plan.study_name,
        timeout=plan.pod.get("worker_timeout"),
        worker_id=slot["worker_id"],
        until=slot["until"],
        executable="hpo",
    )[1:]
