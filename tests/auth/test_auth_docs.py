"""The first example of docs/auth.md runs as written."""

from __future__ import annotations

import re
import types
from pathlib import Path

from lms_shared.testing import FakeIdentity, service_client

DOC = Path(__file__).resolve().parents[2] / "docs" / "auth.md"


def first_example() -> str:
    return str(re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)[0])


async def test_the_protected_routes_example_works() -> None:
    module = types.ModuleType("docs_auth_example")
    exec(compile(first_example(), str(DOC), "exec", dont_inherit=True), module.__dict__)
    service = module.service
    identity = FakeIdentity(issuer="https://identity.lms.example.org")
    identity.install(service)  # instead of the JWKS URL of the example
    student = identity.headers("ada", roles=["student"])
    ta = identity.headers("tom", roles=[], course_roles={"c1": ["teaching_assistant"]})
    async with service_client(service) as client:
        read = await client.get("/v1/courses/c1", headers=student)
        denied = await client.post("/v1/courses/c1/grades", headers=student)
        graded = await client.post("/v1/courses/c1/grades", headers=ta)
        elsewhere = await client.post("/v1/courses/c2/grades", headers=ta)
        roster = await client.get("/v1/courses/c1/roster", headers=ta)
        anonymous = await client.get("/v1/courses/c1")
    assert read.json() == {"id": "c1", "reader": "ada"}
    assert denied.status_code == 403
    assert graded.json() == {"course": "c1", "graded_by": "tom"}
    assert elsewhere.status_code == 403
    assert roster.json() == {"full": True}
    assert anonymous.status_code == 401
