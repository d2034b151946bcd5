"""Schema names, versions, the registry of shared models and upcasters.

Every shared model has a schema name and a version (class keywords of
:class:`~lms_shared.models.LmsModel`). A :class:`SchemaRegistry` is an
explicit list of models, built by whoever needs one (nothing registers
itself): :func:`shared_schemas` holds the platform's DTOs, a service makes
its own for its events. A registry exports the JSON Schemas (what
``lms-shared schema export`` writes) and turns payloads written at an older
version into the current model through a chain of upcasters, one per
version step::

    registry = SchemaRegistry([CourseV3])

    @registry.upcaster("lms.course", 1)          # v1 -> v2
    def _split_title(payload: dict[str, Any]) -> dict[str, Any]: ...

    @registry.upcaster("lms.course", 2)          # v2 -> v3
    def _add_language(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "language": "en"}

    course = registry.load("lms.course", 1, old_payload)   # v1 -> v2 -> v3, validated
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from lms_shared.models import _courses, _enrollment, _grading, _identity
from lms_shared.models._errors import SchemaVersionError
from lms_shared.models._validation import validate

__all__ = ["JSON_SCHEMA_DIALECT", "SchemaEntry", "SchemaRegistry", "Upcaster", "shared_schemas"]

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns a payload of version N into one of version N + 1 (JSON-ready dicts)."""


@dataclass(frozen=True, slots=True)
class SchemaEntry:
    """One registered schema: its name, current version and model."""

    name: str
    version: int
    model: type[BaseModel]

    def json_schema(self) -> dict[str, Any]:
        """The model's JSON Schema (validation mode) with its name and version."""
        schema = self.model.model_json_schema(mode="validation")
        return {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:lms:schema:{self.name}:{self.version}",
            **schema,
            "x-schema-name": self.name,
            "x-schema-version": self.version,
        }


class SchemaRegistry:
    """Models by schema name, with the upcasters of their older versions.

    Args:
        models: models with ``schema_name``/``schema_version`` class
            attributes (every :class:`~lms_shared.models.LmsModel` declared
            with the class keywords).
    """

    def __init__(self, models: Iterable[type[BaseModel]] = ()) -> None:
        self._entries: dict[str, SchemaEntry] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for model in models:
            self.register(model)

    def register(
        self, model: type[BaseModel], *, name: str | None = None, version: int | None = None
    ) -> type[BaseModel]:
        """Add a model; ``name``/``version`` default to its class attributes.

        Returns:
            The model (so this works as a class decorator).

        Raises:
            ValueError: the model has no schema name, or the name is taken.
        """
        name = name or getattr(model, "schema_name", None)
        version = version or getattr(model, "schema_version", None) or 1
        if not name:
            raise ValueError(f"{model.__name__} has no schema name (class keyword schema_name=)")
        if name in self._entries and self._entries[name].model is not model:
            raise ValueError(f"schema {name!r} is already registered")
        self._entries[name] = SchemaEntry(name, int(version), model)
        return model

    def __iter__(self) -> Iterator[SchemaEntry]:
        return iter(sorted(self._entries.values(), key=lambda entry: entry.name))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def entry(self, name: str) -> SchemaEntry:
        """The entry of a schema name.

        Raises:
            KeyError: no such schema.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"no schema named {name!r}") from None

    def add_upcaster(self, name: str, from_version: int, upcaster: Upcaster) -> None:
        """Register the step from ``from_version`` to ``from_version + 1``.

        Raises:
            KeyError: no such schema.
            ValueError: the step is not below the current version, or exists.
        """
        current = self.entry(name).version
        if not 1 <= from_version < current:
            raise ValueError(
                f"{name} is at version {current}: an upcaster starts at 1..{current - 1}"
            )
        if (name, from_version) in self._upcasters:
            raise ValueError(f"{name} already has an upcaster from version {from_version}")
        self._upcasters[(name, from_version)] = upcaster

    def upcaster(self, name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of :meth:`add_upcaster`."""

        def register(function: Upcaster) -> Upcaster:
            self.add_upcaster(name, from_version, function)
            return function

        return register

    def upcast(self, name: str, version: int, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``payload`` (written at ``version``) as a payload of the current version.

        The caller's payload is not modified.

        Raises:
            SchemaVersionError: unknown schema, a version newer than the
                model's (upgrade this service), or a missing step.
        """
        if name not in self._entries:
            raise SchemaVersionError(name, version, "unknown schema")
        current = self._entries[name].version
        if version > current:
            raise SchemaVersionError(
                name, version, f"newer than this service knows (v{current}); upgrade it"
            )
        if version < 1:
            raise SchemaVersionError(name, version, "versions start at 1")
        data = copy.deepcopy(dict(payload))
        for step in range(version, current):
            upcaster = self._upcasters.get((name, step))
            if upcaster is None:
                raise SchemaVersionError(name, version, f"no upcaster from v{step} to v{step + 1}")
            data = upcaster(data)
        return data

    def load(self, name: str, version: int, payload: Mapping[str, Any]) -> BaseModel:
        """Upcast ``payload`` to the current version and validate it.

        Raises:
            SchemaVersionError: see :meth:`upcast`.
            ModelValidationError: the upcast payload does not fit the model.
        """
        return validate(self._entries[name].model, self.upcast(name, version, payload))

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """Every schema's JSON Schema by name."""
        return {entry.name: entry.json_schema() for entry in self}

    def export(self, directory: Path) -> list[Path]:
        """Write ``<name>.json`` per schema into ``directory`` (created if needed).

        Files are stable: sorted keys, two-space indents, a final newline.
        """
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, schema in self.json_schemas().items():
            path = directory / f"{name}.json"
            path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            written.append(path)
        return written


def shared_schemas() -> SchemaRegistry:
    """A new registry of every shared DTO of the platform (``lms.*``)."""
    models: list[type[BaseModel]] = []
    for module in (_identity, _courses, _enrollment, _grading):
        for export in module.__all__:
            value = getattr(module, export)
            if isinstance(value, type) and issubclass(value, BaseModel):
                models.append(value)
    return SchemaRegistry(models)
