"""Schema versions: the registry, upcaster chains, compatibility checks and the CLI."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field
from typer.testing import CliRunner

from lms_shared.cli import app
from lms_shared.models import (
    Course,
    LmsModel,
    LmsRecord,
    ModelValidationError,
    SchemaRegistry,
    SchemaVersionError,
    Title,
    compare_exports,
    shared_schemas,
)
from lms_shared.models.compat import compare_schemas, read_export
from lms_shared.models.registry import JSON_SCHEMA_DIALECT

runner = CliRunner()


class Level(StrEnum):
    INTRO = "intro"
    ADVANCED = "advanced"


class CourseV3(LmsRecord, schema_name="test.course", schema_version=3):
    """Version 3: ``name`` became ``title`` (v2), ``level`` was added (v3)."""

    title: Title
    level: Level


def registry_v3() -> SchemaRegistry:
    registry = SchemaRegistry([CourseV3])

    @registry.upcaster("test.course", 1)
    def _rename(payload: dict[str, Any]) -> dict[str, Any]:
        payload["title"] = payload.pop("name")
        return payload

    @registry.upcaster("test.course", 2)
    def _level(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "level": "intro"}

    return registry


# --- registry and upcasters ------------------------------------------------------


def test_shared_registry_holds_every_dto_once() -> None:
    registry = shared_schemas()
    names = [entry.name for entry in registry]
    assert len(names) == len(set(names)) == len(registry) == 27
    assert "lms.course" in registry
    assert registry.entry("lms.course").model is Course
    assert all(entry.version == 1 for entry in registry)
    assert all(name.startswith("lms.") for name in names)


def test_upcasters_chain_old_payloads_to_the_current_model() -> None:
    registry = registry_v3()
    v1 = {"name": "Statistics"}
    assert registry.upcast("test.course", 1, v1) == {"title": "Statistics", "level": "intro"}
    assert v1 == {"name": "Statistics"}  # the caller's payload is untouched
    assert registry.load("test.course", 1, v1) == CourseV3(title="Statistics", level=Level.INTRO)
    assert registry.load("test.course", 2, {"title": "Stats"}).level is Level.INTRO  # type: ignore[attr-defined]
    current = {"title": "Stats", "level": "advanced"}
    assert registry.load("test.course", 3, current) == CourseV3(title="Stats", level=Level.ADVANCED)


def test_upcasting_refuses_what_it_cannot_do() -> None:
    registry = registry_v3()
    with pytest.raises(SchemaVersionError, match="newer than this service knows"):
        registry.upcast("test.course", 4, {})
    with pytest.raises(SchemaVersionError, match="unknown schema"):
        registry.upcast("test.nothing", 1, {})
    with pytest.raises(SchemaVersionError, match="start at 1"):
        registry.upcast("test.course", 0, {})
    gap = SchemaRegistry([CourseV3])
    gap.add_upcaster("test.course", 2, lambda p: p)
    with pytest.raises(SchemaVersionError, match="no upcaster from v1 to v2"):
        gap.upcast("test.course", 1, {})
    with pytest.raises(ModelValidationError):
        registry.load("test.course", 2, {"title": ""})


def test_registry_refuses_bad_registrations() -> None:
    registry = registry_v3()
    with pytest.raises(ValueError, match="already has an upcaster"):
        registry.add_upcaster("test.course", 1, lambda p: p)
    with pytest.raises(ValueError, match=r"starts at 1\.\.2"):
        registry.add_upcaster("test.course", 3, lambda p: p)

    class Other(LmsModel, schema_name="test.course"):
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Other)

    class Anonymous(LmsModel):
        pass

    with pytest.raises(ValueError, match="no schema name"):
        registry.register(Anonymous)
    registry.register(Anonymous, name="test.anonymous", version=4)
    assert registry.entry("test.anonymous").version == 4
    with pytest.raises(KeyError):
        registry.entry("test.missing")


def test_export_writes_one_stable_file_per_schema(tmp_path: Path) -> None:
    written = shared_schemas().export(tmp_path / "schemas")
    assert len(written) == 27
    course = json.loads((tmp_path / "schemas" / "lms.course.json").read_text())
    assert course["$schema"] == JSON_SCHEMA_DIALECT
    assert course["$id"] == "urn:lms:schema:lms.course:1"
    assert (course["x-schema-name"], course["x-schema-version"]) == ("lms.course", 1)
    first = (tmp_path / "schemas" / "lms.course.json").read_bytes()
    shared_schemas().export(tmp_path / "schemas")
    assert (tmp_path / "schemas" / "lms.course.json").read_bytes() == first
    assert set(read_export(tmp_path / "schemas")) == {e.name for e in shared_schemas()}


# --- compatibility rules ---------------------------------------------------------


def schema_of(model: type[LmsModel]) -> dict[str, Any]:
    return model.model_json_schema()


class InV1(LmsModel):
    title: str = Field(max_length=200)
    level: Level
    summary: str | None = None
    credits: float = 0


def changes(new: type[LmsModel], old: type[LmsModel] = InV1) -> list[tuple[str, str, str]]:
    return compare_schemas(schema_of(old), schema_of(new))


def test_identical_schemas_are_compatible() -> None:
    assert changes(InV1) == []


def test_removing_a_field_refused_as_unknown_breaks_backward() -> None:
    class NoSummary(LmsModel):
        title: str = Field(max_length=200)
        level: Level
        credits: float = 0

    assert changes(NoSummary) == [
        ("backward", "summary", "field removed (new refuses unknown fields)")
    ]


def test_adding_a_required_field_breaks_backward_and_forward() -> None:
    class WithCode(InV1):
        code: str = Field(max_length=10)

    assert changes(WithCode) == [
        ("backward", "code", "new required field"),
        ("forward", "code", "field added (old readers refuse unknown fields)"),
    ]


def test_adding_an_optional_field_to_a_tolerant_reader_is_compatible() -> None:
    class OutV1(LmsRecord):
        title: str = Field(max_length=200)

    class OutV2(OutV1):
        subtitle: str | None = Field(default=None, max_length=200)

    assert changes(OutV2, OutV1) == []
    assert changes(OutV1, OutV2) == []  # and removing it again


def test_narrowing_a_type_or_a_bound_breaks_backward() -> None:
    class Narrower(LmsModel):
        title: str = Field(max_length=100)
        level: Level
        summary: str
        credits: int = 0

    found = changes(Narrower)
    assert ("backward", "title", "maxLength narrowed (old 200, new 100)") in found
    assert ("backward", "summary", "field became required") in found
    assert ("backward", "summary", "type null no longer accepted (new: only string)") in found
    assert ("backward", "credits", "type number no longer accepted (new: only integer)") in found
    assert ("forward", "title", "maxLength widened (old 200, new 100)") not in found
    assert all(direction == "backward" for direction, _, _ in found if "title" in _)


def test_enum_values_removed_break_backward_and_added_break_forward() -> None:
    class Fewer(StrEnum):
        INTRO = "intro"

    class More(StrEnum):
        INTRO = "intro"
        ADVANCED = "advanced"
        EXPERT = "expert"

    class WithFewer(LmsModel):
        title: str = Field(max_length=200)
        level: Fewer
        summary: str | None = None
        credits: float = 0

    class WithMore(WithFewer):
        level: More  # type: ignore[assignment]

    assert changes(WithFewer) == [("backward", "level", "enum value(s) removed: advanced")]
    assert changes(WithMore) == [("forward", "level", "enum value(s) added: expert")]


def test_type_changes_and_patterns_are_reported_both_ways() -> None:
    class Changed(LmsModel):
        title: int
        level: Level
        summary: str | None = Field(default=None, pattern="^[a-z]+$")
        credits: float = 0

    found = changes(Changed)
    assert ("backward", "title", "type string no longer accepted (new: only integer)") in found
    assert ("forward", "title", "type integer added (old readers accept only string)") in found
    assert ("backward", "summary", "pattern changed: None -> '^[a-z]+$'") in found


def test_nested_models_are_compared_through_refs() -> None:
    old = shared_schemas().entry("lms.course").json_schema()
    new = json.loads(json.dumps(old))
    new["$defs"]["Lesson"]["properties"]["title"]["maxLength"] = 50
    assert compare_schemas(old, new) == [
        ("backward", "modules[].lessons[].title", "maxLength narrowed (old 200, new 50)")
    ]


def test_a_removed_schema_breaks_and_a_version_bump_allows_changes() -> None:
    old = {"a": {**schema_of(InV1), "x-schema-version": 1}, "b": schema_of(InV1)}

    class Bumped(InV1):
        code: str = Field(max_length=10)

    new = {"a": {**schema_of(Bumped), "x-schema-version": 2}}
    found = compare_exports(old, new)
    assert [(c.schema, c.direction, c.message, c.allowed) for c in found] == [
        ("a", "backward", "new required field", True),
        ("a", "forward", "field added (old readers refuse unknown fields)", True),
        ("b", "backward", "schema removed", False),
        ("b", "forward", "schema removed", False),
    ]


# --- the CLI ---------------------------------------------------------------------


def export_pair(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        result = runner.invoke(app, ["schema", "export", str(folder)])
        assert result.exit_code == 0, result.output
    return old, new


def edit(path: Path, change: Any) -> None:
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema))


def test_cli_check_passes_identical_exports(tmp_path: Path) -> None:
    old, new = export_pair(tmp_path)
    result = runner.invoke(app, ["schema", "check", str(old), str(new)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "27 schemas checked (full): 0 breaking change(s)" in result.output


def test_cli_check_fails_on_a_break(tmp_path: Path) -> None:
    old, new = export_pair(tmp_path)
    edit(
        new / "lms.course.create.json",
        lambda s: s["required"].append("summary"),
    )
    edit(
        new / "lms.enrollment.json",
        lambda s: s["$defs"]["EnrollmentStatus"]["enum"].remove("dropped"),
    )
    (new / "lms.grade.update.json").unlink()
    result = runner.invoke(app, ["schema", "check", str(old), str(new)], terminal_width=200)
    assert result.exit_code == 1
    assert "field became required" in result.output
    assert "enum value(s) removed: dropped" in result.output
    assert "schema removed" in result.output
    assert "4 breaking change(s)" in result.output
    forward_only = runner.invoke(
        app, ["schema", "check", str(old), str(new), "--mode", "forward"], terminal_width=200
    )
    assert forward_only.exit_code == 1
    assert "1 breaking change(s)" in forward_only.output  # the removed schema


def test_cli_check_allows_a_bumped_version(tmp_path: Path) -> None:
    old, new = export_pair(tmp_path)

    def bump(schema: dict[str, Any]) -> None:
        schema["properties"]["title"]["maxLength"] = 100
        schema["x-schema-version"] = 2

    edit(new / "lms.course.create.json", bump)
    result = runner.invoke(app, ["schema", "check", str(old), str(new)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "allowed (version bumped) lms.course.create (backward) title" in result.output


def test_cli_export_of_a_service_registry_and_errors(tmp_path: Path) -> None:
    (tmp_path / "my_schemas.py").write_text(
        "from lms_shared.models import SchemaRegistry, LmsModel\n"
        "class Thing(LmsModel, schema_name='svc.thing', schema_version=2):\n"
        "    name: str\n"
        "def schemas():\n"
        "    return SchemaRegistry([Thing])\n"
    )
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.json").write_text("{}")
    result = runner.invoke(
        app, ["schema", "export", str(tmp_path / "out"), "--registry", "my_schemas", "--clean"]
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["svc.thing.json"]
    bad = runner.invoke(app, ["schema", "export", str(tmp_path), "-r", "nowhere:x"])
    assert bad.exit_code == 2
    not_registry = runner.invoke(app, ["schema", "export", str(tmp_path), "-r", "json:dumps"])
    assert not_registry.exit_code == 2
    missing = runner.invoke(app, ["schema", "check", str(tmp_path / "no"), str(tmp_path)])
    assert missing.exit_code == 2
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.json").write_text("[]")
    junk = runner.invoke(app, ["schema", "check", str(tmp_path / "junk"), str(tmp_path / "out")])
    assert junk.exit_code == 2
