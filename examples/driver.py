"""How the demo's scenario talks to the services, and what a step is.

A :class:`Driver` sends requests and checks the answers: a wrong status or
the wrong problem raises :class:`StepFailed`. A :class:`Step` is a titled
function of the driver returning a one-line summary; :func:`run_step` times
it and turns any failure into a :class:`StepResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx
from rich.console import RenderableType
from rich.json import JSON
from rich.panel import Panel

__all__ = ["PROBLEM_TYPE", "Driver", "Step", "StepFailed", "StepResult", "run_step"]

PROBLEM_TYPE = "application/problem+json"


class StepFailed(Exception):
    """A service answered something the scenario did not expect."""


@dataclass
class Driver:
    """Calls the services over HTTP and checks what they answer.

    Attributes:
        client: a synchronous httpx client.
        urls: base URL per service name.
        details: renderables the current step wants shown under its line.
        credentials: per actor (``admin``, a user id, ...), the headers that
            authenticate its requests (``Authorization: Bearer ...``);
            requests name their actor with ``as_``.
    """

    client: httpx.Client
    urls: Mapping[str, str]
    details: list[RenderableType] = field(default_factory=list)
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    last_response: httpx.Response | None = None

    def login(self, actor: str, token: str) -> None:
        """Send ``actor``'s requests with the bearer ``token`` from now on."""
        self.credentials[actor] = {"authorization": f"Bearer {token}"}

    def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        expect: int,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        as_: str | None = None,
    ) -> httpx.Response:
        """Send a request to a service and check its status.

        Args:
            headers: more request headers.
            as_: the actor whose credentials the request carries (none if ``None``).

        Raises:
            StepFailed: the status is not ``expect``.
        """
        url = path if path.startswith("http") else self.urls[service] + path
        sent = {**(self.credentials[as_] if as_ is not None else {}), **(headers or {})}
        response = self.client.request(method, url, json=json, params=params, headers=sent)
        self.last_response = response
        if response.status_code != expect:
            raise StepFailed(
                f"{method} {path} on {service} answered {response.status_code}, "
                f"expected {expect}: {response.text[:300]}"
            )
        return response

    def json(self, method: str, service: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """:meth:`call`, returning the JSON object of the response."""
        body = self.call(method, service, path, **kwargs).json()
        if not isinstance(body, dict):
            raise StepFailed(f"{method} {path} on {service} answered a non-object: {body!r:.200}")
        return body

    def problem(
        self,
        method: str,
        service: str,
        path: str,
        *,
        status: int,
        code: str,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        as_: str | None = None,
        show: bool = False,
    ) -> dict[str, Any]:
        """Send a request that must be refused with the problem ``code``.

        Args:
            show: add the full problem to :attr:`details`.

        Raises:
            StepFailed: the answer is not that problem.
        """
        response = self.call(
            method,
            service,
            path,
            expect=status,
            json=json,
            params=params,
            headers=headers,
            as_=as_,
        )
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith(PROBLEM_TYPE):
            raise StepFailed(f"{method} {path} answered {content_type!r}, not {PROBLEM_TYPE}")
        problem = response.json()
        if not isinstance(problem, dict):
            raise StepFailed(f"{method} {path} answered a problem that is not an object")
        if problem.get("code") != code or problem.get("status") != status:
            raise StepFailed(f"expected the problem {code!r}, got {problem!r:.300}")
        if show:
            document = JSON.from_data(problem)
            document.text.no_wrap = False
            document.text.overflow = "fold"
            self.details.append(
                Panel(
                    document,
                    title=f"{status} {PROBLEM_TYPE}",
                    subtitle=f"{method} {service}{response.request.url.path}",
                    expand=False,
                )
            )
        return problem


D = TypeVar("D", bound=Driver)


@dataclass(frozen=True)
class Step(Generic[D]):
    """A named step: a function of the driver that returns a one-line summary."""

    title: str
    run: Callable[[D], str]


@dataclass(frozen=True)
class StepResult:
    """How a step went.

    Attributes:
        title: the step's title.
        result: ``OK``, ``FAILED`` or ``SKIPPED``.
        summary: what happened, or why it failed.
        seconds: how long it took.
    """

    title: str
    result: Literal["OK", "FAILED", "SKIPPED"]
    summary: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the step worked."""
        return self.result == "OK"


def run_step(step: Step[D], driver: D) -> StepResult:
    """Run one step, timing it and turning any failure into a result."""
    started = time.perf_counter()
    try:
        summary = step.run(driver)
    except Exception as exc:  # a demo step reports every failure, whatever it is
        reason = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
        return StepResult(step.title, "FAILED", reason, time.perf_counter() - started)
    return StepResult(step.title, "OK", summary, time.perf_counter() - started)
