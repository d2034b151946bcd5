"""W3C Trace Context level 2 and B3, parsed exactly: each bad input of the recommendation."""

from __future__ import annotations

import pytest

from lms_shared.observability._tracecontext import (
    FLAG_RANDOM,
    FLAG_SAMPLED,
    TraceParent,
    format_b3,
    format_tracestate,
    parse_b3,
    parse_traceparent,
    parse_tracestate,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


def test_a_valid_header_is_read_whole() -> None:
    found = parse_traceparent([VALID], ["congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"])
    assert found == TraceParent(
        TRACE, PARENT, FLAG_SAMPLED, (("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7"))
    )
    assert found.sampled
    assert not found.random
    assert found.header() == VALID


@pytest.mark.parametrize(
    "value",
    [
        f"ff-{TRACE}-{PARENT}-01",  # version 255 is invalid
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper-case hex
        f"00-{TRACE}-{PARENT.upper()}-01",
        f"00-{TRACE}-{PARENT}-0A",
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE[:-1]}-{PARENT}-01",  # wrong lengths
        f"00-{TRACE}0-{PARENT}-01",
        f"00-{TRACE}-{PARENT}0-01",
        f"00-{TRACE}-{PARENT}-011",
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00_{TRACE}_{PARENT}_01",
        f"0x-{TRACE}-{PARENT}-01",
        f"01-{TRACE}-{PARENT}-01extra",  # a higher version's extra part starts with "-"
        f"00-{TRACE}-{PARENT}-g1",
        f"00-{TRACE}-{PARENT}",
        "",
        "00-" + "a" * 10_000,
    ],
)
def test_an_invalid_traceparent_restarts_the_trace(value: str) -> None:
    assert parse_traceparent([value], ["congo=t61rcWkgMzE"]) is None


def test_two_traceparent_headers_are_invalid() -> None:
    other = f"00-{'1' * 32}-{PARENT}-01"
    assert parse_traceparent([VALID, other]) is None
    assert parse_traceparent([VALID, VALID]) is None
    assert parse_traceparent([]) is None


def test_a_higher_version_is_read_as_00_where_it_allows() -> None:
    found = parse_traceparent([f"cc-{TRACE}-{PARENT}-01-what-the-future-holds"])
    assert found is not None
    assert (found.trace_id, found.parent_id, found.flags) == (TRACE, PARENT, FLAG_SAMPLED)
    assert found.header() == VALID  # written as the version this vendor knows


def test_flags_keep_sampled_and_random_only() -> None:
    both = parse_traceparent([f"00-{TRACE}-{PARENT}-03"])
    unknown = parse_traceparent([f"00-{TRACE}-{PARENT}-ff"])
    assert both is not None
    assert unknown is not None
    assert both.flags == FLAG_SAMPLED | FLAG_RANDOM
    assert both.random
    assert unknown.flags == FLAG_SAMPLED | FLAG_RANDOM  # reserved bits are not forwarded


def test_a_new_trace_is_random_and_each_child_has_a_new_parent_id() -> None:
    first, second = TraceParent.new(), TraceParent.new(sampled=False)
    assert first.random
    assert first.sampled
    assert not second.sampled
    assert first.trace_id != second.trace_id
    child = first.child()
    assert child.trace_id == first.trace_id
    assert child.parent_id != first.parent_id
    assert child.flags == first.flags


def test_tracestate_joins_repeated_headers_and_allows_empty_members() -> None:
    found = parse_tracestate(["a=1, ,b=2", "\tc@vendor=x y", ""])
    assert found == (("a", "1"), ("b", "2"), ("c@vendor", "x y"))
    assert format_tracestate(found) == "a=1,b=2,c@vendor=x y"


@pytest.mark.parametrize(
    "values",
    [
        ["a=1,a=2"],  # duplicate keys
        ["a=1", "a=3"],
        [",".join(f"k{i}=v" for i in range(33))],  # 33 members
        ["Upper=1"],  # keys are lower case
        ["a=1,b"],  # a member without "="
        ["a=has,comma"],
        ["a=x=y"],  # "=" is not allowed in a value
        ["a=\x7f"],
        ["a=" + "v" * 257],  # values are at most 256 characters
        ["k" * 257 + "=1"],
        ["tenant@" + "s" * 15 + "=1"],  # system ids are at most 14 characters
        ["a=1"] * 2_000,  # oversized in all
    ],
)
def test_an_invalid_tracestate_is_discarded_but_the_trace_kept(values: list[str]) -> None:
    assert parse_tracestate(values) == ()
    kept = parse_traceparent([VALID], values)
    assert kept is not None
    assert kept.trace_id == TRACE
    assert kept.tracestate == ()


def test_thirty_two_members_are_allowed() -> None:
    members = ",".join(f"k{i}=v" for i in range(32))
    assert len(parse_tracestate([members])) == 32


def test_tracestate_is_not_read_when_traceparent_is_invalid() -> None:
    assert parse_traceparent(["garbage"], ["a=1"]) is None


def test_b3_single_and_multi_headers() -> None:
    single = parse_b3({"b3": f"{TRACE}-{PARENT}-1-{'1' * 16}"})
    short = parse_b3({"b3": f"{TRACE[16:]}-{PARENT}-0"})
    multi = parse_b3({"x-b3-traceid": TRACE, "x-b3-spanid": PARENT, "x-b3-sampled": "1"})
    debug = parse_b3({"x-b3-traceid": TRACE, "x-b3-spanid": PARENT, "x-b3-flags": "1"})
    assert single == TraceParent(TRACE, PARENT, FLAG_SAMPLED)
    assert short == TraceParent("0" * 16 + TRACE[16:], PARENT, 0)
    assert multi == TraceParent(TRACE, PARENT, FLAG_SAMPLED)
    assert debug is not None
    assert debug.sampled
    assert format_b3(single) == f"{TRACE}-{PARENT}-1"


@pytest.mark.parametrize(
    "headers",
    [
        {"b3": "1"},  # a sampling decision alone
        {"b3": f"{TRACE}-{PARENT}-x"},
        {"b3": f"{'0' * 32}-{PARENT}-1"},
        {"b3": f"{TRACE}-{'0' * 16}"},
        {"b3": f"{TRACE}-{PARENT}-1-{PARENT}-more"},
        {"b3": "a" * 1_000},
        {"x-b3-traceid": TRACE},
        {"x-b3-traceid": TRACE.upper(), "x-b3-spanid": PARENT},
        {"x-b3-traceid": TRACE, "x-b3-spanid": PARENT, "x-b3-sampled": "maybe"},
    ],
)
def test_bad_b3_is_ignored(headers: dict[str, str]) -> None:
    assert parse_b3(headers) is None
