"""Codecs: JSON and MessagePack round trips are exact for every DTO (property tests)."""

from __future__ import annotations

from typing import Any

import orjson
import ormsgpack
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel
from tests.models.model_strategies import strategy_for

import lms_shared.testing
from lms_shared.errors import ProblemError
from lms_shared.models import (
    JSON,
    MSGPACK,
    Codec,
    Course,
    MalformedPayload,
    ModelValidationError,
    UserCreate,
    shared_schemas,
)
from lms_shared.models.codecs import CODECS, JsonCodec, MsgpackCodec, codec_for
from lms_shared.testing import CourseFactory, LmsFactory

MODELS = [entry.model for entry in shared_schemas()]
PROPERTY = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def round_trips(model: BaseModel) -> None:
    for codec in (JSON, MSGPACK):
        encoded = codec.encode(model)
        decoded = codec.decode(encoded, type(model))
        assert decoded == model
        assert codec.encode(decoded) == encoded  # stable bytes


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_dto_round_trips_exactly(model: type[BaseModel]) -> None:
    @PROPERTY
    @given(strategy_for(model))
    def check(value: BaseModel) -> None:
        round_trips(value)

    check()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_dto_has_a_factory_whose_values_are_valid(model: type[BaseModel]) -> None:
    factory: type[LmsFactory[Any]] = getattr(lms_shared.testing, f"{model.__name__}Factory")
    factory.seed_random(7)
    for value in factory.batch(15):
        assert type(value) is model
        assert model.model_validate(value.model_dump()) == value  # validators hold
        round_trips(value)


def test_factories_fill_nested_models_and_accept_overrides() -> None:
    CourseFactory.seed_random(1)
    courses = CourseFactory.batch(10)
    assert any(module.lessons for course in courses for module in course.modules)
    assert CourseFactory.build(title="Fixed").title == "Fixed"


def test_json_is_what_pydantic_writes() -> None:
    course = CourseFactory.build()
    assert JSON.encode(course) == course.model_dump_json().encode()
    assert JSON.decode(course.model_dump_json().encode(), Course) == course


def test_msgpack_carries_the_json_values() -> None:
    course = CourseFactory.build()
    assert ormsgpack.unpackb(MSGPACK.encode(course)) == course.model_dump(mode="json")


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_garbage_is_a_malformed_payload(codec: Codec) -> None:
    with pytest.raises(MalformedPayload) as caught:
        codec.decode(b"\xc1{not", Course)
    assert caught.value.status == 400
    assert caught.value.problem_code.slug == "malformed-payload"


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_data_that_does_not_fit_is_a_validation_problem(codec: Codec) -> None:
    wrong = {"organization_id": "nope", "email": "a@example.org", "given_name": "A"}
    encoded = ormsgpack.packb(wrong) if codec is MSGPACK else orjson.dumps(wrong)
    with pytest.raises(ModelValidationError) as caught:
        codec.decode(encoded, UserCreate)
    assert [(e["pointer"], e["type"]) for e in caught.value.errors] == [
        ("#/organization_id", "uuid_parsing"),
        ("#/family_name", "missing"),
    ]


def test_codecs_by_media_type() -> None:
    assert isinstance(JSON, Codec)
    assert isinstance(MSGPACK, Codec)
    assert codec_for(None) is JSON
    assert codec_for("application/json; charset=utf-8") is JSON
    assert codec_for("application/problem+json") is JSON
    assert codec_for("application/vnd.msgpack") is MSGPACK
    assert isinstance(CODECS["application/msgpack"], MsgpackCodec)
    assert isinstance(CODECS["application/json"], JsonCodec)
    with pytest.raises(ProblemError) as caught:
        codec_for("text/csv")
    assert caught.value.status == 415
