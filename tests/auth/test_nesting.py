"""Untrusted JSON nested 10,000 levels deep: a typed error everywhere, never a RecursionError.

Tokens (header before the signature check, payload after it), JWKS
documents, cursors and merge patches all decode through
``lms_shared.jsonlimits``.
"""

from __future__ import annotations

import base64
import json

import pytest

from lms_shared import BadRequest
from lms_shared.auth import InvalidToken, SigningKey, StaticKeys, TokenVerifier, VerifierConfig
from lms_shared.auth._compact import strict_json
from lms_shared.jsonlimits import JsonLimitError, check_depth, load_json, scan_depth
from lms_shared.models import MalformedPatch, decode_cursor, parse_merge_patch
from lms_shared.testing import ManualClock

from .conftest import ISSUER

DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("document", [DEEP, DEEP_OBJECT, b'{"x": ' + DEEP + b"}"])
def test_every_decoder_refuses_deep_documents(document: bytes) -> None:
    with pytest.raises(JsonLimitError, match="nested deeper"):
        scan_depth(document)
    with pytest.raises(JsonLimitError):
        load_json(document)
    with pytest.raises(ValueError, match="nested deeper"):
        strict_json(document)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"title": "[" * 5000, "nested": [[1]]}).encode()
    scan_depth(text, max_depth=3)
    assert load_json(text, max_depth=3)["nested"] == [[1]]
    check_depth([[[]]], max_depth=3)
    with pytest.raises(JsonLimitError):
        check_depth([[[[]]]], max_depth=3)


def test_size_and_type_bounds() -> None:
    with pytest.raises(JsonLimitError, match="larger than"):
        load_json(b"[" + b"1," * 10 + b"1]", max_bytes=8)
    with pytest.raises(JsonLimitError, match="bytes or text"):
        load_json(42)  # type: ignore[arg-type]
    with pytest.raises(JsonLimitError, match="malformed"):
        load_json(b"{nope")


async def test_a_deep_token_header_and_a_deep_signed_payload_are_401s() -> None:
    clock = ManualClock()
    key = SigningKey.generate("ES256")
    config = VerifierConfig(
        issuer=ISSUER, audiences=("courses",), max_token_bytes=65536, cache_size=0
    )
    verifier = TokenVerifier(config, StaticKeys([key.verification_key()]), clock=clock)
    deep_head = b64(b'{"alg": "ES256", "x": ' + DEEP + b"}") + ".e30.c2ln"
    with pytest.raises(InvalidToken):
        await verifier.verify(deep_head)
    head = b64(json.dumps({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}).encode())
    payload = b64(b'{"sub":"x","deep":' + DEEP + b"}")
    signing_input = f"{head}.{payload}"
    signed = f"{signing_input}.{b64(key.sign(signing_input.encode()))}"
    with pytest.raises(InvalidToken, match="payload"):
        await verifier.verify(signed)


def test_a_deep_cursor_is_an_invalid_cursor_problem() -> None:
    cursor = b64(b'{"after":' + b"[" * 300 + b"]" * 300 + b"}")
    with pytest.raises(BadRequest) as raised:
        decode_cursor(cursor)
    assert raised.value.problem_code.slug == "invalid-cursor"


@pytest.mark.parametrize("patch", [DEEP_OBJECT, DEEP_OBJECT.decode()])
def test_a_deep_merge_patch_is_malformed(patch: bytes | str) -> None:
    with pytest.raises(MalformedPatch):
        parse_merge_patch(patch)
    with pytest.raises(MalformedPatch, match="nested deeper"):
        parse_merge_patch({"a": json.loads(b'{"b":' * 100 + b"1" + b"}" * 100)})
