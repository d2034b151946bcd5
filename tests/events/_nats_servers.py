"""Private nats-server processes on loopback for fault tests (stopped by their pid)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest

from lms_shared.testing import server_missing

NATS_SERVER = "/usr/sbin/nats-server"


def nats_server_binary() -> str:
    """The nats-server binary (skip, or fail under CI, when it is not installed)."""
    found = shutil.which("nats-server") or (NATS_SERVER if Path(NATS_SERVER).exists() else None)
    if found is None:
        server_missing("nats-server is not installed (apt-get install nats-server)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class NatsNode:
    """One nats-server with JetStream, its own store folder and ports."""

    name: str
    port: int
    cluster_port: int
    store: Path
    routes: list[int] = field(default_factory=list)
    cluster_name: str = ""
    process: subprocess.Popen[bytes] | None = None
    log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, binary: str, *, timeout: float = 15.0) -> None:
        args = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        args += ["-n", self.name]
        if self.cluster_name:
            args += ["--cluster_name", self.cluster_name]
            args += ["--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
            args += ["--routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        self.store.mkdir(parents=True, exist_ok=True)
        self.log = (self.store.parent / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self.process.poll() is not None:
                self.kill()
                raise RuntimeError(f"nats-server {self.name} exited: {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.name} did not listen within {timeout} s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the cluster, as a crash."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        log, self.log = self.log, None
        if log is not None:
            log.close()


def start_cluster(root: Path, size: int = 3) -> list[NatsNode]:
    """``size`` nats-servers routed into one JetStream cluster on loopback."""
    binary = nats_server_binary()
    nodes = [NatsNode(f"n{i}", free_port(), free_port(), root / f"n{i}") for i in range(size)]
    for node in nodes:
        node.cluster_name = "lms-test"
        node.routes = [other.cluster_port for other in nodes if other is not node]
    try:
        for node in nodes:
            node.start(binary)
    except BaseException:
        for node in nodes:
            node.kill()
        raise
    return nodes


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NatsNode]]:
    """A three-server JetStream cluster on loopback, killed afterwards."""
    nodes = start_cluster(tmp_path / "cluster")
    try:
        yield nodes
    finally:
        for node in nodes:
            node.kill()
