"""The public API of lms_shared.models, pinned; importing it does nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lms_shared.models
import lms_shared.testing
from lms_shared.errors import LmsError, ProblemError

MODELS_API = [
    "CODECS",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_LENGTH",
    "ENROLLMENT_TRANSITIONS",
    "IDEMPOTENCY_HEADER",
    "JSON",
    "JSON_SCHEMA_DIALECT",
    "MERGE_PATCH_CONTENT_TYPE",
    "MSGPACK",
    "NAIVE_IS_UTC",
    "PERSONAL_KEYS",
    "REDACTED",
    "REPLAYED_HEADER",
    "Assignment",
    "AssignmentCreate",
    "AssignmentUpdate",
    "Claim",
    "Codec",
    "Course",
    "CourseCreate",
    "CourseStatus",
    "CourseUpdate",
    "Email",
    "Enrollment",
    "EnrollmentCreate",
    "EnrollmentStatus",
    "EnrollmentUpdate",
    "FieldSet",
    "Grade",
    "GradeCreate",
    "GradeUpdate",
    "Idempotency",
    "IdempotencyInFlight",
    "IdempotencyKeyReused",
    "IdempotencyStore",
    "IdempotentRequest",
    "IfMatch",
    "IllegalTransition",
    "InvalidIdempotencyKey",
    "JsonCodec",
    "Lesson",
    "LessonCreate",
    "LessonKind",
    "LessonUpdate",
    "LmsModel",
    "LmsRecord",
    "LocaleCode",
    "LongText",
    "MalformedPatch",
    "MalformedPayload",
    "MemoryIdempotencyStore",
    "MergePatch",
    "ModelValidationError",
    "Module",
    "ModuleCreate",
    "ModuleUpdate",
    "MsgpackCodec",
    "Name",
    "NonEmptyStr",
    "Organization",
    "OrganizationCreate",
    "OrganizationUpdate",
    "Percentage",
    "Personal",
    "Precondition",
    "PreconditionRequired",
    "Resource",
    "Role",
    "SchemaChange",
    "SchemaEntry",
    "SchemaRegistry",
    "SchemaVersionError",
    "Score",
    "ShortText",
    "Slug",
    "SparseFields",
    "SqlIdempotencyStore",
    "StaleVersion",
    "StoredResponse",
    "Submission",
    "SubmissionCreate",
    "SubmissionUpdate",
    "Text",
    "Title",
    "UnknownFields",
    "Upcaster",
    "User",
    "UserCreate",
    "UserUpdate",
    "UtcDatetime",
    "WebUrl",
    "apply_merge_patch",
    "apply_update",
    "at_most",
    "check_if_match",
    "check_transition",
    "codec_for",
    "compare_exports",
    "compare_schemas",
    "etag",
    "fingerprint_body",
    "for_operators",
    "from_row",
    "from_rows",
    "idempotency_table",
    "is_personal",
    "merge_patch",
    "not_before",
    "parse_etags",
    "parse_merge_patch",
    "personal_fields",
    "problem_from",
    "read_export",
    "redact",
    "redact_personal_data",
    "set_etag",
    "shared_schemas",
    "to_values",
    "transition",
    "trimmed",
    "url_constraints",
    "validate",
    "validate_json",
    "versioned_update",
]


def test_models_exports_are_pinned() -> None:
    assert lms_shared.models.__all__ == MODELS_API
    for name in MODELS_API:
        assert hasattr(lms_shared.models, name), name


def test_every_dto_has_a_public_factory() -> None:
    for entry in lms_shared.models.shared_schemas():
        name = f"{entry.model.__name__}Factory"
        assert name in lms_shared.testing.__all__, name
        assert getattr(lms_shared.testing, name).__model__ is entry.model
    assert "LmsFactory" in lms_shared.testing.__all__


def test_errors_belong_to_the_tree() -> None:
    problems = [
        "IdempotencyInFlight",
        "IdempotencyKeyReused",
        "IllegalTransition",
        "InvalidIdempotencyKey",
        "MalformedPatch",
        "MalformedPayload",
        "ModelValidationError",
        "PreconditionRequired",
        "StaleVersion",
        "UnknownFields",
    ]
    for name in problems:
        assert issubclass(getattr(lms_shared.models, name), ProblemError), name
    assert issubclass(lms_shared.models.SchemaVersionError, LmsError)


PROBE = """
import logging, threading
threads = threading.active_count()
handlers = len(logging.getLogger().handlers)
import lms_shared.models
import lms_shared.cli
registry = lms_shared.models.shared_schemas()
assert threading.active_count() == threads, "a thread was started"
assert len(logging.getLogger().handlers) == handlers, "a log handler was installed"
import structlog
assert not structlog.is_configured(), "structlog was configured"
import sys
assert "polyfactory" not in sys.modules, "the factories were imported"
import lms_shared.testing
assert "polyfactory" not in sys.modules, "lms_shared.testing imported the factories eagerly"
print("clean")
"""


def test_nothing_happens_at_import(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"
    assert list(tmp_path.iterdir()) == []
