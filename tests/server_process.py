"""A real `bentoml serve` of the scoring service in a subprocess, for the tests and the load test.

Binds 127.0.0.1 on a free port, waits for /readyz with a bounded timeout, and always stops what it
started (the whole process group: BentoML forks workers).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SERVICE = "service.service:CustomerIntelligence"
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`with ServerProcess(env) as server: server.post("/churn", {...})`.

    `start()` returns once `ready_path` answers 200: /readyz by default, /livez for a server that is
    expected to start before it is ready.
    """

    def __init__(
        self,
        environment: dict[str, str],
        port: int | None = None,
        log_path: Path | None = None,
        ready_path: str = "/readyz",
    ) -> None:
        self.environment = environment
        self.port = port or free_port()
        self.log_path = log_path
        self.ready_path = ready_path
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> ServerProcess:
        bentoml = Path(sys.executable).with_name("bentoml")
        command = [str(bentoml), "serve", SERVICE, "--host", "127.0.0.1", "--port", str(self.port)]
        env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **self.environment}
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            returncode = self.process.poll()
            if returncode is not None:
                self.stop()
                raise RuntimeError(f"bentoml serve exited with {returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}{self.ready_path}", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"bentoml serve was not ready within {timeout_s:.0f} s; see {self.log_path}")

    def stop(self, timeout_s: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout_s)
            except ProcessLookupError:
                pass
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        self._log = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30
    ) -> tuple[int, Any]:
        """(status, parsed JSON or text) of one request; 4xx and 5xx are returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        text = raw.decode()
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self.request("POST", path, body, headers)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self.request("GET", path, None, headers)
