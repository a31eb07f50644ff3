"""The OpenAPI document against the real service: schemathesis generates requests from it, with every
check on (no server error, status codes and bodies as declared, bad requests refused, good ones
accepted), against a real `bentoml serve` with an API key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow
API_KEY = "contract-test-key"
EXAMPLES_PER_OPERATION = 25  # bounded: the whole run takes seconds


@pytest.fixture(scope="module")
def server(service_workspace, tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    store_path = service_workspace.copy_store(root / "profiles.sqlite")
    environment = service_workspace.environment(store_path, SCORING_API_KEY=API_KEY, BENTOML_HOME=str(root / "bento"))
    with ServerProcess(environment, log_path=root / "server.log") as running:
        yield running


def test_schemathesis_finds_no_failure_with_every_check(server):
    schemathesis = Path(sys.executable).with_name("schemathesis")
    command = [
        str(schemathesis),
        "run",
        f"{server.url}/docs.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        "1",
        "--header",
        f"X-API-Key: {API_KEY}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "No issues found" in done.stdout
    log = server.log_path.read_text()
    assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]
