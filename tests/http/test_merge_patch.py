"""A merge patch is a JSON object: code that guards fields before applying it cannot 500.

RFC 7396 lets a non-object patch replace the whole target; our resources are
never replaced by PATCH, so an array, a string, a number, a boolean or
``null`` is a 400 ``malformed-patch`` before the route runs, and the route's
``patch`` is a ``dict[str, JsonValue]`` that mypy --strict checks.
"""

# no "from __future__ import annotations": FastAPI reads the closures' annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from lms_shared import Service
from lms_shared.errors import FORBIDDEN, ProblemError
from lms_shared.http import MergePatch
from lms_shared.models import MERGE_PATCH_CONTENT_TYPE, LmsModel, LmsRecord, apply_merge_patch
from lms_shared.testing import service_client

ROOT = Path(__file__).resolve().parents[2]


class Note(LmsRecord):
    """What the service stores."""

    id: int
    title: str
    owner: str


class NoteUpdate(LmsModel):
    """What a client may change."""

    title: str | None = None


@pytest.fixture
async def client(make_service: Callable[..., Service]) -> AsyncIterator[httpx.AsyncClient]:
    service = make_service()
    v1 = service.api(1)
    note = Note(id=1, title="Draft", owner="ada")

    @v1.patch("/notes/{note_id}")
    async def patch_note(note_id: int, patch: MergePatch) -> Note:
        # guards on the patch itself, before it is applied: the lines that
        # raised TypeError (a 500) when the patch was a number or null
        if "owner" in patch:
            raise ProblemError("the owner of a note cannot change", code=FORBIDDEN)
        title = patch.get("title")
        if isinstance(title, str) and title.startswith("!"):
            raise ProblemError("a title cannot start with '!'", code=FORBIDDEN)
        return apply_merge_patch(note, patch, NoteUpdate)

    service.include(v1)
    async with service_client(service) as http:
        yield http


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"[1]", "an array"),
        (b'"text"', "a string"),
        (b'"{\\"owner\\": \\"eve\\"}"', "a string"),  # a JSON string is not parsed again
        (b"3", "a number"),
        (b"2.5", "a number"),
        (b"true", "a boolean"),
        (b"null", "null"),
    ],
)
@pytest.mark.parametrize("content_type", [MERGE_PATCH_CONTENT_TYPE, "application/json"])
async def test_a_patch_that_is_not_an_object_is_a_400(
    client: httpx.AsyncClient, body: bytes, kind: str, content_type: str
) -> None:
    response = await client.patch(
        "/v1/notes/1", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "malformed-patch"
    assert problem["detail"] == f"a merge patch must be a JSON object, got {kind}"


async def test_objects_reach_the_guards_and_the_merge(client: httpx.AsyncClient) -> None:
    headers = {"content-type": MERGE_PATCH_CONTENT_TYPE}
    changed = await client.patch("/v1/notes/1", content=b'{"title": "Final"}', headers=headers)
    owner = await client.patch("/v1/notes/1", content=b'{"owner": "eve"}', headers=headers)
    shout = await client.patch("/v1/notes/1", content=b'{"title": "!"}', headers=headers)
    wrong = await client.patch("/v1/notes/1", content=b'{"title": 7}', headers=headers)
    deep = b'{"a":' * 40 + b"1" + b"}" * 40
    too_deep = await client.patch("/v1/notes/1", content=deep, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Final"
    assert (owner.status_code, shout.status_code) == (403, 403)
    assert (wrong.status_code, wrong.json()["code"]) == (422, "validation-error")
    assert (too_deep.status_code, too_deep.json()["code"]) == (400, "malformed-patch")


async def test_openapi_says_the_patch_is_an_object(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    body = document["paths"]["/v1/notes/{note_id}"]["patch"]["requestBody"]
    schema = body["content"][MERGE_PATCH_CONTENT_TYPE]["schema"]
    assert schema["type"] == "object"


GUARD = """
from lms_shared.http import MergePatch


def title_of(patch: MergePatch) -> str | None:
    if "owner" in patch:
        raise ValueError("the owner cannot change")
    title = patch.get("title")
    return title if isinstance(title, str) else None
"""


def test_guard_code_type_checks_and_the_patch_is_not_any(tmp_path: Path) -> None:
    good = tmp_path / "guard.py"
    good.write_text(textwrap.dedent(GUARD))
    bad = tmp_path / "misuse.py"
    bad.write_text(GUARD + "\n\ndef misuse(patch: MergePatch) -> None:\n    patch.append(1)\n")
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
    checked = subprocess.run(
        [*command, str(good)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    misused = subprocess.run(
        [*command, str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert misused.returncode == 1
    assert '"dict[str, JsonValue]" has no attribute "append"' in misused.stdout
