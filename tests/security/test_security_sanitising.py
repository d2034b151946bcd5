"""HTML, file names, paths and text: an XSS corpus and hostile names."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from lms_shared import Service
from lms_shared.security import (
    CleanLine,
    CleanText,
    HtmlSanitizer,
    Identifier,
    SafeFilename,
    SafeHtml,
    UnsafePathError,
    clean_text,
    normalize_identifier,
    safe_filename,
    safe_path,
    sanitize_html,
    strip_control_chars,
)
from lms_shared.testing import service_client

XSS_CORPUS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="javascript:alert(1)">',
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<img src=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<body onload=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    "<object data=javascript:alert(1)></object>",
    "<embed src=javascript:alert(1)>",
    "<form action=javascript:alert(1)><button>x</button></form>",
    "<input onfocus=alert(1) autofocus>",
    "<details open ontoggle=alert(1)>",
    "<div style=\"background:url('javascript:alert(1)')\">x</div>",
    '<p style="behavior:url(x.htc)">x</p>',
    "<style>@import 'javascript:alert(1)';</style>",
    "<link rel=stylesheet href=javascript:alert(1)>",
    "<meta http-equiv=refresh content='0;url=javascript:alert(1)'>",
    "<base href=javascript:alert(1)//>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<template><script>alert(1)</script></template>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '"><script>alert(1)</script>',
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
    "<img src=x:alert(alt) onerror=eval(src) alt=0>",
    "<!--<img src=x onerror=alert(1)>-->",
    "<a href='&#x6A;avascript:alert(1)'>x</a>",
    "<video><source onerror=alert(1)></video>",
    "<marquee onstart=alert(1)>x</marquee>",
    "<x contenteditable onblur=alert(1)>x</x>",
    '<a href="\x01javascript:alert(1)">x</a>',
]

DANGEROUS = (
    "<script",
    "javascript:",
    "vbscript:",
    "data:",
    "onerror",
    "onload",
    "onclick",
    "onfocus",
    "ontoggle",
    "onstart",
    "onblur",
    "<iframe",
    "<svg",
    "<object",
    "<embed",
    "<style",
    "style=",
    "<meta",
    "<base",
    "<link",
    "<form",
    "srcdoc",
)


@pytest.mark.parametrize("payload", XSS_CORPUS)
def test_xss_corpus_is_neutralised(payload: str) -> None:
    cleaned = sanitize_html(payload).lower()
    for marker in DANGEROUS:
        assert marker not in cleaned, (payload, cleaned)


def test_course_description_markup_survives() -> None:
    html = (
        "<h2>Week 1</h2><p>Read <strong>chapter 1</strong> and <em>2</em>.</p>"
        '<ul><li>Lab</li></ul><a href="https://lms.example.org/x" title="t">link</a>'
        '<img src="https://cdn.example/i.png" alt="diagram"><pre><code>x = 1</code></pre>'
        '<table><tr><td colspan="2">cell</td></tr></table>'
    )
    cleaned = sanitize_html(html)
    assert cleaned.startswith("<h2>Week 1</h2><p>Read <strong>chapter 1</strong>")
    assert (
        '<a href="https://lms.example.org/x" title="t" rel="noopener noreferrer nofollow ugc">'
        in (cleaned)
    )
    assert '<img src="https://cdn.example/i.png" alt="diagram">' in cleaned
    assert "<pre><code>x = 1</code></pre>" in cleaned
    assert '<td colspan="2">cell</td>' in cleaned
    assert sanitize_html("<h1 class=x>Title</h1>") == "Title"


def test_custom_sanitiser_cannot_allow_code() -> None:
    with pytest.raises(ValueError, match="run code"):
        HtmlSanitizer(tags={"p", "script"})
    with pytest.raises(ValueError, match="run code"):
        HtmlSanitizer(attributes={"p": {"onclick"}})
    with pytest.raises(ValueError, match="javascript"):
        HtmlSanitizer(url_schemes={"https", "javascript"})
    assert HtmlSanitizer(tags={"b"}).clean("<b>x</b><i>y</i>") == "<b>x</b>y"


class CourseIn(BaseModel):
    title: CleanLine
    description: SafeHtml
    slug: Identifier
    notes: CleanText = ""


def test_pydantic_types_clean_during_validation() -> None:
    course = CourseIn(
        title="  Intro\tto\u202e Python \n",
        description='<p onclick="x()">Hi<script>alert(1)</script></p>',
        slug="\uff30\uff59\uff54\uff48\uff4f\uff4e\u200b-101",
        notes="line 1\r\nline\x00 2",
    )
    assert course.title == "Intro to Python"
    assert course.description == "<p>Hi</p>"
    assert course.slug == "python-101"
    assert course.notes == "line 1\nline 2"
    with pytest.raises(ValidationError, match="empty"):
        CourseIn(title="x", description="", slug="\u200b\u200b")


async def test_sanitised_description_over_http(make_service: Callable[..., Service]) -> None:
    service = make_service()

    @service.router.post("/v1/courses")
    async def create(body: CourseIn) -> CourseIn:
        return body

    async with service_client(service) as client:
        response = await client.post(
            "/v1/courses",
            json={
                "title": "Algebra",
                "description": "<b>Welcome</b><img src=x onerror=alert(document.cookie)>",
                "slug": "algebra",
            },
        )
    assert response.status_code == 200
    assert response.json()["description"] == '<b>Welcome</b><img src="x">'


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("/absolute/path.txt", "path.txt"),
        ("\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fsecret.txt", "secret.txt"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("nul\x00byte.txt", "nulbyte.txt"),
        (".htaccess", "htaccess"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("LPT1.log", "_LPT1.log"),
        ('a<b>c:d"e|f?g*h.txt', "a_b_c_d_e_f_g_h.txt"),
        ("trailing dots... ", "trailing dots"),
        ("  multiple   spaces .txt", "multiple spaces .txt"),
        ("Résumé.pdf", "Résumé.pdf"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


@pytest.mark.parametrize("name", ["", "..", "/", "...", "\u200b", "\\\\"])
def test_filenames_with_nothing_left_are_refused(name: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_filename(name)


def test_long_filenames_keep_their_extension() -> None:
    cleaned = safe_filename("é" * 300 + ".pdf")
    assert cleaned.endswith(".pdf")
    assert len(cleaned.encode()) <= 255


class Upload(BaseModel):
    filename: SafeFilename


def test_safe_filename_type() -> None:
    assert Upload(filename="../x.png").filename == "x.png"
    with pytest.raises(ValidationError, match="empty"):
        Upload(filename="..")


def test_safe_path_stays_under_its_base(tmp_path: Path) -> None:
    base = tmp_path / "uploads"
    base.mkdir()
    assert safe_path(base, "course-1", "a.pdf") == (base / "course-1" / "a.pdf").resolve()
    for parts in (("..", "x"), ("a/../../x",), ("/etc/passwd",), ("a\x00b",)):
        with pytest.raises(UnsafePathError):
            safe_path(base, *parts)
    os.symlink("/etc", base / "link")
    with pytest.raises(UnsafePathError, match="leaves"):
        safe_path(base, "link", "passwd")


def test_text_helpers() -> None:
    assert strip_control_chars("a\x00b\x1bc\u202ed\te\n") == "abcd\te\n"
    assert strip_control_chars("a\tb", keep="") == "ab"
    assert clean_text("e\u0301") == "\u00e9"  # NFC composes
    assert clean_text("ﬁ", form="NFKC") == "fi"
    assert normalize_identifier(" \uff21\uff24\uff2d\uff29\uff2e\u200d ") == "admin"
    assert clean_text("👨\u200d👩\u200d👧") == "👨\u200d👩\u200d👧"  # joiners kept in prose
