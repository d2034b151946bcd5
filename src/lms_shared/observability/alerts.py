"""Prometheus alerting rules from a small SLO spec per service.

A spec names each service's objectives, and everything else has a
default::

    services:
      - service: courses
        availability: {target: 0.999}            # 99.9% of requests not 5xx
        latency: {target: 0.99, threshold: 0.3}  # 99% within 300 ms

:func:`generate_rules` turns it into one rule group per service:

* recording rules of the error ratio of each SLO over every window
  (``service:lms_slo_errors:ratio_rate5m``...), from
  ``http_server_request_duration_seconds`` (health probes and ``/metrics``
  excluded);
* multi-window, multi-burn-rate alerts (Google SRE workbook, chapter
  "Alerting on SLOs"): page when 2% of a 30-day budget burns within an
  hour (1h and 5m windows at 14.4x) or 5% within six hours (6h/30m at 6x),
  open a ticket at 10% within one or three days (1d/2h at 3x, 3d/6h at
  1x); the short window makes an alert stop soon after the burn does;
* ``DeadLettersGrowing``, ``CircuitBreakerOpen``, ``ConsumerLagHigh``,
  ``ReadinessFailing``, ``ServiceDown`` and ``EventLoopLagHigh``.

Every alert carries ``severity`` and ``service`` labels and a
``runbook_url`` annotation (``runbook_base`` + the alert's slug; the
runbooks are in docs/observability.md). :func:`render_yaml` writes the
Prometheus rule file; ``lms-shared alerts generate`` does both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from prometheus_client.utils import floatToGoString
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lms_shared.errors import ConfigurationError

__all__ = [
    "DEFAULT_WINDOWS",
    "AlertTuning",
    "Availability",
    "BurnWindow",
    "Latency",
    "ServiceAlerts",
    "ServiceSlo",
    "SloSpec",
    "SloSpecError",
    "generate_rules",
    "load_spec",
    "render_yaml",
]

#: a Prometheus duration: units from the largest down, each once (``1h30m``, ``90s``)
_DURATION = (
    r"^0$|^(?:[0-9]+y)?(?:[0-9]+w)?(?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?(?:[0-9]+ms)?$"
)
_UNITS = {"y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def _check_duration(value: str) -> str:
    if not value or not re.fullmatch(_DURATION, value):
        raise ValueError("a Prometheus duration, largest unit first: 30s, 5m, 1h30m, 3d")
    return value


def _seconds(duration: str) -> float:
    """The seconds of a Prometheus duration (``1h30m`` is 5400)."""
    total = 0.0
    for number, unit in re.findall(r"([0-9]+)(ms|[ywdhms])", duration):
        total += int(number) * (0.001 if unit == "ms" else _UNITS[unit])
    return total


def _check_window(value: str) -> str:
    if _seconds(value) <= 0:
        raise ValueError("a range must be longer than 0s")
    return value


Duration = Annotated[str, Field(max_length=32), AfterValidator(_check_duration)]
Window = Annotated[Duration, AfterValidator(_check_window)]
Severity = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
_MATCHER = r'\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*'
_SELECTOR = re.compile(rf"^{_MATCHER}(,{_MATCHER})*$")
_SERVICE = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_RECORD = "service:lms_slo_errors:ratio_rate"
_REQUESTS = "http_server_request_duration_seconds"


def _go_float(value: float) -> str:
    """``value`` as Prometheus writes a bucket bound (``le="0.5"``, ``+Inf``)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


class SloSpecError(ConfigurationError):
    """The SLO spec is malformed; the message says where."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class BurnWindow(_Model):
    """One long/short window pair of the multi-window burn-rate alert.

    Attributes:
        long: the window the budget burns over (``1h``).
        short: the window that confirms it still burns (``5m``, 1/12 of long).
        burn: the burn rate that fires (14.4: a 30-day budget in ~2 days).
        severity: the ``severity`` label (``page`` or ``ticket``).
        for_: how long both stay above before firing (``for``; none by default).
    """

    long: Window
    short: Window
    burn: Annotated[float, Field(gt=0, le=10_000)]
    severity: Severity = "page"
    for_: Duration | None = Field(None, alias="for")

    @model_validator(mode="after")
    def _short_within_long(self) -> BurnWindow:
        if _seconds(self.short) > _seconds(self.long):
            raise ValueError(f"short ({self.short}) must not be longer than long ({self.long})")
        return self


#: Google SRE workbook's recommendation for a 30-day SLO window
DEFAULT_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow(long="1h", short="5m", burn=14.4, severity="page"),
    BurnWindow(long="6h", short="30m", burn=6, severity="page"),
    BurnWindow(long="1d", short="2h", burn=3, severity="ticket"),
    BurnWindow(long="3d", short="6h", burn=1, severity="ticket"),
)


class Availability(_Model):
    """Share of requests that must not fail with a 5xx (``target: 0.999``)."""

    target: Annotated[float, Field(gt=0, lt=1)]


class Latency(_Model):
    """Share of requests that must be served within ``threshold`` seconds.

    The threshold must be a bucket boundary of the service's histogram
    (``LMS_METRICS_LATENCY_THRESHOLD`` adds it).
    """

    target: Annotated[float, Field(gt=0, lt=1)]
    threshold: Annotated[float, Field(gt=0, le=3600)]


class AlertTuning(_Model):
    """Knobs of one of the non-SLO alerts.

    Attributes:
        enabled: generate the alert.
        for_: how long the condition holds before it fires (``for``).
        window: the range it looks back over, where it has one.
        threshold: the figure it compares with, where it has one.
        severity: the ``severity`` label.
    """

    enabled: bool = True
    for_: Duration = Field("5m", alias="for")
    window: Window = "5m"
    threshold: Annotated[float, Field(allow_inf_nan=False)] = 0
    severity: Severity = "ticket"


#: each non-SLO alert's defaults; a spec's knobs are laid over them, knob by knob
_ALERT_DEFAULTS: dict[str, AlertTuning] = {
    "dead_letters": AlertTuning(for_="0s", window="10m", threshold=0),
    "breaker_open": AlertTuning(for_="2m"),
    "consumer_lag": AlertTuning(for_="10m", threshold=1000),
    "readiness": AlertTuning(for_="5m", severity="page"),
    "down": AlertTuning(for_="5m", severity="page"),
    "loop_lag": AlertTuning(for_="10m", window="5m", threshold=0.1),
}


class ServiceAlerts(_Model):
    """The non-SLO alerts of a service, each tunable or off.

    A knob given in the spec replaces only that knob: ``readiness: {for: 1m}``
    keeps the alert's ``page`` severity.
    """

    dead_letters: AlertTuning = _ALERT_DEFAULTS["dead_letters"]
    breaker_open: AlertTuning = _ALERT_DEFAULTS["breaker_open"]
    consumer_lag: AlertTuning = _ALERT_DEFAULTS["consumer_lag"]
    readiness: AlertTuning = _ALERT_DEFAULTS["readiness"]
    down: AlertTuning = _ALERT_DEFAULTS["down"]
    loop_lag: AlertTuning = _ALERT_DEFAULTS["loop_lag"]

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        merged: dict[str, Any] = {}
        for name, knobs in data.items():
            default = _ALERT_DEFAULTS.get(name) if isinstance(name, str) else None
            if default is not None and isinstance(knobs, Mapping):
                given = dict(knobs)
                if "for_" in given and "for" not in given:
                    given["for"] = given.pop("for_")
                merged[name] = {**default.model_dump(by_alias=True), **given}
            else:
                merged[name] = knobs
        return merged


class ServiceSlo(_Model):
    """One service's objectives and alerts.

    Attributes:
        service: the service's name (the ``service`` label of its alerts).
        selector: PromQL label matchers of its series; ``job="<service>"``
            by default (the scrape job's name).
        availability: its availability SLO, if any.
        latency: its latency SLO, if any.
        exclude_routes: ``http_route`` regex left out of the SLOs.
        runbook_base: prefix of the ``runbook_url`` annotations.
        windows: the burn-rate window pairs (the SRE workbook's by default).
        alerts: the other alerts' knobs.
    """

    service: Annotated[str, Field(pattern=_SERVICE)]
    selector: str | None = None
    availability: Availability | None = None
    latency: Latency | None = None
    exclude_routes: Annotated[str, Field(min_length=1, max_length=500)] = "/health/.*|/metrics"
    runbook_base: Annotated[str, Field(max_length=500)] = "https://lms.example.org/runbooks/"
    windows: Annotated[tuple[BurnWindow, ...], Field(min_length=1, max_length=16)] = DEFAULT_WINDOWS
    alerts: ServiceAlerts = ServiceAlerts()

    @field_validator("exclude_routes")
    @classmethod
    def _check_routes(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc})") from None
        return value

    @field_validator("selector")
    @classmethod
    def _check_selector(cls, value: str | None) -> str | None:
        if value is not None and not _SELECTOR.fullmatch(value):
            raise ValueError('label matchers, comma separated: job="courses",env="prod"')
        return value

    @property
    def matchers(self) -> str:
        """The label matchers of the service's series."""
        return self.selector.strip() if self.selector else f'job="{self.service}"'


class SloSpec(_Model):
    """Every service's SLOs (``services:``)."""

    services: Annotated[tuple[ServiceSlo, ...], Field(min_length=1, max_length=500)]


def load_spec(data: object) -> SloSpec:
    """Validate a spec read from JSON or YAML.

    Accepts ``{"services": [...]}``, a list of services, or one service.

    Raises:
        SloSpecError: naming the first wrong fields.
    """
    single = False
    if isinstance(data, list):
        data = {"services": data}
    elif not isinstance(data, Mapping):
        raise SloSpecError(
            "invalid SLO spec: one service (a mapping), services: [...], or a list of services"
        )
    elif "services" not in data:
        data, single = {"services": [data]}, True
    try:
        spec = SloSpec.model_validate(data)
    except ValidationError as exc:
        raise SloSpecError("invalid SLO spec: " + _problems(exc, single=single)) from None
    names = [s.service for s in spec.services]
    if len(set(names)) != len(names):
        raise SloSpecError(f"invalid SLO spec: a service appears twice in {names}")
    return spec


def _problems(exc: ValidationError, *, single: bool) -> str:
    errors = exc.errors(include_url=False)
    locs = [tuple(err["loc"]) for err in errors]
    problems = []
    for err, loc in zip(errors, locs, strict=True):
        # a tuple whose items failed also reports itself too short: the items say it
        if err["type"] == "too_short" and any(
            other[: len(loc)] == loc and other != loc for other in locs
        ):
            continue
        where = loc[2:] if single and loc[:2] == ("services", 0) else loc
        problems.append(f"{'.'.join(str(p) for p in where) or 'spec'}: {err['msg']}")
    return "; ".join(problems[:10])


# -- generation --------------------------------------------------------------


def _promql_string(text: str) -> str:
    """``text`` as a double-quoted PromQL string (a regex's backslashes kept)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: float) -> str:
    return repr(round(value, 12))


def _sli_errors(svc: ServiceSlo, slo: Literal["availability", "latency"], window: str) -> str:
    base = f"{svc.matchers},http_route!~{_promql_string(svc.exclude_routes)}"
    total = f"sum(rate({_REQUESTS}_count{{{base}}}[{window}]))"
    if slo == "availability":
        failed = (
            f'sum(rate({_REQUESTS}_count{{{base},http_response_status_code=~"5.."}}[{window}]))'
        )
        return f"({failed} or vector(0)) / {total}"
    assert svc.latency is not None
    le = _go_float(svc.latency.threshold)
    fast = f'sum(rate({_REQUESTS}_bucket{{{base},le="{le}"}}[{window}]))'
    return f"1 - ({fast} / {total})"


def _runbook(svc: ServiceSlo, slug: str) -> str:
    return f"{svc.runbook_base}{slug}"


def _alert(
    name: str,
    expr: str,
    svc: ServiceSlo,
    *,
    severity: str,
    summary: str,
    description: str,
    slug: str,
    for_: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_ and _seconds(for_) > 0:
        rule["for"] = for_
    rule["labels"] = {"severity": severity, "service": svc.service, **(labels or {})}
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": _runbook(svc, slug),
    }
    return rule


def _slo_rules(svc: ServiceSlo) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    windows = list(dict.fromkeys(w for pair in svc.windows for w in (pair.short, pair.long)))
    slos: list[tuple[Literal["availability", "latency"], float, str]] = []
    if svc.availability is not None:
        slos.append(("availability", svc.availability.target, "requests failing with a 5xx"))
    if svc.latency is not None:
        slow = f"requests slower than {_go_float(svc.latency.threshold)} s"
        slos.append(("latency", svc.latency.target, slow))
    for slo, target, what in slos:
        labels = {"service": svc.service, "slo": slo}
        for window in windows:
            records.append(
                {
                    "record": f"{_RECORD}{window}",
                    "expr": _sli_errors(svc, slo, window),
                    "labels": labels,
                }
            )
        match = f'{{service="{svc.service}",slo="{slo}"}}'
        for pair in svc.windows:
            limit = _number(pair.burn * (1 - target))
            expr = (
                f"{_RECORD}{pair.long}{match} > {limit} and {_RECORD}{pair.short}{match} > {limit}"
            )
            alerts.append(
                _alert(
                    "ErrorBudgetBurn",
                    expr,
                    svc,
                    severity=pair.severity,
                    for_=pair.for_,
                    labels={"slo": slo, "long_window": pair.long, "short_window": pair.short},
                    summary=f"{svc.service}: {slo} error budget burning {pair.burn:g}x too fast",
                    description=(
                        f"{what} are above {pair.burn:g} times the budget of the"
                        f" {target:.6g} {slo} SLO over {pair.long} and {pair.short}"
                        " (now {{ $value | humanizePercentage }})."
                    ),
                    slug="error-budget-burn",
                )
            )
    return records, alerts


def _other_alerts(svc: ServiceSlo) -> list[dict[str, Any]]:
    sel, tune = svc.matchers, svc.alerts
    dest = "messaging_destination_name, messaging_consumer_group_name"
    made: list[dict[str, Any]] = []
    if tune.dead_letters.enabled:
        t = tune.dead_letters
        made.append(
            _alert(
                "DeadLettersGrowing",
                f"sum by ({dest}) (increase(lms_messaging_dead_lettered_messages_total{{{sel}}}"
                f"[{t.window}])) > {_number(t.threshold)}",
                svc,
                severity=t.severity,
                for_=t.for_,
                summary=f"{svc.service}: events are being dead-lettered",
                description=(
                    "{{ $value | humanize }} events of type"
                    " {{ $labels.messaging_destination_name }}"
                    " (group {{ $labels.messaging_consumer_group_name }}) were dead-lettered"
                    f" in the last {t.window}."
                ),
                slug="dead-letters-growing",
            )
        )
    if tune.breaker_open.enabled:
        t = tune.breaker_open
        made.append(
            _alert(
                "CircuitBreakerOpen",
                "max by (breaker) (lms_circuit_breaker_state"
                f'{{{sel},state=~"open|half_open|forced_open"}})'
                " > 0",
                svc,
                severity=t.severity,
                for_=t.for_,
                summary=f"{svc.service}: the circuit breaker of a called service is open",
                description=(
                    f"Calls from {svc.service} to {{{{ $labels.breaker }}}} are refused by its"
                    f" circuit breaker, which has not closed for {t.for_}."
                ),
                slug="circuit-breaker-open",
            )
        )
    if tune.consumer_lag.enabled:
        t = tune.consumer_lag
        made.append(
            _alert(
                "ConsumerLagHigh",
                f"max by ({dest}) (lms_messaging_consumer_lag_messages{{{sel}}})"
                f" > {_number(t.threshold)}",
                svc,
                severity=t.severity,
                for_=t.for_,
                summary=f"{svc.service}: a consumer group is falling behind",
                description=(
                    "{{ $value | humanize }} events of type"
                    " {{ $labels.messaging_destination_name }}"
                    " wait for group {{ $labels.messaging_consumer_group_name }}"
                    f" (more than {_number(t.threshold)} for {t.for_})."
                ),
                slug="consumer-lag-high",
            )
        )
    if tune.readiness.enabled:
        t = tune.readiness
        made.append(
            _alert(
                "ReadinessFailing",
                f"min by (job, instance) (lms_health_ready{{{sel}}}) == 0",
                svc,
                severity=t.severity,
                for_=t.for_,
                summary=f"{svc.service}: an instance is not ready",
                description=(
                    "{{ $labels.instance }} has failed its readiness checks"
                    f" for {t.for_}; GET /health/ready names the failing check."
                ),
                slug="readiness-failing",
            )
        )
    if tune.down.enabled:
        t = tune.down
        made.append(
            _alert(
                "ServiceDown",
                f"up{{{sel}}} == 0",
                svc,
                severity=t.severity,
                for_=t.for_,
                summary=f"{svc.service}: an instance cannot be scraped",
                description=f"Prometheus has not reached {{{{ $labels.instance }}}} for {t.for_}.",
                slug="service-down",
            )
        )
    if tune.loop_lag.enabled:
        t = tune.loop_lag
        made.append(
            _alert(
                "EventLoopLagHigh",
                "histogram_quantile(0.99, sum by (job, instance, le)"
                f" (rate(lms_event_loop_lag_seconds_bucket{{{sel}}}[{t.window}])))"
                f" > {_number(t.threshold)}",
                svc,
                severity=t.severity,
                for_=t.for_,
                summary=f"{svc.service}: the event loop is blocked",
                description=(
                    "The 99th percentile of event-loop lag on {{ $labels.instance }} is"
                    " {{ $value | humanizeDuration }}: something blocks the loop"
                    " (a synchronous call, CPU-heavy work)."
                ),
                slug="event-loop-lag-high",
            )
        )
    return made


def generate_rules(spec: SloSpec) -> dict[str, Any]:
    """The Prometheus rule file of ``spec``: one group per service."""
    groups = []
    for svc in spec.services:
        records, alerts = _slo_rules(svc)
        groups.append(
            {"name": f"lms-{svc.service}", "rules": [*records, *alerts, *_other_alerts(svc)]}
        )
    return {"groups": groups}


# -- YAML --------------------------------------------------------------------


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        # YAML 1.1 readers (PyYAML) take 1e-12 for a string: 1.0e-12 is a float in both
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    text = str(value)
    if '"' in text and text.isprintable():  # PromQL reads best single-quoted
        return "'" + text.replace("'", "''") + "'"
    return _double_quoted(text)


def _double_quoted(text: str) -> str:
    """A YAML double-quoted scalar: printable characters as they are, others escaped.

    Line and paragraph separators, NEL and control characters are escaped
    (YAML would fold or refuse them raw).
    """
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char.isprintable():
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def _lines(value: Mapping[str, Any] | list[Any], indent: int) -> Iterable[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                yield f"{pad}{key}:"
                yield from _lines(item, indent + 2)
            else:
                yield f"{pad}{key}: {_block_empty(item)}"
    else:
        for item in value:
            if isinstance(item, Mapping | list) and item:
                first, *rest = list(_lines(item, indent + 2))
                yield f"{pad}- {first[indent + 2 :]}"
                yield from rest
            else:
                yield f"{pad}- {_block_empty(item)}"


def _block_empty(value: object) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def render_yaml(document: Mapping[str, Any], *, header: str | None = None) -> str:
    """``document`` as YAML (block style, every string double-quoted)."""
    lines = [f"# {line}" for line in (header or "").splitlines()]
    lines.extend(_lines(document, 0))
    return "\n".join(lines) + "\n"
