"""The alert rules and the dashboard in deploy/ read only metrics the processes export, and
they are well formed without promtool: YAML and JSON load, every rule says what it needs,
every expression parses as PromQL (promql-parser, the Rust parser's Python binding)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from reengage import metrics  # registers every instrument

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"\breengage_[a-z0-9_]+")
# The series a family of each type is scraped as.
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}


def exported() -> set[str]:
    """Every series name the processes can serve (all instruments live in reengage.metrics,
    which the API, the scheduler and the workers import)."""
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("reengage_")
        for suffix in SUFFIXES[family.type]
    }


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "reengage.json").read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def referenced(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in NAME.findall(expr)}


@pytest.mark.parametrize(
    "source", ["alerts", "dashboard"], ids=["alert rules", "Grafana dashboard"]
)
def test_every_metric_referenced_is_exported(source: str) -> None:
    exprs = [r["expr"] for r in rules()] if source == "alerts" else dashboard_exprs()
    names = referenced(exprs)
    assert names, "no reengage metric referenced at all"
    assert names - exported() == set()
    assert "reengage_timers_due_total" not in exported()  # a suffix is not a free pass


def test_labels_are_bounded_words_never_a_user() -> None:
    """A label's values must stay few: a bot id is the finest grain a metric may have."""
    bounded = {"outcome", "purpose", "channel", "status", "reason", "kind", "hold", "claim", "bot"}
    instruments = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    assert len(instruments) >= 16
    for instrument in instruments:
        assert set(instrument._labelnames) <= bounded, instrument


def test_the_metrics_an_on_call_person_needs_are_on_the_dashboard() -> None:
    on_dashboard = referenced(dashboard_exprs())
    for needed in (
        "reengage_timer_lateness_seconds_bucket",
        "reengage_deliveries_total",
        "reengage_timers_due",
        "reengage_timers_oldest_due_age_seconds",
        "reengage_platform_errors_total",
        "reengage_write_behind_lag_seconds",
        "reengage_pacing_holds_total",
        "reengage_episodes_ended_total",
    ):
        assert needed in on_dashboard


def test_every_alert_rule_is_complete() -> None:
    found = rules()
    names = [rule["alert"] for rule in found]
    assert len(names) == len(set(names)), "two rules share a name"
    for rule in found:
        assert {"alert", "expr", "for", "labels", "annotations"} <= rule.keys(), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule["for"])), rule["alert"]
        assert rule["labels"].get("severity") in ("page", "warning"), rule["alert"]
        assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]
        promql_parser.parse(rule["expr"])
    assert {
        "ReengageAmbiguousDeliveries",
        "ReengageTimersLate",
        "ReengageBotFailureRate",
        "ReengageSchedulerDown",
        "ReengageWorkerDown",
    } <= set(names)


@pytest.mark.parametrize("scrape", ["prometheus.yml", "compose.yml"])
def test_the_alerts_watch_the_jobs_the_scrape_example_defines(scrape: str) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / scrape).read_text())
    jobs = {scrape["job_name"] for scrape in config["scrape_configs"]}
    watched = {job for r in rules() for job in re.findall(r'job="([^"]+)"', r["expr"])}
    assert watched <= jobs
    assert {"reengage-api", "reengage-scheduler", "reengage-worker"} == jobs
    assert "alerts.yml" in config["rule_files"]


def test_the_dashboard_is_grafana_json() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "reengage.json").read_text())
    assert dashboard["uid"] == "reengage"
    assert dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"type", "title", "gridPos"} <= panel.keys()
        for target in panel.get("targets", []):
            # Grafana's own variable stands for a range Prometheus never sees.
            promql_parser.parse(target["expr"].replace("$__rate_interval", "5m"))
