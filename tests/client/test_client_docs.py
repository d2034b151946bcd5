"""docs/client.md stays true: its first example runs, under the test double."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

from lms_shared.testing import FakeServices, service_client

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def first_example() -> str:
    match = re.search(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match is not None
    return match.group(1)


async def test_the_first_example_of_the_page_runs() -> None:
    module = types.ModuleType("docs_client_example")
    sys.modules[module.__name__] = module  # pydantic resolves the model's names there
    try:
        exec(compile(first_example(), str(DOC), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    service: Any = module.service
    fakes = FakeServices()
    student = "6f1c2c8e-7c57-4d8e-9a43-1d2f3b4c5d6e"
    identity = fakes.add(
        "identity",
        {f"GET /v1/users/{student}": {"id": student, "role": "student", "name": "Ada"}},
    )
    fakes.install(service)
    async with service_client(service) as http:
        found = await http.get(f"/v1/students/{student}")
        missing = await http.get("/v1/students/00000000-0000-4000-8000-000000000000")

    assert found.json() == {"id": student, "role": "student"}
    assert (missing.status_code, missing.json()["detail"]) == (
        404,
        "user 00000000-0000-4000-8000-000000000000 does not exist",
    )
    identity.assert_called("GET", f"/v1/users/{student}", times=1)
