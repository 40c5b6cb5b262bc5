"""A throw-away `mlflow server` on a loopback port, for tests: PostgreSQL backend store, artifacts
served by the server itself (clients upload over HTTP, as pods do). It can be killed and started
again on the same port (tracking-outage tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["MlflowServer", "running_mlflow_server"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    def __init__(
        self,
        backend_store_uri: str,
        artifact_root: Path,
        *,
        port: int | None = None,
        app_name: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.backend_store_uri = backend_store_uri
        self.artifact_root = artifact_root
        self.port = port or _free_port()
        # `basic-auth` runs the server with MLflow's authentication (the compose stack's);
        # its settings (auth config path, admin password, secret key) come through ``env``
        self.app_name = app_name
        self.env = dict(env or {})
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = artifact_root.parent / f"mlflow-server-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        exe = str(Path(sys.executable).with_name("mlflow"))
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        command = [
            exe,
            "server",
            "--backend-store-uri",
            self.backend_store_uri,
            "--artifacts-destination",
            self.artifact_root.as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        if self.app_name:
            command += ["--app-name", self.app_name]
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={
                    **os.environ,
                    "MLFLOW_DISABLE_TELEMETRY": "true",
                    # no GenAI job runner: sweepflow runs no server-side jobs, and a killed
                    # server would leave the runner's store behind in /dev/shm
                    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                    **self.env,
                },
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited; see {self.log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.uri}/health", timeout=1) as reply,
            ):
                if reply.status == 200:
                    return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer in {timeout:.0f}s; see {self.log}")

    def stop(self) -> None:
        """Kill the server and its workers at once, as a crash or a lost node would."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=30)
        self._proc = None


@contextlib.contextmanager
def running_mlflow_server(backend_store_uri: str, artifact_root: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(backend_store_uri, artifact_root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
