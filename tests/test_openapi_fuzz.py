"""Every operation of the example platform, fuzzed from its own OpenAPI document.

The four services run as the demo runs them (real processes, the scenario's
data in place); schemathesis generates valid and invalid requests for every
operation of every service, sent with the platform admin's token, and
checks each answer: no 5xx, the status code and the content type
documented, the body valid against the documented schema. A bounded number
of examples per operation keeps the run under a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.test_demo import demo_env, free_port_base

from examples.scenario import ADMIN
from examples.topology import SERVICES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("LMS_FUZZ_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo platform, up after its scenario, and the admin's bearer header."""
    base = free_port_base()
    state = tmp_path_factory.mktemp("fuzz") / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.demo"],
        cwd=ROOT,
        env=demo_env(base, state),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    up = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "The platform is up" in line:
                up.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not up.wait(180):
            pytest.fail("the demo platform did not come up:\n" + "".join(lines[-60:]))
        identity = f"http://127.0.0.1:{base + 1}"
        login = httpx.post(
            f"{identity}/v1/login",
            json={"email": ADMIN["email"], "password": ADMIN["password"]},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        headers = {"authorization": f"Bearer {login.json()['access_token']}"}
        urls = {name: f"http://127.0.0.1:{base + i}" for i, name in enumerate(SERVICES, 1)}
        yield {"urls": urls, "headers": headers}
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(10)
        assert process.stdout is not None
        process.stdout.close()


def fuzz(url: str, headers: dict[str, str]) -> tuple[int, list[str]]:
    """Fuzz every operation of the service at ``url``; ``(operations, failures)``."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in schemathesis.GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                continue  # nothing invalid can be made of an operation without inputs
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup too
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    return operations, failures


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_answers_as_documented(platform: dict[str, Any], service: str) -> None:
    operations, failures = fuzz(platform["urls"][service], platform["headers"])
    assert operations >= 5, "the document lists the service's operations"
    assert failures == [], "\n\n".join(failures)
