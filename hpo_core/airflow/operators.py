"""The worker pod operator: one sweep worker as a Kubernetes pod, run by the cncf.kubernetes
provider's KubernetesPodOperator. The pod's settings are one JSON-safe mapping, so a task can
compute them from the run's parameters and the mapped pods receive them through XCom. The
Kubernetes provider (about 1.4 s to import) loads only when a pod is built, never while the
scheduler parses a DAG file. The pod runs deferrable by default: the task creates it and the
triggerer watches it, so no worker slot is held while it trains.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

__all__ = ["POD_HOME", "SweepWorkerPodOperator"]

POD_HOME = "/tmp/hpo"  # HPO_HOME in a worker pod: /tmp is its one writable folder


class SweepWorkerPodOperator(BaseOperator):
    """One sweep worker pod: `hpo worker ...` in the worker image, with GPUs, node selector,
    tolerations, resources, and the storage URL and tracking URI from a Kubernetes Secret (never
    on the command line). The pod meets the Pod Security "restricted" profile: non-root,
    read-only root filesystem, no capability, no privilege escalation, the runtime's seccomp
    profile; no service account token is mounted (a worker never calls the Kubernetes API), /tmp
    is an emptyDir with a size limit, and a spec with ``worker.timeout`` gives the pod an
    activeDeadlineSeconds. ``pod_settings`` comes from ``hpo_core.pipeline.pod_settings`` (the
    deployment's connection and the run's checked request). Runs a KubernetesPodOperator built
    at execution time (:meth:`pod_operator`).

    The deployment's ``checkpoint_claim`` (a shared volume) is mounted where workers keep trial
    checkpoints, so a trial re-queued after its pod was lost resumes in another pod.
    GPUs are counted in the deployment's ``gpu_resource`` (``nvidia.com/gpu`` or a MIG profile),
    and terminationGracePeriodSeconds (the spec's, within the deployment's maximum) gives a
    SIGTERMed worker the time to save its trial's checkpoint; a killed task deletes its pod with
    the same grace. Deferrable (unless the deployment sets ``deferrable: false``): the pod is
    created, the task defers to a KubernetesPodTrigger that copies the pod's new log lines to
    the task log every ``log_seconds``, and Airflow resumes *this* task in
    :meth:`trigger_reentry` when the pod ends."""

    template_fields = ("arguments",)

    def __init__(
        self,
        *,
        arguments: list[str],
        pod_settings: dict[str, Any],
        name: str = "sweepflow-worker",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.arguments = arguments
        self.pod_settings = pod_settings
        self.pod_name = name
        self._pod: Any = None

    def pod_operator(self) -> Any:
        """The KubernetesPodOperator that creates and follows the pod."""
        import os

        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from airflow.providers.cncf.kubernetes.secret import Secret
        from kubernetes.client import models as k8s

        from hpo_core.objectives import ENV_ALLOWED_OBJECTIVES
        from hpo_core.pipeline import POD_DEFAULTS
        from hpo_core.study import ENV_ALLOWED_SEARCH_MODULES, ENV_OPTUNAHUB_DIR

        # a plan made before a setting existed gets its default
        s = {**POD_DEFAULTS, **self.pod_settings}
        runtime_default = k8s.V1SeccompProfile(type="RuntimeDefault")
        claim = s["checkpoint_claim"]
        checkpoints = (
            [
                k8s.V1Volume(
                    name="checkpoints",
                    persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                        claim_name=claim
                    ),
                )
            ]
            if claim
            else []
        )
        limits = {"cpu": s["cpu"], "memory": s["memory"]}
        if s["gpus"]:
            # extended resources are limits only: Kubernetes sets the request to the limit
            limits[s["gpu_resource"]] = str(s["gpus"])
        return KubernetesPodOperator(
            task_id=self.task_id,
            name=self.pod_name,
            image=s["image"],
            namespace=s["namespace"],
            cmds=["hpo"],
            arguments=self.arguments,
            labels={"app.kubernetes.io/name": "sweepflow-worker"},
            service_account_name=s.get("service_account"),
            automount_service_account_token=False,
            priority_class_name=s.get("priority_class"),
            active_deadline_seconds=s.get("active_deadline_seconds"),
            termination_grace_period=s["termination_grace_seconds"],
            secrets=[
                Secret("env", "HPO_STORAGE_URL", s["secret"], "storage-url"),
                Secret("env", "MLFLOW_TRACKING_URI", s["secret"], "tracking-uri"),
            ],
            env_vars=[
                k8s.V1EnvVar(name="HPO_HOME", value=POD_HOME),
                k8s.V1EnvVar(name="MLFLOW_DISABLE_TELEMETRY", value="true"),
                # the deployment's allowlists (objectives; sampler and pruner modules) and its
                # vendored OptunaHub copy hold in the pods too
                *(
                    k8s.V1EnvVar(name=name, value=value)
                    for name in (
                        ENV_ALLOWED_OBJECTIVES,
                        ENV_ALLOWED_SEARCH_MODULES,
                        ENV_OPTUNAHUB_DIR,
                    )
                    if (value := os.environ.get(name))
                ),
                # the database password apart from the URL (libpq reads PGPASSWORD), and a
                # tracking server with login (MLflow's basic-auth app): the account of the
                # workers, from optional keys of the same Secret
                *(
                    k8s.V1EnvVar(
                        name=name,
                        value_from=k8s.V1EnvVarSource(
                            secret_key_ref=k8s.V1SecretKeySelector(
                                name=s["secret"], key=key, optional=True
                            )
                        ),
                    )
                    for name, key in (
                        ("PGPASSWORD", "storage-password"),
                        ("MLFLOW_TRACKING_USERNAME", "tracking-username"),
                        ("MLFLOW_TRACKING_PASSWORD", "tracking-password"),
                    )
                ),
            ],
            container_resources=k8s.V1ResourceRequirements(
                requests={"cpu": s["cpu"], "memory": s["memory"]}, limits=limits
            ),
            node_selector=s["node_selector"],
            tolerations=[k8s.V1Toleration(**t) for t in s["tolerations"]],
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=10001,
                run_as_group=10001,
                fs_group=10001,
                seccomp_profile=runtime_default,
            ),
            container_security_context=k8s.V1SecurityContext(
                run_as_non_root=True,
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                capabilities=k8s.V1Capabilities(drop=["ALL"]),
                seccomp_profile=runtime_default,
            ),
            volumes=[
                k8s.V1Volume(
                    name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=s["tmp_size"])
                ),
                *checkpoints,
            ],
            volume_mounts=[
                k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
                *(
                    # the workers' default checkpoint folder, $HPO_HOME/artifacts
                    [k8s.V1VolumeMount(name="checkpoints", mount_path=f"{POD_HOME}/artifacts")]
                    if checkpoints
                    else []
                ),
            ],
            get_logs=True,
            on_finish_action="delete_succeeded_pod",
            schedule_timeout_seconds=s["schedule_timeout_seconds"],
            startup_timeout_seconds=s["startup_timeout_seconds"],
            deferrable=s["deferrable"],
            poll_interval=s["poll_seconds"],
            # without it the deferred task's log shows nothing until the pod ends (hours)
            logging_interval=s["log_seconds"],
            # the KPO turns it into the trigger's deadline; the task's own only covers execute
            execution_timeout=self.execution_timeout,
        )

    def execute(self, context: Any) -> Any:
        self._pod = self.pod_operator()
        return self._pod.execute(context)

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> Any:
        """Where a deferred pod's task resumes. The KubernetesPodOperator defers with
        ``method_name="trigger_reentry"``, but the task Airflow resumes is this operator, not the
        KubernetesPodOperator that :meth:`execute` built: so the method is here, and hands the
        trigger's event to a KubernetesPodOperator built again from the same settings (the event
        names the pod). It writes the pod's last log lines, deletes a succeeded pod, and fails the
        task when the pod failed; it may defer again."""
        self._pod = self.pod_operator()
        return self._pod.trigger_reentry(context, event)

    def on_kill(self) -> None:
        if self._pod is not None:  # a killed task deletes its pod
            self._pod.on_kill()
