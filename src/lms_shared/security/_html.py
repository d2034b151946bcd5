"""HTML sanitising of rich text (course descriptions, forum posts) with nh3.

nh3 binds ammonia, a whitelist-based sanitiser built on an HTML5 parser:
the input is parsed the way a browser parses it, and only allowed tags,
attributes and URL schemes survive. Everything else is dropped (the text
of unknown tags is kept; ``script``/``style`` and similar lose their
content too). The LMS allowlist covers what a course editor produces:
headings, lists, emphasis, quotes, code, tables, links and images.

Links get ``rel="noopener noreferrer nofollow ugc"``; only ``http``,
``https`` and ``mailto`` URLs stay (no ``javascript:``, ``data:``,
``vbscript:``). No ``style``, ``class`` or ``on*`` attribute is kept.
Sanitise on the way *in* (store the clean version) and still escape any
value you place into HTML yourself.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Annotated

import nh3
from pydantic import AfterValidator

from lms_shared.security._text import clean_text

__all__ = ["LMS_HTML_ATTRIBUTES", "LMS_HTML_TAGS", "HtmlSanitizer", "SafeHtml", "sanitize_html"]

LMS_HTML_TAGS: frozenset[str] = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "dl",
        "dt", "em", "figcaption", "figure", "h2", "h3", "h4", "h5", "h6", "hr",
        "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s",
        "samp", "small", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
        "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
"""Tags a course description or forum post may use."""

LMS_HTML_ATTRIBUTES: Mapping[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "abbr": frozenset({"title"}),
    "img": frozenset({"src", "alt", "title", "width", "height"}),
    "ol": frozenset({"start", "reversed"}),
    "td": frozenset({"colspan", "rowspan"}),
    "th": frozenset({"colspan", "rowspan", "scope"}),
    "q": frozenset({"cite"}),
    "blockquote": frozenset({"cite"}),
}
"""Attributes allowed per tag (nothing on every tag: no ``style``, ``class``, ``on*``)."""

_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_DROP_WITH_CONTENT = frozenset(
    {"script", "style", "template", "iframe", "object", "embed", "noscript", "svg", "math"}
)


class HtmlSanitizer:
    """A reusable sanitiser with its own allowlist (built once, then fast).

    Args:
        tags: allowed tags.
        attributes: allowed attributes per tag.
        url_schemes: URL schemes kept in ``href``/``src``/``cite``.
        link_rel: the ``rel`` value forced onto every link.
    """

    def __init__(
        self,
        *,
        tags: Set[str] = LMS_HTML_TAGS,
        attributes: Mapping[str, Set[str]] = LMS_HTML_ATTRIBUTES,
        url_schemes: Set[str] = _URL_SCHEMES,
        link_rel: str = "noopener noreferrer nofollow ugc",
    ) -> None:
        unsafe = {t for t in tags if t in _DROP_WITH_CONTENT}
        if unsafe:
            raise ValueError(f"tags that can run code cannot be allowed: {sorted(unsafe)}")
        for tag, names in attributes.items():
            bad = {n for n in names if n.lower().startswith("on") or n.lower() == "style"}
            if bad:
                raise ValueError(f"attributes that can run code cannot be allowed on {tag}: {bad}")
        if "javascript" in url_schemes or "data" in url_schemes or "vbscript" in url_schemes:
            raise ValueError("javascript:, data: and vbscript: URLs cannot be allowed")
        self._cleaner = nh3.Cleaner(
            tags=set(tags),
            clean_content_tags=set(_DROP_WITH_CONTENT),
            attributes={tag: set(names) for tag, names in attributes.items()},
            url_schemes=set(url_schemes),
            link_rel=link_rel,
            strip_comments=True,
        )

    def clean(self, html: str) -> str:
        """Normalise (NFC, no control characters) and sanitise an HTML fragment."""
        return self._cleaner.clean(clean_text(html))


_default: list[HtmlSanitizer] = []


def sanitize_html(html: str) -> str:
    """Sanitise rich text with the LMS allowlist.

    Example:
        >>> sanitize_html('<p onclick="x()">Hi <script>alert(1)</script><b>all</b></p>')
        '<p>Hi <b>all</b></p>'
    """
    if not _default:
        _default.append(HtmlSanitizer())
    return _default[0].clean(html)


SafeHtml = Annotated[str, AfterValidator(sanitize_html)]
"""Rich text sanitised with the LMS allowlist during validation (a pydantic type)."""
