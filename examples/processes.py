"""Run the example services as child processes, and stop them for sure.

Each service is ``lms-shared serve examples.<name>.app:service`` in its own
process group (so a Ctrl-C in the terminal reaches the runner only, and
stopping a service stops everything it started), with its output in a log
file under the state folder. :meth:`Platform.stop` terminates, waits and
kills; on Linux the children also get SIGTERM if the runner dies without
running its clean-up (``PR_SET_DEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NoReturn

import httpx

from examples.topology import HOST, url_variable

__all__ = ["Platform", "PlatformError", "ServiceProcess"]

_PR_SET_DEATHSIG = 1


class PlatformError(Exception):
    """A service could not start, or stopped unexpectedly; the message says which."""


@dataclass
class ServiceProcess:
    """One service and, once started, its process.

    Attributes:
        name: the service's name (``courses``).
        port: the port it listens on.
        log_path: where its standard output and error go.
    """

    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The service's base URL."""
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 8) -> str:
        """The last lines of the service's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def port_in_use(port: int, host: str = HOST) -> bool:
    """Whether something listens on ``port`` (as uvicorn would bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the runner dies."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def hook() -> None:
        prctl(_PR_SET_DEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the runner died before the hook ran
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


class Platform:
    """The example services as child processes.

    Args:
        services: the services, each with its port.
        root: the folder that holds the ``examples`` package (the cwd of children).
        log_dir: where each service's log file goes.
        environ: the children's environment; ``PYTHONUNBUFFERED`` and every
            service's ``LMS_DEMO_<NAME>_URL`` are added to it.
        service_environ: per service name, more variables for that service
            only (its own ``LMS_AUTH_*`` settings and secrets).
    """

    def __init__(
        self,
        services: Mapping[str, int],
        *,
        root: Path,
        log_dir: Path,
        environ: Mapping[str, str],
        service_environ: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.root = root
        self.log_dir = log_dir
        self.services = [
            ServiceProcess(name, port, log_dir / f"{name}.log") for name, port in services.items()
        ]
        self.environ = {
            **environ,
            "PYTHONUNBUFFERED": "1",
            **{url_variable(s.name): s.url for s in self.services},
        }
        self.service_environ = dict(service_environ or {})

    def start(self) -> None:
        """Start every service (without waiting for it to be ready).

        Raises:
            PlatformError: a port is already in use (nothing is started then).
        """
        for svc in self.services:
            if port_in_use(svc.port):
                raise PlatformError(
                    f"port {svc.port} for the {svc.name} service is already in use "
                    "(is another demo running?); stop it, or set LMS_DEMO_PORT_BASE "
                    "to move the services to other ports"
                )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for svc in self.services:
            self._spawn(svc)

    def service(self, name: str) -> ServiceProcess:
        """The service called ``name``.

        Raises:
            KeyError: there is no such service.
        """
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    def stop_service(self, name: str, timeout: float = 15.0) -> int | None:
        """Stop one service: SIGTERM its group, wait up to ``timeout`` s, then SIGKILL.

        Returns:
            Its exit code (``None``: it was not running).
        """
        svc = self.service(name)
        process = svc.process
        if process is None:
            return None
        _signal_group(process, signal.SIGTERM)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            code = process.wait()
        svc.process = None
        if svc.log_file is not None:
            svc.log_file.close()
            svc.log_file = None
        return code

    def start_service(
        self, name: str, timeout: float = 60.0, environ: Mapping[str, str] | None = None
    ) -> None:
        """Start a stopped service again on its port and wait until it is ready.

        Its log file is appended to, and its environment is the one it first
        started with, plus ``environ``.

        Raises:
            PlatformError: it is running, its port is taken, it exited, or it
                was not ready within ``timeout`` s.
        """
        svc = self.service(name)
        if svc.process is not None and svc.process.poll() is None:
            raise PlatformError(f"the {name} service is already running")
        deadline = time.monotonic() + timeout
        while port_in_use(svc.port):  # the old process's socket may linger an instant
            if time.monotonic() > deadline:
                raise PlatformError(f"port {svc.port} for the {name} service is still in use")
            time.sleep(0.1)
        self._spawn(svc, append=True, environ=environ)
        with httpx.Client(timeout=2.0) as client:
            while True:
                self._check_running(svc, "while starting again")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{svc.url}/health/ready").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise PlatformError(
                        f"the {name} service was not ready again within {timeout:g}s; "
                        f"see {svc.log_path}\n{svc.log_tail()}"
                    )
                time.sleep(0.1)

    def _spawn(
        self, svc: ServiceProcess, *, append: bool = False, environ: Mapping[str, str] | None = None
    ) -> None:
        command = [
            sys.executable,
            "-m",
            "lms_shared.cli",
            "serve",
            f"examples.{svc.name}.app:service",
            "--host",
            HOST,
            "--port",
            str(svc.port),
        ]
        svc.log_file = svc.log_path.open("ab" if append else "wb")
        svc.process = subprocess.Popen(
            command,
            cwd=self.root,
            env={**self.environ, **self.service_environ.get(svc.name, {}), **(environ or {})},
            stdin=subprocess.DEVNULL,
            stdout=svc.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # no threads at the first start; a restart forks from the scenario's thread,
            # whose hook only calls prctl and getppid
            preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509
        )

    def wait_ready(
        self, timeout: float, on_ready: Callable[[ServiceProcess], None] | None = None
    ) -> None:
        """Wait until every service answers ``/health/ready`` with 200.

        Args:
            timeout: seconds to wait in all.
            on_ready: called once per service when it becomes ready.

        Raises:
            PlatformError: a service exited, or was not ready in time; the
                message names it, its log file and the log's last lines.
        """
        pending = list(self.services)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for svc in list(pending):
                    self._check_running(svc, "while starting")
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{svc.url}/health/ready").status_code == 200:
                            pending.remove(svc)
                            if on_ready is not None:
                                on_ready(svc)
                if pending and time.monotonic() > deadline:
                    svc = pending[0]
                    raise PlatformError(
                        f"the {svc.name} service was not ready within {timeout:g}s; "
                        f"see {svc.log_path}\n{svc.log_tail()}"
                    )
                if pending:
                    time.sleep(0.1)

    def watch(self, interval: float = 0.5) -> NoReturn:
        """Block while every service runs.

        Raises:
            PlatformError: a service stopped on its own.
        """
        while True:
            for svc in self.services:
                self._check_running(svc, "unexpectedly")
            time.sleep(interval)

    def _check_running(self, svc: ServiceProcess, when: str) -> None:
        if svc.process is None:
            raise PlatformError(f"the {svc.name} service was never started")
        code = svc.process.poll()
        if code is None:
            return
        tail = svc.log_tail()
        reason = f"exited with code {code}"
        if "address already in use" in tail.lower():
            reason = f"could not listen on port {svc.port}: it is already in use"
        raise PlatformError(
            f"the {svc.name} service {reason} {when}; see {svc.log_path}\n{tail}".rstrip()
        )

    def stop(self, timeout: float = 15.0) -> dict[str, int]:
        """Stop every service: SIGTERM its group, wait, then SIGKILL. Idempotent.

        Returns:
            The exit code of each service that was still tracked.
        """
        running = [(s, s.process) for s in self.services if s.process is not None]
        for _, process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int] = {}
        for svc, process in running:
            try:
                codes[svc.name] = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                codes[svc.name] = process.wait()
            svc.process = None
            if svc.log_file is not None:
                svc.log_file.close()
                svc.log_file = None
        return codes


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
