"""``lms-shared new NAME``: scaffold a service on lms-shared, outside this repository.

The project it writes passes its own tests and ``mypy --strict`` as it is:
an app module built with ``create_service``, one versioned resource (table,
migration, list with cursor paging and filters, get, create, merge-patch
with ``If-Match``, permissions and roles), tests on
:mod:`lms_shared.testing`, a ``pyproject.toml`` depending on lms-shared,
and a README whose two commands run the service and its tests. Lines
marked ``# lms-shared:`` are where events and calls to other services go.

The templates are plain files under ``templates/service/`` (package data),
named ``*.tmpl`` so that no tool of this repository reads them as code, with
``{{placeholder}}`` in their text and paths (``dot-`` at the start of a name
is a ``.``). They hold no logic, only names, so a regular expression
renders them instead of a template engine (Jinja would be one more
dependency of every service for nothing): an unknown placeholder is an
error, never left in the output. A brace right before a placeholder stays:
``{{{resource}}_id}`` renders ``{quiz_id}``.
"""

from __future__ import annotations

import keyword
import re
import secrets
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from importlib.abc import Traversable
from importlib.util import find_spec
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from lms_shared import __version__
from lms_shared.clock import SystemClock
from lms_shared.errors import LmsError

__all__ = ["Scaffold", "ScaffoldError", "new", "render", "scaffold"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")
_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_WORD = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
MAX_NAME = 40
TEMPLATE_SUFFIX = ".tmpl"
DOT_PREFIX = "dot-"


class ScaffoldError(LmsError):
    """The service cannot be scaffolded: a bad name, a folder in the way, a broken template."""


def render(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every ``{{placeholder}}`` replaced by its value.

    Raises:
        ScaffoldError: a placeholder has no value.
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ScaffoldError(f"the template has an unknown placeholder {{{{{name}}}}}")
        return values[name]

    return _PLACEHOLDER.sub(value, text)


def _camel(word: str) -> str:
    return "".join(part.capitalize() for part in word.split("_"))


def _check_word(word: str, what: str) -> None:
    if len(word) > MAX_NAME or _WORD.fullmatch(word) is None:
        raise ScaffoldError(
            f"{what} is lower-case letters, digits and single underscores, "
            f"at most {MAX_NAME} characters, starting with a letter: got {word!r}"
        )
    if keyword.iskeyword(word) or keyword.issoftkeyword(word):
        raise ScaffoldError(f"{what} {word!r} is a Python keyword")


@dataclass(frozen=True, slots=True)
class Scaffold:
    """The names of one new service, checked.

    Attributes:
        name: the service's name (``course-reviews``): ``create_service``'s.
        package: its Python package (``course_reviews``).
        resource: the resource, singular (``review``): the permission prefix.
        plural: its plural (``reviews``): the path and the table.
    """

    name: str
    package: str
    resource: str
    plural: str

    @classmethod
    def of(cls, name: str, *, resource: str = "item", plural: str | None = None) -> Scaffold:
        """Check the names and derive the package's.

        Raises:
            ScaffoldError: a name is malformed, a keyword, or the package
                would shadow a module already importable (``json``,
                ``lms_shared``, ``fastapi``, ...).
        """
        if len(name) > MAX_NAME or _NAME.fullmatch(name) is None:
            raise ScaffoldError(
                "a service name is lower-case letters and digits, words joined by single "
                f"dashes, at most {MAX_NAME} characters, starting with a letter: got {name!r}"
            )
        package = name.replace("-", "_")
        _check_word(package, "the package name")
        if package in sys.stdlib_module_names or package == "tests" or find_spec(package):
            raise ScaffoldError(
                f"a package named {package!r} would shadow the module of that name: "
                "choose another service name"
            )
        plural = plural if plural is not None else f"{resource}s"
        _check_word(resource, "the resource")
        _check_word(plural, "the plural")
        if plural == resource:
            raise ScaffoldError(f"the plural of {resource!r} must differ from it")
        return cls(name, package, resource, plural)

    def values(self, now: datetime) -> dict[str, str]:
        """The placeholders' values (a fresh migration revision id each time)."""
        return {
            "name": self.name,
            "package": self.package,
            "title": self.name.replace("-", " ").capitalize(),
            "resource": self.resource,
            "resources": self.plural,
            "Resource": _camel(self.resource),
            "RESOURCES": self.plural.upper(),
            "revision": secrets.token_hex(6),
            "created": now.strftime("%Y-%m-%d %H:%M:%S"),
            "day": now.strftime("%Y%m%d"),
            "lms_shared_version": __version__,
        }


def _templates() -> Traversable:
    return resources.files("lms_shared.cli").joinpath("templates", "service")


def _walk(folder: Traversable, prefix: PurePosixPath) -> Iterator[tuple[PurePosixPath, str]]:
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            yield from _walk(entry, prefix / entry.name)
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            yield prefix / entry.name, entry.read_text(encoding="utf-8")


def _target_name(part: str, values: Mapping[str, str]) -> str:
    part = render(part, values).removesuffix(TEMPLATE_SUFFIX)
    return "." + part.removeprefix(DOT_PREFIX) if part.startswith(DOT_PREFIX) else part


def scaffold(
    names: Scaffold, target: Path, *, now: datetime, templates: Traversable | None = None
) -> list[Path]:
    """Write the project of ``names`` into ``target`` and return the files, relative.

    Every file is rendered before the first is written, so a failure leaves
    nothing behind.

    Args:
        names: the service's checked names.
        target: the project folder; it must not exist or be empty.
        now: the migration's creation date.
        templates: the template folder (tests); the packaged one by default.

    Raises:
        ScaffoldError: ``target`` is a file or a folder with something in it,
            or a template is broken.
    """
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(f"{target} already exists and is not an empty folder")
    values = names.values(now)
    files: dict[Path, str] = {}
    for template, text in _walk(templates or _templates(), PurePosixPath()):
        relative = Path(*(_target_name(part, values) for part in template.parts))
        files[relative] = render(text, values)
    if not files:
        raise ScaffoldError("the service templates are missing from this lms-shared install")
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    return sorted(files)


def new(
    name: Annotated[
        str, typer.Argument(help="the service's name: lower-case words joined by dashes")
    ],
    path: Annotated[
        Path | None, typer.Option("--path", help="the project folder to create (default: ./NAME)")
    ] = None,
    resource: Annotated[
        str, typer.Option("--resource", help="its resource, singular snake_case (quiz)")
    ] = "item",
    plural: Annotated[
        str | None, typer.Option("--plural", help="the resource's plural (default: RESOURCE + s)")
    ] = None,
) -> None:
    """Scaffold a new service on lms-shared that passes its own tests and mypy --strict."""
    target = path if path is not None else Path.cwd() / name
    try:
        names = Scaffold.of(name, resource=resource, plural=plural)
        written = scaffold(names, target, now=SystemClock().now())
    except ScaffoldError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: cannot write {target}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote the {name} service ({len(written)} files) in {target}")
    typer.echo("next, in that folder, once: pip install -e '.[dev]'; then")
    typer.echo(f"  lms-shared serve {names.package}.app:service")
    typer.echo("  python -m pytest")
