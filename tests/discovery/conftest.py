"""Private registry servers for the discovery tests: etcd (one member, three) and dnsmasq.

Each server runs from its Debian binary (``etcd-server``, ``dnsmasq``) on
free loopback ports with a temporary data folder, is waited for under a
deadline, and is stopped by its process id in a ``finally``. A missing
binary skips the tests on a laptop and fails them under ``CI=true``. The
fixtures never rely on a server started by ``.ci/run``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from lms_shared.testing import server_missing

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
DOMAIN = "cluster.local"
NAMESPACE = "lms"

T = TypeVar("T")


def free_port() -> int:
    """A TCP (and, in practice, UDP) port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    """Stop one process we started, by its pid, waiting at most 10 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``check`` (synchronously) until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} within {timeout:g}s")


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout: float, what: str) -> T:
    """Await ``check`` until it returns something other than ``None`` (bounded poll)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g}s")
        await asyncio.sleep(0.05)


# -- etcd --------------------------------------------------------------------


@dataclass
class EtcdMember:
    """One etcd process."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    """Private etcd members on loopback."""

    members: list[EtcdMember] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def url(self, prefix: str) -> str:
        hosts = ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)
        return f"etcd://{hosts}?prefix={prefix}"

    def kill(self, member: EtcdMember) -> None:
        """SIGKILL one member (by pid)."""
        if member.process is not None:
            stop_process(member.process, kill=True)


def _etcd_healthy(member: EtcdMember) -> bool:
    try:
        answer = httpx.get(member.client_url + "/health", timeout=0.5)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and '"true"' in answer.text


def start_etcd(root: Path, size: int) -> EtcdCluster:
    """Start ``size`` etcd members forming one cluster; wait until each is healthy."""
    if not os.access(ETCD, os.X_OK):
        server_missing(f"etcd is not installed at {ETCD} (apt-get install etcd-server)")
    cluster = EtcdCluster()
    for index in range(size):
        name = f"m{index}"
        cluster.members.append(EtcdMember(name, free_port(), free_port(), root / name))
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
    token = f"lms-test-{os.getpid()}-{cluster.members[0].client_port}"  # one per cluster
    for member in cluster.members:
        log = (root / f"{member.name}.log").open("wb")
        member.process = subprocess.Popen(
            [
                ETCD,
                "--name",
                member.name,
                "--data-dir",
                str(member.data_dir),
                "--listen-client-urls",
                member.client_url,
                "--advertise-client-urls",
                member.client_url,
                "--listen-peer-urls",
                member.peer_url,
                "--initial-advertise-peer-urls",
                member.peer_url,
                "--initial-cluster",
                initial,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                token,
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
    try:
        for member in cluster.members:
            wait_until(
                lambda m=member: _etcd_healthy(m), timeout=20, what=f"etcd {member.name} healthy"
            )
    except BaseException:
        stop_etcd(cluster)
        raise
    return cluster


def stop_etcd(cluster: EtcdCluster) -> None:
    """Stop every member by its pid."""
    for member in cluster.members:
        if member.process is not None:
            stop_process(member.process)


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdCluster]:
    """One private etcd member for the whole session (tests use their own prefix)."""
    root = Path(tempfile.mkdtemp(prefix="lms-etcd-"))
    cluster = start_etcd(root, 1)
    try:
        yield cluster
    finally:
        stop_etcd(cluster)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A three-member etcd cluster of this test alone."""
    root = tmp_path_factory.mktemp("etcd-cluster")
    cluster = start_etcd(root, 3)
    try:
        yield cluster
    finally:
        stop_etcd(cluster)


# -- dnsmasq -----------------------------------------------------------------


@dataclass
class DnsServer:
    """A dnsmasq answering for ``cluster.local`` on a loopback port."""

    port: int
    process: subprocess.Popen[bytes]
    log: Any

    def url(self, namespace: str = NAMESPACE, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"dns://127.0.0.1:{self.port}/{namespace}" + (f"?{query}" if query else "")

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


def _dns_answers(port: int) -> bool:
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = 0.5
    try:
        resolver.resolve(f"ready.{DOMAIN}", "A", search=False)
    except dns.exception.DNSException:
        return False
    return True


def start_dnsmasq(
    *,
    hosts: list[tuple[str, str]],
    srv: list[tuple[str, str, int]],
    ttl: int = 5,
    port: int | None = None,
) -> DnsServer:
    """Start dnsmasq serving ``hosts`` (name, address) and ``srv`` (name, target, port).

    Names are relative to ``cluster.local``; unknown names in it answer
    NXDOMAIN, as the cluster DNS does.
    """
    if not os.access(DNSMASQ, os.X_OK):
        server_missing(f"dnsmasq is not installed at {DNSMASQ} (apt-get install dnsmasq)")
    port = port or free_port()
    args = [
        DNSMASQ,
        "--no-daemon",
        "--keep-in-foreground",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--conf-file=/dev/null",
        "--pid-file=",
        f"--local=/{DOMAIN}/",
        f"--local-ttl={ttl}",
        f"--host-record=ready.{DOMAIN},127.0.0.1,{ttl}",
    ]
    if os.geteuid() == 0:
        args.append("--user=root")
    args += [f"--host-record={name}.{DOMAIN},{address},{ttl}" for name, address in hosts]
    args += [f"--srv-host={name}.{DOMAIN},{target}.{DOMAIN},{p},0,50" for name, target, p in srv]
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by DnsServer.stop)
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
    server = DnsServer(port, process, log)
    try:
        wait_until(
            lambda: process.poll() is not None or _dns_answers(port),
            timeout=10,
            what="dnsmasq answering",
        )
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"dnsmasq exited: {log.read().decode(errors='replace')[-2000:]}")
    except BaseException:
        server.stop()
        raise
    return server


COURSES_HOSTS = [
    (f"pod-a.courses.{NAMESPACE}.svc", "127.0.0.21"),
    (f"pod-b.courses.{NAMESPACE}.svc", "127.0.0.22"),
    (f"identity.{NAMESPACE}.svc", "127.0.0.31"),
    (f"identity.{NAMESPACE}.svc", "127.0.0.32"),
]
COURSES_SRV = [
    (f"_http._tcp.courses.{NAMESPACE}.svc", f"pod-a.courses.{NAMESPACE}.svc", 8001),
    (f"_http._tcp.courses.{NAMESPACE}.svc", f"pod-b.courses.{NAMESPACE}.svc", 8002),
]


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    """dnsmasq with ``courses`` (SRV, two pods) and ``identity`` (A records only)."""
    server = start_dnsmasq(hosts=COURSES_HOSTS, srv=COURSES_SRV)
    try:
        yield server
    finally:
        server.stop()


def python_process(script: str, *args: str) -> subprocess.Popen[bytes]:
    """Run ``script`` in a fresh interpreter (an instance process we may kill)."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(Path(__file__).resolve().parents[2]),
    )


def read_line(process: subprocess.Popen[bytes], *, timeout: float = 20) -> str:
    """The first line ``process`` prints (failing with its stderr if it dies)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    os.set_blocking(process.stdout.fileno(), False)
    buffer = b""
    while time.monotonic() < deadline:
        chunk = process.stdout.read()
        if chunk:
            buffer += chunk
            if b"\n" in buffer:
                return buffer.split(b"\n", 1)[0].decode()
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"instance process exited: {error[-2000:]}")
        time.sleep(0.05)
    pytest.fail(f"instance process said nothing within {timeout}s")


REGISTER_AND_WAIT = """
import asyncio, sys
from pathlib import Path
from lms_shared.clock import SystemClock
from lms_shared.discovery import Instance, registry_from_url

async def main(url, service, instance_id, port, ttl):
    registry = registry_from_url(url, clock=SystemClock(), state_dir=Path("."))
    await registry.start()
    await registry.register(
        Instance(service, instance_id, "127.0.0.1", int(port)), ttl=float(ttl)
    )
    print("registered", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture
def killable_instance() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start instance processes that register and keep alive until killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(url: str, service: str, instance_id: str, port: int, ttl: float) -> Any:
        process = python_process(REGISTER_AND_WAIT, url, service, instance_id, str(port), str(ttl))
        started.append(process)
        assert read_line(process) == "registered"
        return process

    try:
        yield start
    finally:
        for process in started:
            stop_process(process, kill=True)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
