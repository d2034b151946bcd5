"""Unicode normalisation and control-character stripping, as functions and types.

Text from users is normalised before it is stored or compared:

* :func:`clean_text` for prose: NFC (canonical composition, so ``é`` is
  one code point however it was typed), ``\\r\\n`` to ``\\n``, and no C0/C1
  control characters (tab and newline kept), no bidirectional overrides
  (the "Trojan Source" trick), no zero-width spaces or BOMs;
* :func:`clean_line` for one-line fields (titles, names): the same, with
  tabs and newlines turned into spaces and the ends stripped;
* :func:`normalize_identifier` for things compared for equality (user
  names, e-mail local parts, slugs): NFKC (compatibility folding, so
  full-width letters equal ASCII ones), case-folded, every format
  character removed.

The pydantic types :data:`CleanText`, :data:`CleanLine` and
:data:`Identifier` apply them during validation. Zero-width joiners stay
in prose: emoji sequences and several scripts need them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator

__all__ = [
    "CleanLine",
    "CleanText",
    "Identifier",
    "clean_line",
    "clean_text",
    "normalize_identifier",
    "strip_control_chars",
]

_C0_C1 = [*range(0x00, 0x20), *range(0x7F, 0xA0)]
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_INVISIBLE = [0x00AD, 0x200B, 0x2060, 0xFEFF]
_TABLES: dict[str, dict[int, None]] = {}


def _table(keep: str) -> dict[int, None]:
    table = _TABLES.get(keep)
    if table is None:
        kept = {ord(ch) for ch in keep}
        table = {cp: None for cp in (*_C0_C1, *_BIDI, *_INVISIBLE) if cp not in kept}
        _TABLES[keep] = table
    return table


def strip_control_chars(text: str, *, keep: str = "\n\t") -> str:
    """Remove control, bidi-override and invisible characters.

    Args:
        text: any string.
        keep: control characters to keep (newline and tab by default).
    """
    return text.translate(_table(keep))


def clean_text(text: str, *, form: Literal["NFC", "NFKC"] = "NFC") -> str:
    """Normalise multi-line prose: Unicode ``form``, ``\\n`` line ends, no controls."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize(form, strip_control_chars(text))


def clean_line(text: str, *, form: Literal["NFC", "NFKC"] = "NFC") -> str:
    """Normalise a one-line value: as :func:`clean_text`, whitespace runs to one space."""
    text = unicodedata.normalize(form, strip_control_chars(text, keep="\n\t\r"))
    return " ".join(text.split())


def normalize_identifier(text: str) -> str:
    """NFKC, case-folded, without any format or control character, trimmed.

    Use it before storing *and* before comparing user names, so look-alike
    spellings (full-width letters, ligatures, hidden characters) collide
    instead of creating a second ``admin``.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = unicodedata.normalize("NFKC", folded)
    kept = "".join(ch for ch in folded if unicodedata.category(ch) not in {"Cc", "Cf", "Cs"})
    return kept.strip()


def _not_empty(func: Callable[[str], str]) -> AfterValidator:
    def validate(value: str) -> str:
        out = func(value)
        if not out:
            raise ValueError("must not be empty or only invisible characters")
        return out

    return AfterValidator(validate)


CleanText = Annotated[str, AfterValidator(clean_text)]
"""Multi-line prose, NFC-normalised, without control or bidi-override characters."""

CleanLine = Annotated[str, AfterValidator(clean_line)]
"""One line of text: normalised, whitespace collapsed, trimmed."""

Identifier = Annotated[str, _not_empty(normalize_identifier)]
"""A compared-for-equality name: NFKC, case-folded, no format characters, not empty."""
