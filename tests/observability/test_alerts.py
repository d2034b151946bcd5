"""Alerting rules from SLO specs: the spec, the rules, the CLI, real Prometheus.

The rules are checked by ``promtool`` and, end to end, by a private
Prometheus scraping a real service and a private Alertmanager notifying a
webhook in this process (tests/observability/_prometheus.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]
from fastapi.responses import JSONResponse
from tests.observability import _prometheus as prom
from typer.testing import CliRunner

from lms_shared import create_service, load_settings
from lms_shared.cli import _alerts, app
from lms_shared.errors import ConfigurationError
from lms_shared.observability.alerts import (
    DEFAULT_WINDOWS,
    ServiceAlerts,
    SloSpec,
    SloSpecError,
    generate_rules,
    load_spec,
    render_yaml,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "prometheus"
DOCS = ROOT / "docs" / "observability.md"
runner = CliRunner()

PLATFORM = {
    "services": [
        {
            "service": "courses",
            "availability": {"target": 0.999},
            "latency": {"target": 0.99, "threshold": 0.3},
        },
        {
            "service": "grading",
            "selector": 'job="grading", env=~"prod|staging"',
            "availability": {"target": 0.995},
            "exclude_routes": r"/health/.*|/metrics|/v1/internal/\d+",
            "runbook_base": "https://wiki.example.org/ops/observability#",
            "alerts": {"consumer_lag": {"threshold": 5000, "for": "15m"}},
        },
        {"service": "identity", "alerts": {"loop_lag": {"enabled": False}}},
    ]
}
OTHER_ALERTS = {
    "DeadLettersGrowing",
    "CircuitBreakerOpen",
    "ConsumerLagHigh",
    "ReadinessFailing",
    "ServiceDown",
    "EventLoopLagHigh",
}


def rules_of(spec: dict[str, Any] | list[Any]) -> list[dict[str, Any]]:
    """Every rule of every group generated from ``spec``."""
    return [rule for g in generate_rules(load_spec(spec))["groups"] for rule in g["rules"]]


def spec_error(spec: object) -> str:
    with pytest.raises(SloSpecError) as caught:
        load_spec(spec)
    return str(caught.value)


# -- load_spec --------------------------------------------------------------------


def test_a_spec_is_services_a_list_of_them_or_one() -> None:
    one = {"service": "courses", "availability": {"target": 0.999}}
    assert load_spec({"services": [one]}) == load_spec([one]) == load_spec(one)
    spec = load_spec(PLATFORM)
    assert isinstance(spec, SloSpec)
    assert [s.service for s in spec.services] == ["courses", "grading", "identity"]
    courses, grading, _ = spec.services
    assert courses.windows == DEFAULT_WINDOWS
    assert courses.matchers == 'job="courses"'
    assert grading.matchers == 'job="grading", env=~"prod|staging"'
    assert grading.alerts.consumer_lag.for_ == "15m"
    assert grading.alerts.consumer_lag.threshold == 5000
    assert grading.alerts.down.for_ == "5m"  # the defaults stay


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        ({"service": "Courses"}, "service", "pattern"),
        ({"service": "courses", "availability": {"target": 1.5}}, "availability.target", "1"),
        ({"service": "courses", "availability": {}}, "availability.target", "required"),
        (
            {"service": "courses", "latency": {"target": 0.99}},
            "latency.threshold",
            "required",
        ),
        ({"service": "courses", "colour": "blue"}, "colour", "not permitted"),
        ({"service": "courses", "selector": "job=courses"}, "selector", "label matchers"),
        ({"service": "courses", "exclude_routes": "(("}, "exclude_routes", "regular expr"),
        (
            {"service": "courses", "windows": [{"long": "5m1h", "short": "5m", "burn": 2}]},
            "windows.0.long",
            "largest unit first",
        ),
        (
            {"service": "courses", "windows": [{"long": "1h", "short": "2h", "burn": 2}]},
            "windows.0",
            "short (2h) must not be longer than long (1h)",
        ),
        (
            {"service": "courses", "windows": [{"long": "1h", "short": "0s", "burn": 2}]},
            "windows.0.short",
            "longer than 0s",
        ),
        (
            {"service": "courses", "windows": [{"long": "1h", "short": "5m", "burn": 0}]},
            "windows.0.burn",
            "greater than 0",
        ),
        ({"service": "courses", "windows": []}, "windows", "at least 1"),
        (
            {"service": "courses", "alerts": {"down": {"for": "soon"}}},
            "alerts.down.for",
            "Prometheus duration",
        ),
        (
            {"service": "courses", "alerts": {"consumer_lag": {"threshold": float("inf")}}},
            "alerts.consumer_lag.threshold",
            "finite",
        ),
        (
            {"service": "courses", "alerts": {"readiness": {"severity": "PAGE!"}}},
            "alerts.readiness.severity",
            "pattern",
        ),
        ({"services": [{"service": "a"}, {"bogus": 1}]}, "services.1.service", "required"),
        ({"services": []}, "services", "at least 1"),
    ],
)
def test_a_bad_spec_names_the_field(spec: object, field: str, says: str) -> None:
    message = spec_error(spec)
    assert message.startswith("invalid SLO spec: ")
    assert f"{field}: " in message
    assert says in message
    # an item that failed does not also make its tuple "too short"
    if field != "windows" and field != "services":
        assert "at least 1 item" not in message


def test_a_spec_that_is_not_a_mapping_or_list_is_refused() -> None:
    assert "one service (a mapping)" in spec_error("courses")
    assert "one service (a mapping)" in spec_error(None)


def test_a_service_twice_is_refused() -> None:
    assert "appears twice" in spec_error([{"service": "a"}, {"service": "a"}])


def test_the_spec_is_bounded() -> None:
    assert load_spec([{"service": f"s{n}"} for n in range(500)])
    message = spec_error([{"service": f"s{n}"} for n in range(501)])
    assert "services: " in message
    assert "at most 500" in message
    many = [{"long": f"{n + 1}h", "short": "5m", "burn": 1} for n in range(17)]
    assert "windows: " in spec_error({"service": "a", "windows": many})
    assert "exclude_routes: " in spec_error({"service": "a", "exclude_routes": "x" * 501})
    # at most ten problems are listed
    message = spec_error([{"service": "A"} for _ in range(30)])
    assert message.count("services.") == 10


def test_a_knob_replaces_only_itself() -> None:
    alerts = (
        load_spec(
            {
                "service": "a",
                "alerts": {
                    "readiness": {"for": "1m"},
                    "loop_lag": {"window": "10s"},
                    "consumer_lag": {"enabled": False},
                },
            }
        )
        .services[0]
        .alerts
    )
    # the alert's own defaults stay: page, 0.1 s, 10m
    assert (alerts.readiness.for_, alerts.readiness.severity) == ("1m", "page")
    assert (alerts.loop_lag.window, alerts.loop_lag.threshold) == ("10s", 0.1)
    assert alerts.loop_lag.for_ == "10m"
    assert (alerts.consumer_lag.enabled, alerts.consumer_lag.threshold) == (False, 1000)
    assert "alerts.down.colour: " in spec_error({"service": "a", "alerts": {"down": {"colour": 1}}})
    assert "alerts.sirens: " in spec_error({"service": "a", "alerts": {"sirens": {}}})
    assert "alerts: " in spec_error({"service": "a", "alerts": "none"})
    assert "alerts.down: " in spec_error({"service": "a", "alerts": {"down": "off"}})
    # the field's name works as well as its alias
    down = load_spec({"service": "a", "alerts": {"down": {"for_": "1m"}}}).services[0].alerts.down
    assert (down.for_, down.severity) == ("1m", "page")


def test_every_other_alert_can_be_turned_off() -> None:
    off = {name: {"enabled": False} for name in ServiceAlerts.model_fields}
    rules = rules_of({"service": "a", "availability": {"target": 0.9}, "alerts": off})
    assert {r.get("alert") for r in rules if "alert" in r} == {"ErrorBudgetBurn"}
    assert rules_of({"service": "a", "alerts": off}) == []


def test_spec_errors_are_configuration_errors() -> None:
    assert issubclass(SloSpecError, ConfigurationError)


# -- generate_rules ---------------------------------------------------------------


def test_one_group_per_service_with_records_and_alerts() -> None:
    document = generate_rules(load_spec(PLATFORM))
    assert [g["name"] for g in document["groups"]] == ["lms-courses", "lms-grading", "lms-identity"]
    courses, grading, identity = (g["rules"] for g in document["groups"])
    windows = ["5m", "1h", "30m", "6h", "2h", "1d", "3d"]  # each short/long once
    records = [(r["record"], r["labels"]["slo"]) for r in courses if "record" in r]
    assert records == [
        *((f"service:lms_slo_errors:ratio_rate{w}", "availability") for w in windows),
        *((f"service:lms_slo_errors:ratio_rate{w}", "latency") for w in windows),
    ]
    names = [r["alert"] for r in courses if "alert" in r]
    assert names == [*["ErrorBudgetBurn"] * 8, *sorted(OTHER_ALERTS, key=names.index)]
    assert set(names) == {"ErrorBudgetBurn", *OTHER_ALERTS}
    assert sum("record" in r for r in grading) == len(windows)  # availability only
    # no SLO: no records, no burn alerts; a disabled alert is left out
    assert {r["alert"] for r in identity} == OTHER_ALERTS - {"EventLoopLagHigh"}


def test_burn_rate_alerts_pair_windows_and_thresholds() -> None:
    burns = [r for r in rules_of(PLATFORM) if r.get("alert") == "ErrorBudgetBurn"]
    courses = [r for r in burns if r["labels"]["service"] == "courses"]
    got = {
        (r["labels"]["slo"], r["labels"]["long_window"], r["labels"]["short_window"]): (
            r["labels"]["severity"],
            r["expr"],
        )
        for r in courses
    }
    expected = {}
    for slo, budget in (("availability", 0.001), ("latency", 0.01)):
        for w in DEFAULT_WINDOWS:
            limit = repr(round(w.burn * budget, 12))
            match = f'{{service="courses",slo="{slo}"}}'
            expected[(slo, w.long, w.short)] = (
                w.severity,
                f"service:lms_slo_errors:ratio_rate{w.long}{match} > {limit}"
                f" and service:lms_slo_errors:ratio_rate{w.short}{match} > {limit}",
            )
    assert got == expected
    assert got[("availability", "1h", "5m")][1].endswith("> 0.0144")
    assert {w.severity for w in DEFAULT_WINDOWS} == {"page", "ticket"}
    assert all("for" not in r for r in courses)  # the short window is the confirmation


def test_every_alert_has_severity_service_and_a_runbook() -> None:
    rules = rules_of(PLATFORM)
    alerts = [r for r in rules if "alert" in r]
    assert alerts
    slugs = {}
    for alert in alerts:
        service = alert["labels"]["service"]
        assert alert["labels"]["severity"] in {"page", "ticket"}
        base = (
            "https://wiki.example.org/ops/observability#"
            if service == "grading"
            else "https://lms.example.org/runbooks/"
        )
        url = alert["annotations"]["runbook_url"]
        assert url.startswith(base)
        slugs[alert["alert"]] = url.removeprefix(base)
        assert alert["annotations"]["summary"].startswith(f"{service}: ")
        assert alert["annotations"]["description"]
    assert slugs == {
        "ErrorBudgetBurn": "error-budget-burn",
        "DeadLettersGrowing": "dead-letters-growing",
        "CircuitBreakerOpen": "circuit-breaker-open",
        "ConsumerLagHigh": "consumer-lag-high",
        "ReadinessFailing": "readiness-failing",
        "ServiceDown": "service-down",
        "EventLoopLagHigh": "event-loop-lag-high",
    }
    records = [r for r in rules if "record" in r]
    assert all(set(r["labels"]) == {"service", "slo"} for r in records)


def test_selector_tuning_and_exclusions_reach_the_expressions() -> None:
    grading = [r for r in rules_of(PLATFORM) if r.get("labels", {}).get("service") == "grading"]
    by_name = {r.get("alert") or r["record"]: r for r in grading}
    record = by_name["service:lms_slo_errors:ratio_rate5m"]["expr"]
    # the regex's backslash is escaped for the PromQL string
    assert r'http_route!~"/health/.*|/metrics|/v1/internal/\\d+"' in record
    assert 'job="grading", env=~"prod|staging"' in record
    assert 'http_response_status_code=~"5.."' in record
    lag = by_name["ConsumerLagHigh"]
    assert lag["expr"].endswith("> 5000.0")
    assert lag["for"] == "15m"
    assert by_name["ServiceDown"]["expr"] == 'up{job="grading", env=~"prod|staging"} == 0'
    assert by_name["ServiceDown"]["labels"]["severity"] == "page"
    assert "for" not in by_name["DeadLettersGrowing"]  # for: 0s is no "for"
    assert "[10m]" in by_name["DeadLettersGrowing"]["expr"]


def test_latency_uses_the_threshold_bucket_as_prometheus_writes_it() -> None:
    for threshold, le in ((0.3, "0.3"), (1, "1.0"), (2.5, "2.5")):
        spec = {"service": "a", "latency": {"target": 0.99, "threshold": threshold}}
        record = next(r for r in rules_of(spec) if "record" in r)
        assert f'le="{le}"' in record["expr"]


def test_burn_windows_and_for_are_tunable() -> None:
    spec = {
        "service": "a",
        "availability": {"target": 0.9},
        "windows": [{"long": "1m", "short": "10s", "burn": 2, "severity": "urgent", "for": "30s"}],
        "alerts": {"down": {"for": "0", "severity": "urgent"}},
    }
    rules = rules_of(spec)
    assert [r["record"] for r in rules if "record" in r] == [
        "service:lms_slo_errors:ratio_rate10s",
        "service:lms_slo_errors:ratio_rate1m",
    ]
    (burn,) = (r for r in rules if r.get("alert") == "ErrorBudgetBurn")
    assert burn["for"] == "30s"
    assert burn["labels"]["severity"] == "urgent"
    assert "> 0.2 and" in burn["expr"]
    down = next(r for r in rules if r.get("alert") == "ServiceDown")
    assert "for" not in down
    assert down["labels"]["severity"] == "urgent"


# -- render_yaml ------------------------------------------------------------------


def test_rendered_rules_read_back_as_the_document() -> None:
    document = generate_rules(load_spec(PLATFORM))
    text = render_yaml(document, header="one\ntwo")
    assert text.startswith("# one\n# two\ngroups:\n")
    assert yaml.safe_load(text) == document


def test_render_yaml_quotes_whatever_a_string_holds() -> None:
    tricky = [
        'say "hi"',
        "it's",
        "both ' and \"",
        "back\\slash",
        "line\nbreak\ttab",
        "caf\u00e9 \u6f22\u5b57 \U0001f600 tag\U000e0001",
        "sep\u2028arator\u2029 nel\x85 del\x7f bell\x07",
        "# not a comment",
        "key: value",
        "- dash",
        "yes",
        "null",
        "0x1f",
        "  padded  ",
        "",
        '"{{ $labels.instance }}"',
    ]
    document: dict[str, Any] = {
        "strings": tricky,
        "numbers": [0, -3, 0.1, 1e-12, 14.4, float("inf"), float("-inf")],
        "flags": [True, False, None],
        "empty": {"map": {}, "list": []},
        "nested": [[1, [2]], {"a": [{"b": {}}]}],
    }
    assert yaml.safe_load(render_yaml(document)) == document
    nan = yaml.safe_load(render_yaml({"x": float("nan")}))["x"]
    assert math.isnan(nan)


# -- promtool ---------------------------------------------------------------------


def promtool_check(kind: str, path: Path) -> subprocess.CompletedProcess[str]:
    done = prom.run_tool("promtool", "check", kind, str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_promtool_accepts_the_rules_of_a_multi_service_spec(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(render_yaml(generate_rules(load_spec(PLATFORM))), encoding="utf-8")
    done = promtool_check("rules", path)
    assert "SUCCESS: 50 rules found" in done.stdout + done.stderr


def test_promtool_refuses_a_broken_rule_file(tmp_path: Path) -> None:
    # the check can fail: a selector whose regex Prometheus cannot compile
    path = tmp_path / "rules.yml"
    spec = {"service": "a", "selector": 'job=~"("', "availability": {"target": 0.9}}
    path.write_text(render_yaml(generate_rules(load_spec(spec))), encoding="utf-8")
    done = prom.run_tool("promtool", "check", "rules", str(path))
    assert done.returncode != 0
    assert "error parsing regexp" in done.stdout + done.stderr


def test_the_deploy_examples_pass_promtool_and_amtool() -> None:
    promtool_check("rules", DEPLOY / "rules.yml")
    done = promtool_check("config", DEPLOY / "prometheus.yml")
    assert "rules.yml" in done.stdout + done.stderr  # the rule file was checked too
    done = prom.run_tool("amtool", "check-config", str(DEPLOY / "alertmanager.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_deploy_rules_are_what_the_cli_generates_from_slo_yaml(tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    result = runner.invoke(
        app, ["alerts", "generate", "--spec", str(DEPLOY / "slo.yaml"), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (DEPLOY / "rules.yml").read_text(encoding="utf-8") == out.read_text(encoding="utf-8"), (
        "deploy/prometheus/rules.yml is stale: run lms-shared alerts generate"
        " --spec deploy/prometheus/slo.yaml --output deploy/prometheus/rules.yml"
    )


def burn_alert(long: str, short: str, burn: str, severity: str) -> dict[str, Any]:
    """What ``promtool test rules`` expects of one firing ErrorBudgetBurn of courses."""
    return {
        "exp_labels": {
            "severity": severity,
            "service": "courses",
            "slo": "availability",
            "long_window": long,
            "short_window": short,
        },
        "exp_annotations": {
            "summary": f"courses: availability error budget burning {burn}x too fast",
            "description": f"requests failing with a 5xx are above {burn} times the budget of"
            f" the 0.999 availability SLO over {long} and {short} (now 100%).",
            "runbook_url": "https://lms.example.org/runbooks/error-budget-burn",
        },
    }


def test_promtool_unit_tests_the_default_rules_on_synthetic_series(tmp_path: Path) -> None:
    """Every request failing for an hour pages and tickets; none failing is quiet."""
    spec = {"service": "courses", "availability": {"target": 0.999}}
    (tmp_path / "rules.yml").write_text(render_yaml(generate_rules(load_spec(spec))))
    series = (
        "http_server_request_duration_seconds_count{{"
        'job="courses",instance="c:8000",http_route="/v1/courses",'
        'http_request_method="GET",http_response_status_code="{}"}}'
    )
    failing = {
        "interval": "1m",
        "input_series": [
            {"series": series.format(500), "values": "0+60x70"},
            {"series": 'up{job="courses",instance="c:8000"}', "values": "0x70"},
        ],
        "alert_rule_test": [
            {
                "eval_time": "65m",
                "alertname": "ErrorBudgetBurn",
                "exp_alerts": [
                    burn_alert("1h", "5m", "14.4", "page"),
                    burn_alert("6h", "30m", "6", "page"),
                    burn_alert("1d", "2h", "3", "ticket"),
                    burn_alert("3d", "6h", "1", "ticket"),
                ],
            },
            {
                "eval_time": "65m",
                "alertname": "ServiceDown",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "page",
                            "service": "courses",
                            "job": "courses",
                            "instance": "c:8000",
                        },
                        "exp_annotations": {
                            "summary": "courses: an instance cannot be scraped",
                            "description": "Prometheus has not reached c:8000 for 5m.",
                            "runbook_url": "https://lms.example.org/runbooks/service-down",
                        },
                    }
                ],
            },
        ],
    }
    healthy = {
        "interval": "1m",
        "input_series": [
            {"series": series.format(200), "values": "0+60x70"},
            {"series": series.format(500), "values": "0x70"},
            {"series": 'up{job="courses",instance="c:8000"}', "values": "1x70"},
        ],
        "alert_rule_test": [
            {"eval_time": "65m", "alertname": name, "exp_alerts": []}
            for name in ("ErrorBudgetBurn", "ServiceDown")
        ],
    }
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [failing, healthy]}
    (tmp_path / "tests.yml").write_text(json.dumps(tests))
    done = prom.run_tool("promtool", "test", "rules", "tests.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


# -- docs -------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_runbook_slug_has_a_section_in_the_docs() -> None:
    headings = {
        github_anchor(line.lstrip("#"))
        for line in DOCS.read_text(encoding="utf-8").splitlines()
        if re.match(r"^#{1,6} ", line)
    }
    slugs = {
        r["annotations"]["runbook_url"].removeprefix("https://lms.example.org/runbooks/")
        for r in rules_of({"service": "a", "availability": {"target": 0.9}})
        if "alert" in r
    }
    assert len(slugs) == 7
    assert slugs - headings == set()


# -- the CLI ----------------------------------------------------------------------


def write_spec(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


YAML_SPEC = """\
services:
  - service: courses
    availability: {target: 0.999}
    latency: {target: 0.99, threshold: 0.5}
  - service: grading
    alerts:
      consumer_lag: {threshold: 5000, for: 15m}
"""


def test_cli_writes_the_rules_of_a_yaml_spec(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "slo.yaml", YAML_SPEC)
    out = tmp_path / "out" / "rules.yml"
    result = runner.invoke(app, ["alerts", "generate", "-s", str(spec), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Prometheus alerting rules generated by `lms-shared alerts")
    assert "from slo.yaml." in text.splitlines()[0]
    assert yaml.safe_load(text) == generate_rules(load_spec(yaml.safe_load(YAML_SPEC)))
    assert f"wrote 34 rules for 2 service(s) to {out}" in result.stderr
    assert result.stdout == ""


def test_cli_writes_to_stdout_and_checks_with_promtool(tmp_path: Path) -> None:
    prom.binary("promtool")
    spec = write_spec(tmp_path, "slo.yml", YAML_SPEC)
    result = runner.invoke(app, ["alerts", "generate", "--spec", str(spec), "--check"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["groups"][0]["name"] == "lms-courses"
    assert "to stdout" in result.stderr


def test_cli_check_fails_on_rules_promtool_refuses(tmp_path: Path) -> None:
    prom.binary("promtool")
    spec = write_spec(tmp_path, "slo.json", json.dumps({"service": "a", "selector": 'job=~"("'}))
    out = tmp_path / "rules.yml"
    result = runner.invoke(app, ["alerts", "generate", "-s", str(spec), "-o", str(out), "--check"])
    assert result.exit_code == 1
    assert "promtool check rules failed" in result.stderr
    assert "error parsing regexp" in result.stderr
    assert not out.exists()  # nothing written


def test_cli_check_without_promtool_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path, "slo.json", json.dumps({"service": "a"}))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = runner.invoke(app, ["alerts", "generate", "-s", str(spec), "--check"])
    assert result.exit_code == 1
    assert "promtool is not installed (Debian: apt-get install prometheus)" in result.stderr


def test_cli_check_is_bounded_in_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a promtool that hangs: the check gives up after its timeout
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "promtool"
    fake.write_text("#!/bin/sh\nexec /bin/sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(_alerts, "_PROMTOOL_TIMEOUT", 0.5)
    spec = write_spec(tmp_path, "slo.json", json.dumps({"service": "a"}))
    result = runner.invoke(app, ["alerts", "generate", "-s", str(spec), "--check"])
    assert result.exit_code == 1
    assert "promtool did not finish within 0.5 s" in result.stderr


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("slo.yaml", "service: Courses\n", "invalid SLO spec: service: "),
        (
            "slo.yaml",
            "services:\n  - service: a\n    availability: {target: 2}\n",
            "invalid SLO spec: services.0.availability.target: ",
        ),
        ("slo.yaml", "service: [unclosed\n", "not YAML"),
        ("slo.json", "{not json", "not JSON"),
        ("slo.yaml", "", "one service (a mapping)"),
    ],
)
def test_cli_bad_spec_exits_2_with_the_reason(
    tmp_path: Path, name: str, text: str, says: str
) -> None:
    spec = write_spec(tmp_path, name, text)
    out = tmp_path / "rules.yml"
    result = runner.invoke(app, ["alerts", "generate", "-s", str(spec), "-o", str(out)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert says in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


def test_cli_missing_or_huge_spec_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["alerts", "generate", "-s", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: No such file or directory" in result.stderr
    huge = write_spec(tmp_path, "huge.yaml", "# " + "x" * (1 << 20) + "\nservice: a\n")
    result = runner.invoke(app, ["alerts", "generate", "-s", str(huge)])
    assert result.exit_code == 2
    assert "a spec is at most 1 MiB" in result.stderr


def test_cli_unwritable_output_exits_1(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "slo.json", json.dumps({"service": "a"}))
    blocker = write_spec(tmp_path, "file", "")
    result = runner.invoke(app, ["alerts", "generate", "-s", str(spec), "-o", f"{blocker}/r.yml"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {blocker}/r.yml: ")


def test_json_specs_need_no_pyyaml_and_yaml_ones_say_they_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` raises ImportError
    spec = write_spec(tmp_path, "slo.JSON", json.dumps([{"service": "a"}]))
    result = runner.invoke(app, ["alerts", "generate", "-s", str(spec)])
    assert result.exit_code == 0, result.output
    assert '- name: "lms-a"' in result.stdout
    spec = write_spec(tmp_path, "slo.yaml", "service: a\n")
    result = runner.invoke(app, ["alerts", "generate", "-s", str(spec)])
    assert result.exit_code == 2
    assert "YAML specs need PyYAML (pip install pyyaml); or use JSON" in result.stderr


# -- end to end: a failing service pages through Prometheus and Alertmanager --------


E2E_SPEC = {
    "service": "e2e",
    "availability": {"target": 0.9},
    "latency": {"target": 0.9, "threshold": 0.25},
    "runbook_base": "https://runbooks.test/observability#",
    # seconds instead of hours: the alert fires as soon as two scrapes saw the errors
    "windows": [{"long": "10s", "short": "5s", "burn": 1, "severity": "page"}],
    "alerts": {"dead_letters": {"window": "10s"}, "loop_lag": {"window": "10s"}},
}


async def _get(client: httpx.AsyncClient, url: str, **params: str) -> Any:
    response = await client.get(url, params=params, timeout=5)
    response.raise_for_status()
    return response.json()["data"]


def alertmanager_config(hook: prom.Webhook) -> str:
    """Every alert to the webhook, grouped as deploy/prometheus does, in seconds."""
    return json.dumps(
        {
            "route": {
                "receiver": "hook",
                "group_by": ["alertname", "service", "slo"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "hook", "webhook_configs": [{"url": hook.url}]}],
        }
    )


def prometheus_config(service_port: int, alertmanager_port: int) -> str:
    """Scrape the service (job ``e2e``) every second; evaluate every second."""
    return json.dumps(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "e2e",
                    "static_configs": [{"targets": [f"127.0.0.1:{service_port}"]}],
                }
            ],
        }
    )


async def test_a_failing_service_pages_through_prometheus_and_alertmanager(
    tmp_path: Path,
) -> None:
    prom.binary("prometheus")
    prom.binary("alertmanager")
    failing = False
    service = create_service("e2e", "1.0.0", settings=load_settings(state_dir=str(tmp_path)))

    @service.router.get("/v1/work")
    async def work() -> JSONResponse:
        if failing:
            return JSONResponse({"title": "broken"}, status_code=503)
        return JSONResponse({"ok": True})

    async def load(calls: httpx.AsyncClient) -> None:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                await calls.get("/v1/work", timeout=2)
            await asyncio.sleep(0.02)

    rules = render_yaml(generate_rules(load_spec(E2E_SPEC)))
    async with contextlib.AsyncExitStack() as stack:
        served = await prom.serve(service.app)
        stack.push_async_callback(served.stop)
        calls = await stack.enter_async_context(httpx.AsyncClient(base_url=served.url))
        traffic = asyncio.get_running_loop().create_task(load(calls))
        stack.callback(traffic.cancel)
        hook = stack.enter_context(prom.webhook())
        # started on a thread: the service keeps answering on this loop meanwhile
        alertmanager = await asyncio.to_thread(
            stack.enter_context, prom.alertmanager(alertmanager_config(hook))
        )
        prometheus = await asyncio.to_thread(
            stack.enter_context,
            prom.prometheus(prometheus_config(served.port, alertmanager.port), rules),
        )
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=prometheus.url))
        last: Any = None

        async def wait_for(what: str, done: Any, seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while not await done():
                if time.monotonic() > deadline:
                    alerts = await _get(api, "/api/v1/alerts")
                    pytest.fail(
                        f"{what} within {seconds} s; last answer: {last!r};"
                        f" Prometheus alerts: {alerts!r}; webhook got: {hook.received!r}"
                        f"\n{prometheus.log()}\n{alertmanager.log()}"
                    )
                await asyncio.sleep(0.25)

        async def healthy() -> bool:
            nonlocal last
            ratio = 'service:lms_slo_errors:ratio_rate5s{service="e2e",slo="availability"}'
            last = await _get(api, "/api/v1/query", query=ratio)
            return [s["value"][1] for s in last["result"]] == ["0"]

        def pages() -> list[dict[str, Any]]:
            return [
                a
                for a in hook.alerts()
                if a["labels"]["alertname"] == "ErrorBudgetBurn"
                and a["labels"].get("slo") == "availability"
            ]

        async def paged() -> bool:
            nonlocal last
            last = await _get(api, "/api/v1/alerts")
            return bool(pages())

        # healthy traffic first: the SLI is scraped, recorded, and 0
        await wait_for("the error ratio was not recorded as 0", healthy, 20)
        assert hook.alerts() == []

        failing = True
        await wait_for("the webhook got no ErrorBudgetBurn", paged, 30)
        alert = pages()[0]
        assert alert["status"] == "firing"
        assert alert["labels"] == {
            "alertname": "ErrorBudgetBurn",
            "service": "e2e",
            "severity": "page",
            "slo": "availability",
            "long_window": "10s",
            "short_window": "5s",
        }
        assert alert["annotations"]["runbook_url"] == (
            "https://runbooks.test/observability#error-budget-burn"
        )
        assert alert["annotations"]["summary"] == (
            "e2e: availability error budget burning 1x too fast"
        )
        # every generated rule evaluates against the service's real series
        groups = (await _get(api, "/api/v1/rules"))["groups"]
        assert [len(g["rules"]) for g in groups] == [len(rules_of(E2E_SPEC))]
        broken = [
            (r["name"], r.get("lastError"))
            for g in groups
            for r in g["rules"]
            if r["health"] != "ok"
        ]
        assert broken == []
        # the service's other alerts stayed quiet, not even pending
        assert {a["labels"]["alertname"] for a in hook.alerts()} == {"ErrorBudgetBurn"}
        active = {a["labels"]["alertname"] for a in (await _get(api, "/api/v1/alerts"))["alerts"]}
        assert "ErrorBudgetBurn" in active
        quiet = {"ReadinessFailing", "DeadLettersGrowing", "CircuitBreakerOpen", "ConsumerLagHigh"}
        assert active & quiet == set()
