"""Problem ``errors[].pointer``: RFC 6901 pointers in their URI-fragment form."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from lms_shared.models import validate
from lms_shared.models._errors import ModelValidationError
from lms_shared.models._validation import json_pointer


@pytest.mark.parametrize(
    ("parts", "pointer"),
    [
        ([], "#"),  # the whole document, not "#/" (the member named "")
        (["title"], "#/title"),
        (["lessons", "0", "title"], "#/lessons/0/title"),
        (["a/b", "m~n"], "#/a~1b/m~0n"),
        (["a b", "%", "é"], "#/a%20b/%25/%C3%A9"),
        ([""], "#/"),
    ],
)
def test_pointers_follow_rfc_6901(parts: list[str], pointer: str) -> None:
    assert json_pointer(parts) == pointer


class Lesson(BaseModel):
    title: str = Field(max_length=5)


def test_a_body_that_is_not_an_object_points_at_the_whole_document() -> None:
    with pytest.raises(ModelValidationError) as caught:
        validate(Lesson, ["not", "an", "object"])
    assert [e["pointer"] for e in caught.value.errors] == ["#"]
