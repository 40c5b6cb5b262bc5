"""The Pod Security Standards' "restricted" profile as a check on a rendered pod.

A namespace labelled ``pod-security.kubernetes.io/enforce: restricted`` refuses a pod that breaks
any of these controls; the tests hold the worker pods to them without a cluster. The pod is the
object the Kubernetes API receives (camelCase keys, as ``ApiClient.sanitize_for_serialization``
writes it). Checked: host namespaces, privileged containers, host ports, volume types (which
rules out hostPath), privilege escalation, running as non-root, non-root user, seccomp and
capabilities. Not checked, because no worker pod sets the fields at all: AppArmor, SELinux,
/proc mount type, sysctls and Windows HostProcess (baseline controls that leave unset fields
alone). Reference: kubernetes.io/docs/concepts/security/pod-security-standards/.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["RESTRICTED_VOLUME_TYPES", "restricted_violations"]

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_SECCOMP_ALLOWED = ("RuntimeDefault", "Localhost")
_CAPABILITIES_ADDABLE = frozenset({"NET_BIND_SERVICE"})


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(spec.get(kind) or []):
            yield f"spec.{kind}[{i}]", container


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """Every way ``pod`` breaks the restricted profile, one line each (field path, then the
    control); an empty list when the pod is admitted."""
    spec: Mapping[str, Any] = pod.get("spec") or {}
    pod_context: Mapping[str, Any] = spec.get("securityContext") or {}
    found: list[str] = []

    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"spec.{field}: must be unset or false (host namespaces)")
    for i, volume in enumerate(spec.get("volumes") or []):
        for kind in sorted(set(volume) - {"name"} - RESTRICTED_VOLUME_TYPES):
            found.append(
                f"spec.volumes[{i}].{kind}: volume type not allowed (volume types: "
                f"{', '.join(sorted(RESTRICTED_VOLUME_TYPES))})"
            )
    if pod_context.get("runAsUser") == 0:
        found.append("spec.securityContext.runAsUser: must not be 0 (running as non-root user)")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in _SECCOMP_ALLOWED:
        found.append(
            f"spec.securityContext.seccompProfile.type: {pod_seccomp!r} is not RuntimeDefault "
            "or Localhost (seccomp)"
        )

    for where, container in _containers(spec):
        context: Mapping[str, Any] = container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(f"{where}.securityContext.privileged: must be unset or false (privileged)")
        for j, port in enumerate(container.get("ports") or []):
            if port.get("hostPort"):
                found.append(f"{where}.ports[{j}].hostPort: must be unset or 0 (host ports)")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(
                f"{where}.securityContext.allowPrivilegeEscalation: must be false "
                "(privilege escalation)"
            )
        # a container's setting wins over the pod's; unset in both is refused
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            found.append(
                f"{where}.securityContext.runAsNonRoot: must be true here or in "
                "spec.securityContext (running as non-root)"
            )
        if context.get("runAsUser") == 0:
            found.append(
                f"{where}.securityContext.runAsUser: must not be 0 (running as non-root user)"
            )
        seccomp = (context.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in _SECCOMP_ALLOWED:
            found.append(
                f"{where}.securityContext.seccompProfile.type: {seccomp!r}; must be "
                "RuntimeDefault or Localhost here or in spec.securityContext (seccomp)"
            )
        capabilities: Mapping[str, Any] = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(
                f"{where}.securityContext.capabilities.drop: must include ALL (capabilities)"
            )
        added = sorted(set(capabilities.get("add") or []) - _CAPABILITIES_ADDABLE)
        if added:
            found.append(
                f"{where}.securityContext.capabilities.add: {', '.join(added)} not allowed; "
                "only NET_BIND_SERVICE (capabilities)"
            )
    return found
