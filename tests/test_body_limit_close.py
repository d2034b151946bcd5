"""A refused oversized body still reaches the client as a 413 (issue 10, item 10).

A client that writes its whole request before reading (urllib, many SDKs)
got a connection reset: the server answered 413 at once and closed with
megabytes unread, and the kernel turns a close with unread data into an
RST that discards the answer. The body limit now answers, drains a bounded
remainder, and only then lets the server close (``Connection: close``).

Against real uvicorn servers (both HTTP parsers) on free loopback ports,
with raw sockets so nothing in a client library hides the reset.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from lms_shared import Service, create_service, load_settings
from lms_shared.http import BodyLimitMiddleware, ProblemRenderer

LIMIT = 64 * 1024
BIG = 10 * 1024 * 1024  # the 10 MB
CHUNK = 64 * 1024


def build(**overrides: Any) -> Service:
    settings = load_settings(max_body_bytes=LIMIT, log_level="error", **overrides)
    service = create_service("courses", "1.0.0", settings=settings)

    @service.router.post("/v1/uploads")
    async def upload(body: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(body)}

    return service


class Server:
    """``app`` served by uvicorn in a thread on a free 127.0.0.1 port."""

    def __init__(self, app: Any, http: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, http=http, log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(params=["httptools", "h11"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(build().app, request.param) as running:
        yield running


def bare(drain_seconds: float) -> FastAPI:
    """A bare app behind the body limit, with a chosen drain bound."""
    app = FastAPI()
    renderer = ProblemRenderer("https://lms.example.org/problems/")
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=LIMIT, renderer=renderer, drain_seconds=drain_seconds
    )
    return app


def read_to_end(sock: socket.socket) -> bytes:
    answer = b""
    while data := sock.recv(65536):
        answer += data
    return answer


def send_forever(sock: socket.socket) -> None:
    block = b"x" * CHUNK
    for _ in range(1 << 24):
        sock.sendall(block)


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    # a small receive buffer, as on a real network: the server cannot hide unread data
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    return sock


def send_all_then_read(sock: socket.socket, head: bytes, body_size: int, chunked: bool) -> bytes:
    """Write the whole request first, like urllib, then read the answer to the end."""
    sock.sendall(head)
    block = b"x" * CHUNK
    sent = 0
    while sent < body_size:
        piece = block[: body_size - sent]
        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        sent += len(piece)
    if chunked:
        sock.sendall(b"0\r\n\r\n")
    answer = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return answer
        answer += data


def parse(answer: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body[: int(headers["content-length"])])


def test_a_declared_10_mb_body_gets_the_413_not_a_reset(server: Server) -> None:
    head = (
        b"POST /v1/uploads HTTP/1.1\r\nHost: courses.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % BIG
    )
    with connect(server) as sock:
        answer = send_all_then_read(sock, head, BIG, chunked=False)
    status, headers, problem = parse(answer)
    assert status == 413
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/problem+json"
    assert problem["code"] == "payload-too-large"
    assert str(BIG) in problem["detail"]


def test_a_chunked_10_mb_body_gets_the_413_not_a_reset(server: Server) -> None:
    head = (
        b"POST /v1/uploads HTTP/1.1\r\nHost: courses.test\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with connect(server) as sock:
        answer = send_all_then_read(sock, head, BIG, chunked=True)
    status, headers, problem = parse(answer)
    assert status == 413
    assert headers["connection"] == "close"
    assert problem["code"] == "payload-too-large"


def test_a_body_larger_than_the_drain_bound_is_cut_off(server: Server) -> None:
    """The drain is bounded: past it the server closes instead of reading forever."""
    head = (
        b"POST /v1/uploads HTTP/1.1\r\nHost: courses.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (1 << 40)
    )
    with connect(server) as sock:
        sock.sendall(head)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):  # long before a terabyte
            send_forever(sock)


def test_a_client_that_reads_while_sending_sees_the_413_at_once(server: Server) -> None:
    head = (
        b"POST /v1/uploads HTTP/1.1\r\nHost: courses.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % BIG
    )
    with connect(server) as sock:
        sock.sendall(head)
        sock.settimeout(10)
        first = sock.recv(65536)  # answered before a byte of the body was sent
    assert first.startswith(b"HTTP/1.1 413 ")


def test_a_small_body_on_the_same_server_still_works(server: Server) -> None:
    body = b'{"a": 1}'
    head = (
        b"POST /v1/uploads HTTP/1.1\r\nHost: courses.test\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with connect(server) as sock:
        sock.sendall(head + body)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    status, _, document = parse(answer)
    assert (status, document) == (200, {"keys": 1})


def test_a_client_that_stops_sending_is_cut_off_after_the_drain_time() -> None:
    """Slowloris on the drain: the bound in seconds ends it, the 413 was sent first."""
    head = b"POST /v1/uploads HTTP/1.1\r\nHost: courses.test\r\nContent-Length: %d\r\n\r\n" % (
        1 << 20
    )
    with Server(bare(drain_seconds=0.5), "httptools") as server, connect(server) as sock:
        sock.sendall(head + b"x" * CHUNK)  # then nothing more
        answer = read_to_end(sock)  # the socket's 20 s timeout fails the test if never closed
    assert answer.startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_client_waiting_for_100_continue_is_answered_and_closed(http: str) -> None:
    """Nothing is drained from a client that sends no body until told to."""
    head = (
        b"POST /v1/uploads HTTP/1.1\r\nHost: courses.test\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % BIG
    )
    # a drain that would outlast the socket's timeout: only not draining passes
    with Server(bare(drain_seconds=60), http) as server, connect(server) as sock:
        sock.sendall(head)
        answer = read_to_end(sock)
    status, headers, _ = parse(answer)
    assert (status, headers["connection"]) == (413, "close")
    assert b"100 Continue" not in answer


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_every_answer_given_before_the_body_is_read_arrives(http: str) -> None:
    """The same class: a 200, a 429 or a 404 that never read the body, to a client still
    sending it, with ``Connection: close`` as urllib sends."""
    size = 3 * 1024 * 1024  # within the limit, far beyond the socket buffers
    settings = load_settings(
        max_body_bytes=4 << 20, log_level="error", ratelimit_default="2/minute"
    )
    service = create_service("courses", "1.0.0", settings=settings)

    @service.router.post("/v1/uploads")
    async def upload() -> dict[str, bool]:  # never reads the body
        return {"ok": True}

    answers = {}
    with Server(service.app, http) as server:
        for name, path in (
            ("missing", "/v1/nothing"),
            ("first", "/v1/uploads"),
            ("limited", "/v1/uploads"),
        ):
            head = (
                b"POST %s HTTP/1.1\r\nHost: courses.test\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (path.encode(), size)
            )
            with connect(server) as sock:
                answers[name] = parse(send_all_then_read(sock, head, size, chunked=False))
    assert answers["first"][0] == 200
    assert answers["limited"][0] == 429
    assert answers["limited"][2]["violated-policies"] == ["default"]
    assert answers["missing"][0] == 404
    assert {answers[n][1]["connection"] for n in answers} == {"close"}
