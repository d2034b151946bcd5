"""File name and path sanitising for uploads.

Never build a path from a client's file name. :func:`safe_filename` turns
any name into one harmless path component (or refuses it), and
:func:`safe_path` joins components under a base folder and refuses
anything that would leave it, symbolic links included::

    name = safe_filename(upload.filename)            # "..\\..\\x.pdf" -> "x.pdf"
    path = safe_path(settings.state_dir / "uploads", str(course_id), name)

Better still, store uploads under a generated id and keep the cleaned
name only as metadata (for ``Content-Disposition``).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from lms_shared.security._errors import UnsafePathError
from lms_shared.security._text import strip_control_chars

__all__ = ["SafeFilename", "safe_filename", "safe_path"]

_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)


def safe_filename(name: str, *, max_bytes: int = 255) -> str:
    """One safe path component made from an untrusted file name.

    NFKC-normalised (full-width dots and slashes become ``../`` first), control,
    bidi-override and invisible characters removed, the directory part
    dropped (``/`` and ``\\``), characters Windows forbids replaced by
    ``_``, leading dots and trailing dots/spaces stripped, reserved
    device names (``CON``, ``NUL``, ``COM1``...) prefixed with ``_``, and
    the result cut to ``max_bytes`` of UTF-8 keeping the extension.

    Raises:
        UnsafePathError: nothing usable is left (``""``, ``..``, ``///``).
    """
    text = unicodedata.normalize("NFKC", name)
    text = strip_control_chars(text, keep="")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _FORBIDDEN.sub("_", text)
    text = " ".join(text.split())
    text = text.lstrip(". ").rstrip(". ")
    if not text:
        raise UnsafePathError("the file name is empty once cleaned")
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    if stem.split(".")[0].upper() in _RESERVED:
        text = "_" + text
        stem = "_" + stem
    if len(text.encode()) > max_bytes:
        suffix = f".{ext}" if dot and len(ext.encode()) < max_bytes // 2 else ""
        room = max_bytes - len(suffix.encode())
        stem = stem.encode()[:room].decode("utf-8", "ignore").rstrip(". ")
        if not stem:
            raise UnsafePathError("the file name is empty once shortened")
        text = stem + suffix
    return text


def safe_path(base: str | Path, *parts: str) -> Path:
    """``base`` joined with ``parts``, refusing any result outside ``base``.

    Each part may hold several components (``"2026/week-1"``); absolute
    parts, ``..`` escapes, NUL bytes and symbolic links leading outside
    ``base`` are refused. The result is resolved (absolute, no links).

    Raises:
        UnsafePathError: the path would leave ``base``.
    """
    root = Path(base).resolve()
    target = root
    for part in parts:
        if "\x00" in part:
            raise UnsafePathError("a path part contains a NUL byte")
        piece = Path(part)
        if piece.is_absolute() or part.startswith(("/", "\\")) or piece.drive:
            raise UnsafePathError("a path part is absolute")
        target = target / piece
    resolved = target.resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise UnsafePathError("the path leaves its base folder")
    return resolved


def _validate_filename(value: str) -> str:
    return safe_filename(value)


SafeFilename = Annotated[str, AfterValidator(_validate_filename)]
"""An upload's file name, cleaned by :func:`safe_filename` during validation."""
