"""What the example services share about keeping data: naming a broken rule.

Each service keeps its rows through ``service.db`` (see ``<service>/store.py``);
a unique constraint, not a look-up before the insert, decides whether a slug
or an email address is taken, so two racing requests cannot both win. The
database layer turns the integrity error into a
:class:`~lms_shared.db.ConstraintViolation` (a generic 409); a store turns
the one it expects into a 409 problem that says what is taken.
"""

from __future__ import annotations

from lms_shared import errors
from lms_shared.db import ConstraintViolation, InvalidFilter, InvalidSort
from lms_shared.http import problem_responses

__all__ = ["LIST_PROBLEMS", "violated"]


def violated(exc: ConstraintViolation, name: str) -> bool:
    """Whether ``exc`` broke the constraint (or unique index) called ``name``.

    PostgreSQL names the constraint; SQLite does not (``exc.constraint`` is
    ``None``), so there the caller's expectation is taken as the answer:
    call this only where one constraint can break.
    """
    return exc.constraint is None or exc.constraint == name


LIST_PROBLEMS = problem_responses(InvalidFilter.code, InvalidSort.code, errors.INVALID_CURSOR)
"""``responses=`` of a list route: the 400 problems of its filters, sort and cursor."""
