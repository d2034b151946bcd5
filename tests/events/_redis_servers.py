"""A private, persistent redis-server on loopback for fault tests (stopped by its pid)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from lms_shared.testing import server_missing

from ._nats_servers import free_port

__all__ = ["BINARY", "PrivateRedis", "redis_binary"]

BINARY = "/usr/bin/redis-server"


class PrivateRedis:
    """A persistent redis-server on a free loopback port, its files in ``folder``."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start it (same port, same folder each time) and wait until it accepts connections."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise AssertionError(f"the private redis-server did not start within {timeout} s")

    def kill(self) -> None:
        """SIGKILL it (no shutdown, no last save) and reap it; nothing if it is not running."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)


def redis_binary() -> str:
    binary = BINARY if Path(BINARY).is_file() else shutil.which("redis-server")
    if binary is None:
        server_missing("redis-server is not installed (apt-get install redis-server)")
    return binary
