"""Models: encode + decode of a course with 20 lessons, our codecs vs pydantic and msgspec.

One operation is "encode the course, then decode (validate) the bytes back
into the model", as a service does for a response, an event or a cache
entry. Variants, measured in interleaved rounds on the same data:

* pydantic: ``model_dump_json()`` + ``Course.model_validate_json()``
  (the baseline the target refers to);
* lms JSON / lms MessagePack: ``lms_shared.models.JSON`` / ``MSGPACK``;
* msgspec JSON / MessagePack: equivalent ``msgspec.Struct`` types with the
  same constraints (a reference point: a different library, not a target).

Target: lms JSON >= 0.95x pydantic.
"""

from __future__ import annotations

import argparse
import enum
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Annotated, Any
from uuid import UUID, uuid5

import msgspec
from rich.console import Console

from bench._report import Comparison, Target, parser, save
from lms_shared.models import JSON, MSGPACK, Course

ORDER = ("pydantic", "lms_json", "lms_msgpack", "msgspec_json", "msgspec_msgpack")
NAMES = {
    "pydantic": "pydantic",
    "lms_json": "lms JSON",
    "lms_msgpack": "lms msgpack",
    "msgspec_json": "msgspec JSON",
    "msgspec_msgpack": "msgspec msgpack",
}
TARGETS = (Target("lms_json", "pydantic", 0.95),)
LESSONS = 20


@dataclass(frozen=True, slots=True)
class Plan:
    """How much to measure."""

    rounds: int = 61
    operations: int = 150
    warmup: int = 300


QUICK = Plan(rounds=25, operations=40, warmup=100)


# --- the data ------------------------------------------------------------------


def course_document(lessons: int = LESSONS) -> dict[str, Any]:
    """A published course with two modules and ``lessons`` lessons, as JSON data."""
    seed = UUID("5c9e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a")
    start = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

    def stored(name: str, minutes: int) -> dict[str, Any]:
        at = (start + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        return {"id": str(uuid5(seed, name)), "version": 1, "created_at": at, "updated_at": at}

    course_id = str(uuid5(seed, "course"))
    modules = []
    for m in range(2):
        module = stored(f"module-{m}", m)
        items = []
        for i in range(lessons // 2):
            n = m * (lessons // 2) + i
            video = n % 3 == 0
            items.append(
                {
                    **stored(f"lesson-{n}", 10 + n),
                    "module_id": module["id"],
                    "title": f"Lesson {n + 1}: averages, spread and plots",
                    "kind": "video" if video else "article",
                    "content": None if video else f"Descriptive statistics, part {n}. " * 8,
                    "video_url": f"https://videos.example.org/stats/{n}.mp4" if video else None,
                    "duration_minutes": 12 + n,
                    "position": i,
                }
            )
        modules.append(
            {
                **module,
                "course_id": course_id,
                "title": f"Module {m + 1}",
                "summary": "Averages, spread, plots and the normal distribution.",
                "position": m,
                "lessons": items,
            }
        )
    return {
        **stored("course", 0),
        "id": course_id,
        "organization_id": str(uuid5(seed, "org")),
        "slug": "intro-to-statistics",
        "title": "Introduction to Statistics",
        "summary": "Descriptive statistics, probability and inference, with exercises.",
        "language": "en",
        "status": "published",
        "starts_on": "2026-03-02",
        "ends_on": "2026-06-26",
        "capacity": 120,
        "tags": ["statistics", "year-1"],
        "modules": modules,
    }


# --- msgspec equivalents (same fields and constraints) ---------------------------

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Slug = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
Position = Annotated[int, msgspec.Meta(ge=0, le=10_000)]
Version = Annotated[int, msgspec.Meta(ge=1)]
Aware = Annotated[datetime, msgspec.Meta(tz=True)]


class Kind(enum.Enum):
    ARTICLE = "article"
    VIDEO = "video"
    QUIZ = "quiz"
    ASSIGNMENT = "assignment"


class Status(enum.Enum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class LessonS(msgspec.Struct, kw_only=True):
    id: UUID
    version: Version
    created_at: Aware
    updated_at: Aware
    module_id: UUID
    title: Title
    kind: Kind
    content: Annotated[str, msgspec.Meta(max_length=200_000)] | None = None
    video_url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    duration_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] | None = None
    position: Position


class ModuleS(msgspec.Struct, kw_only=True):
    id: UUID
    version: Version
    created_at: Aware
    updated_at: Aware
    course_id: UUID
    title: Title
    summary: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    position: Position
    lessons: Annotated[list[LessonS], msgspec.Meta(max_length=200)] = []


class CourseS(msgspec.Struct, kw_only=True):
    id: UUID
    version: Version
    created_at: Aware
    updated_at: Aware
    organization_id: UUID
    slug: Slug
    title: Title
    summary: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    language: Annotated[str, msgspec.Meta(max_length=16)]
    status: Status
    starts_on: str | None = None
    ends_on: str | None = None
    capacity: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    tags: Annotated[list[Slug], msgspec.Meta(max_length=20)] = []
    modules: Annotated[list[ModuleS], msgspec.Meta(max_length=100)] = []


# --- measuring -----------------------------------------------------------------


def operations(document: dict[str, Any]) -> dict[str, Callable[[], object]]:
    """One encode + decode per variant, each checked to round-trip once."""
    course = Course.model_validate(document)
    struct = msgspec.convert(document, CourseS)
    json_encoder, json_decoder = msgspec.json.Encoder(), msgspec.json.Decoder(CourseS)
    pack_encoder, pack_decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(CourseS)
    ops: dict[str, Callable[[], object]] = {
        "pydantic": lambda: Course.model_validate_json(course.model_dump_json()),
        "lms_json": lambda: JSON.decode(JSON.encode(course), Course),
        "lms_msgpack": lambda: MSGPACK.decode(MSGPACK.encode(course), Course),
        "msgspec_json": lambda: json_decoder.decode(json_encoder.encode(struct)),
        "msgspec_msgpack": lambda: pack_decoder.decode(pack_encoder.encode(struct)),
    }
    for key in ("pydantic", "lms_json", "lms_msgpack"):
        if ops[key]() != course:
            raise AssertionError(f"{key} does not round-trip the course")
    for key in ("msgspec_json", "msgspec_msgpack"):
        if ops[key]() != struct:
            raise AssertionError(f"{key} does not round-trip the course")
    return ops


def measure(plan: Plan, ops: dict[str, Callable[[], object]]) -> Comparison:
    """µs per encode + decode of each variant, in interleaved rounds."""
    result = Comparison(
        title=f"Encode + decode of a course with {LESSONS} lessons (in process)",
        unit="µs/op",
        higher_is_better=False,
        names=NAMES,
        baselines=("pydantic", "msgspec_json"),
        targets=TARGETS,
    )
    for op in ops.values():
        for _ in range(plan.warmup):
            op()
    clock = time.perf_counter
    for turn in range(plan.rounds):
        # short rounds, each in another order: drift and position bias cancel out
        for key in ORDER[turn % len(ORDER) :] + ORDER[: turn % len(ORDER)]:
            op = ops[key]
            start = clock()
            for _ in range(plan.operations):
                op()
            result.add(key, (clock() - start) / plan.operations * 1e6)
    return result


def _options(argv: list[str]) -> argparse.Namespace:
    cli = parser("models", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds (default 61, quick 25)")
    cli.add_argument("--operations", type=int, help="operations per variant per round")
    return cli.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the models benchmark; 1 under ``--check`` when a target is missed."""
    opts = _options(sys.argv[1:] if argv is None else argv)
    base = QUICK if opts.quick else Plan()
    plan = Plan(
        rounds=opts.rounds or base.rounds,
        operations=opts.operations or base.operations,
        warmup=base.warmup,
    )
    console = Console()
    versions = ", ".join(
        f"{p} {version(p)}" for p in ("pydantic", "pydantic-core", "ormsgpack", "msgspec")
    )
    console.print(
        f"[bold]bench models[/bold]: Python {platform.python_version()}, {versions}",
        highlight=False,
    )
    document = course_document()
    ops = operations(document)
    result = measure(plan, ops)
    course = Course.model_validate(document)
    result.notes += [
        "pydantic = model_dump_json + model_validate_json; msgspec = equivalent Structs",
        f"{plan.rounds} rounds x {plan.operations:,} operations per variant; payload "
        f"{len(JSON.encode(course)):,} bytes JSON, {len(MSGPACK.encode(course)):,} bytes msgpack",
    ]
    result.render(console)
    if opts.save:
        path = save("models", [result], versions=versions, plan=asdict(plan))
        console.print(f"saved {path}")
    return 1 if opts.check and not result.met() else 0


if __name__ == "__main__":
    raise SystemExit(main())
