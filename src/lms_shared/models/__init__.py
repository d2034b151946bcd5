"""The platform's data contracts: base models, types, LMS DTOs and their patterns.

* **Bases and types**: :class:`LmsModel` (input: unknown fields refused),
  :class:`LmsRecord` and :class:`Resource` (output: tolerant readers), the
  annotated types (:data:`UtcDatetime`, :data:`Email`, :data:`Slug`, ...),
  canonical parameter types (:data:`Id`, :data:`CanonicalInt`, :func:`canonical_type`).
* **LMS DTOs**, Create / Update / Read: organizations, users, courses,
  modules, lessons, enrollments (with :func:`transition`), assignments,
  submissions, grades.
* **Validation**: cross-field rules (:func:`not_before`, :func:`at_most`),
  :func:`validate` raising a 422 :class:`ModelValidationError`.
* **Transformation**: :func:`from_row` / :func:`to_values`, JSON Merge
  Patch (:func:`apply_merge_patch`); personal-data markers are the leaf
  :mod:`lms_shared.redaction` (:class:`~lms_shared.redaction.Personal`).
* **Serialization**: the :class:`Codec` protocol, :data:`JSON` and :data:`MSGPACK`.
* **Schema versions**: :class:`SchemaRegistry`, :func:`shared_schemas`,
  upcasters, :func:`compare_exports`.
* **Paging and idempotency as data**: opaque cursors and :class:`PageParams`;
  idempotency records, the store protocol and a memory store.

Data contracts only: the HTTP parts (ETag/If-Match, Idempotency-Key,
sparse fieldsets, merge-patch bodies) are in :mod:`lms_shared.http`; the
SQL stores and :func:`~lms_shared.db.versioned_update` in :mod:`lms_shared.db`.

See ``docs/models.md``.
"""

from lms_shared.models._base import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_LENGTH,
    LmsModel,
    LmsRecord,
    Resource,
)
from lms_shared.models._canonical import CanonicalInt, Id, canonical_type
from lms_shared.models._courses import (
    Course,
    CourseCreate,
    CourseStatus,
    CourseUpdate,
    Lesson,
    LessonCreate,
    LessonKind,
    LessonUpdate,
    Module,
    ModuleCreate,
    ModuleUpdate,
)
from lms_shared.models._enrollment import (
    ENROLLMENT_TRANSITIONS,
    Enrollment,
    EnrollmentCreate,
    EnrollmentStatus,
    EnrollmentUpdate,
    check_transition,
    transition,
)
from lms_shared.models._errors import (
    PROBLEMS,
    IdempotencyInFlight,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidIdempotencyKey,
    MalformedPatch,
    MalformedPayload,
    ModelValidationError,
    PreconditionRequired,
    SchemaVersionError,
    StaleVersion,
    UnknownFields,
)
from lms_shared.models._grading import (
    Assignment,
    AssignmentCreate,
    AssignmentUpdate,
    Grade,
    GradeCreate,
    GradeUpdate,
    Submission,
    SubmissionCreate,
    SubmissionUpdate,
)
from lms_shared.models._identity import (
    Organization,
    OrganizationCreate,
    OrganizationUpdate,
    Role,
    User,
    UserCreate,
    UserUpdate,
)
from lms_shared.models._mapping import from_row, from_rows, to_values
from lms_shared.models._paging import (
    DEFAULT_LIMIT,
    MAX_CURSOR_LENGTH,
    MAX_LIMIT,
    PageParams,
    decode_cursor,
    encode_cursor,
    paginate,
)
from lms_shared.models._patch import (
    MERGE_PATCH_CONTENT_TYPE,
    apply_merge_patch,
    apply_update,
    merge_patch,
    parse_merge_patch,
)
from lms_shared.models._types import (
    NAIVE_IS_UTC,
    Email,
    LocaleCode,
    LongText,
    Name,
    NonEmptyStr,
    Percentage,
    Score,
    ShortText,
    Slug,
    Text,
    Title,
    UtcDatetime,
    WebUrl,
    trimmed,
    url_constraints,
)
from lms_shared.models._validation import (
    at_most,
    not_before,
    problem_from,
    validate,
    validate_json,
    validation_errors,
)
from lms_shared.models.codecs import (
    JSON,
    MSGPACK,
    Codec,
)
from lms_shared.models.compat import compare_exports
from lms_shared.models.idempotency import (
    IdempotencyStore,
    MemoryIdempotencyStore,
)
from lms_shared.models.registry import (
    SchemaRegistry,
    Upcaster,
    shared_schemas,
)

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_LENGTH",
    "ENROLLMENT_TRANSITIONS",
    "JSON",
    "MAX_CURSOR_LENGTH",
    "MAX_LIMIT",
    "MERGE_PATCH_CONTENT_TYPE",
    "MSGPACK",
    "NAIVE_IS_UTC",
    "PROBLEMS",
    "Assignment",
    "AssignmentCreate",
    "AssignmentUpdate",
    "CanonicalInt",
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
    "Grade",
    "GradeCreate",
    "GradeUpdate",
    "Id",
    "IdempotencyInFlight",
    "IdempotencyKeyReused",
    "IdempotencyStore",
    "IllegalTransition",
    "InvalidIdempotencyKey",
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
    "ModelValidationError",
    "Module",
    "ModuleCreate",
    "ModuleUpdate",
    "Name",
    "NonEmptyStr",
    "Organization",
    "OrganizationCreate",
    "OrganizationUpdate",
    "PageParams",
    "Percentage",
    "PreconditionRequired",
    "Resource",
    "Role",
    "SchemaRegistry",
    "SchemaVersionError",
    "Score",
    "ShortText",
    "Slug",
    "StaleVersion",
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
    "canonical_type",
    "check_transition",
    "compare_exports",
    "decode_cursor",
    "encode_cursor",
    "from_row",
    "from_rows",
    "merge_patch",
    "not_before",
    "paginate",
    "parse_merge_patch",
    "problem_from",
    "shared_schemas",
    "to_values",
    "transition",
    "trimmed",
    "url_constraints",
    "validate",
    "validate_json",
    "validation_errors",
]
