"""The floors of the package (docs/architecture.md), enforced on every import.

Every module's imports are read with ``ast`` -- top-level ones and those
inside functions -- and checked against the layer table: a module may
import its own floor or a lower one, never a higher one. Capabilities
never import the web framework. An import inside a function is allowed
only for the optional drivers named in ``LAZY`` (so no function-level
import can hide a cycle), and the package graph has no cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lms_shared"

# floor of each top-level module or package of lms_shared (docs/architecture.md)
FLOORS: dict[str, int] = {
    # 0: leaves
    "errors": 0,
    "clock": 0,
    "types": 0,
    "redaction": 0,
    "settings": 0,
    "caching": 0,
    "jsonlimits": 0,
    "gcfreeze": 0,
    # 1: capabilities that know nothing of HTTP
    "models": 1,
    "security": 1,
    "ratelimit": 1,
    "db": 1,
    "auth": 1,
    "events": 1,
    "discovery": 1,
    "resilience": 1,
    "observability": 1,
    "lifecycle": 1,
    # 2: the glue
    "client": 2,
    "http": 2,
    # 3: the service factory (and the root package, which exports it)
    "service": 3,
    "__init__": 3,
    # 4: entry points
    "cli": 4,
    "testing": 4,
}

# the web framework is glue: below the http floor nothing imports it
WEB = ("fastapi", "starlette", "uvicorn")

# imports allowed inside functions: optional drivers and deliberately lazy stacks
LAZY: dict[str, str] = {
    "redis": "optional driver (the redis extra)",
    "nats": "optional driver (the nats extra)",
    "aio_pika": "optional driver (the rabbitmq extra)",
    "aiormq": "aio-pika's protocol layer (its errors), installed with it",
    "pamqp": "aio-pika's frames (Basic.Ack of a publisher confirm), installed with it",
    "dns": "optional driver (the kubernetes extra)",
    "asyncpg": "optional driver (the postgres extra)",
    "pytest": "the test kit is importable without pytest",
    "yaml": "PyYAML, only for YAML SLO specs (lms-shared alerts generate)",
    "lms_shared.testing._factories": "polyfactory (the testing extra) on first use",
    "lms_shared.db": "service.db: only services using the database import SQLAlchemy",
    "lms_shared.events.sql": "bus.use_database: the SQL event stores import SQLAlchemy",
    "lms_shared.auth._apikey_db": "the SQL API-key store imports SQLAlchemy on first use",
    "opentelemetry.exporter": "OTLP exporters (protobuf) only when LMS_TELEMETRY_URL is set",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """The top-level unit (key of FLOORS) a dotted lms_shared module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _target(module: str, name: str) -> str:
    """``module.name`` when that is a module of the package, else ``module``."""
    if module == "lms_shared" or module.startswith("lms_shared."):
        base = SRC.parent.joinpath(*module.split("."), name)
        if base.is_dir() or base.with_suffix(".py").exists():
            return f"{module}.{name}"
    return module


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for child in ast.walk(node):
                if isinstance(child, ast.Import | ast.ImportFrom):
                    inner.add(id(child))
    found: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, id(node) in inner) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                # from lms_shared import errors -> the submodule lms_shared.errors
                found.append((_target(node.module, alias.name), node.lineno, id(node) in inner))
    return found


MODULES = sorted(SRC.rglob("*.py"))


def test_every_unit_has_a_floor() -> None:
    units = {_unit(_module_name(path)) for path in MODULES}
    assert units <= set(FLOORS), f"give {sorted(units - set(FLOORS))} a floor"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_respect_the_floors(path: Path) -> None:
    module = _module_name(path)
    unit = _unit(module)
    floor = FLOORS[unit]
    wrong: list[str] = []
    for imported, line, inside in _imports(path):
        if inside and not any(imported == n or imported.startswith(n + ".") for n in LAZY):
            wrong.append(f"line {line}: import of {imported} inside a function")
        if imported.split(".")[0] in WEB and floor < FLOORS["http"]:
            wrong.append(f"line {line}: {imported} below the http floor")
        if imported == "lms_shared" or imported.startswith("lms_shared."):
            target = _unit(imported)
            if target != unit and FLOORS[target] > floor:
                wrong.append(f"line {line}: {unit} (floor {floor}) imports {imported} "
                             f"(floor {FLOORS[target]})")  # fmt: skip
    assert not wrong, f"{module}:\n" + "\n".join(wrong)


def test_the_package_graph_has_no_cycle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in MODULES:
        unit = _unit(_module_name(path))
        for imported, _, _ in _imports(path):
            if imported.startswith("lms_shared.") and _unit(imported) != unit:
                graph[unit].add(_unit(imported))
    seen: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if seen.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*trail, node]))
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, [*trail, node])
        seen[node] = 2

    for start in sorted(graph):
        visit(start, [])


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import fastapi\n\ndef f():\n    from lms_shared.http import require\n")
    found = _imports(bad)
    assert ("fastapi", 1, False) in found
    assert ("lms_shared.http", 4, True) in found


PROBE_NO_SQLALCHEMY = """
import asyncio, sys
from lms_shared import create_service
from lms_shared.testing import lifespan

async def main():
    service = create_service("probe", version="1")
    async with lifespan(service.app):
        pass
asyncio.run(main())
loaded = sorted(m for m in sys.modules if m == "sqlalchemy" or m.startswith("sqlalchemy."))
print(len(loaded))
"""


def test_a_service_that_never_touches_the_database_does_not_import_sqlalchemy(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE_NO_SQLALCHEMY],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0"


PROBE_OPENAPI = """
import json, sys
for name in sys.argv[1:]:
    __import__(name)
from lms_shared import create_service
service = create_service("probe", version="1")
print(json.dumps(service.app.openapi(), sort_keys=True))
"""


def test_the_openapi_document_does_not_depend_on_what_was_imported(tmp_path: Path) -> None:
    def document(*imports: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", PROBE_OPENAPI, *imports],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=True,
            timeout=60,
        )
        return result.stdout

    bare = document()
    assert '"not-found"' in bare or "not-found" in bare
    assert document("lms_shared.db", "lms_shared.security", "lms_shared.testing") == bare
