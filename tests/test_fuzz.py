"""Property-based fuzz over the OpenAPI schema, against a real server process.

Schemathesis generates valid and invalid requests for every documented operation
(coverage, fuzzing and stateful phases); the run fails on any 5xx answer or any
answer that does not match the documented response schema.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Backend
from tests.live_server import live_server, server_env

pytestmark = pytest.mark.slow


def _login_header(base_url: str) -> str:
    name = f"fuzz_{uuid.uuid4().hex[:10]}"
    password = "fuzzing-password"
    with httpx.Client(base_url=base_url, timeout=10) as client:
        client.post(
            "/api/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": password},
        ).raise_for_status()
        tokens = client.post("/api/auth/login", json={"username": name, "password": password})
        tokens.raise_for_status()
    return f"Authorization: Bearer {tokens.json()['access_token']}"


def test_no_generated_request_makes_a_server_error(backend: Backend, tmp_path: Path) -> None:
    env = server_env(
        tmp_path / "data",
        backend.database_url,
        backend.redis_url,
        backend.redis_namespace,
        # The fuzzer logs in a lot; the brute-force guard has its own tests.
        MANGAHUB_LOGIN_MAX_FAILURES_PER_ACCOUNT="1000000",
        MANGAHUB_LOGIN_MAX_FAILURES_PER_ADDRESS="1000000",
    )
    with live_server(env, "api", cwd=tmp_path) as server:
        schemathesis = Path(sys.executable).with_name("schemathesis")
        run = subprocess.run(
            [
                str(schemathesis),
                "run",
                f"{server.http_url}/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--max-examples",
                "15",
                "--seed",
                "20261129",
                "--header",
                _login_header(server.http_url),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    # A guard against the fuzz silently shrinking: every operation was reached.
    assert "Tested: " in report
    tested = int(report.split("Tested: ", 1)[1].split()[0])
    assert tested >= 30, report[-3000:]
