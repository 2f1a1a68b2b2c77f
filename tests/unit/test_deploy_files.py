"""Dockerfile and compose.yaml, which the suite cannot run (no docker here), stay in step
with what tests/integration/test_wheel_install.py runs from the installed wheel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_runs_the_wheel_tests_topology_with_health_checks() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "api", "scheduler", "worker"} <= services.keys()
    assert {"prometheus", "grafana"} <= services.keys()
    commands = {name: services[name]["command"][0] for name in ("migrate", "api", "scheduler")}
    assert commands == {"migrate": "migrate", "api": "serve", "scheduler": "scheduler"}
    assert services["worker"]["command"][:3] == ["worker", "--concurrency", "2"]
    for name, service in services.items():
        if name != "migrate":
            assert "healthcheck" in service, name
    for name in ("api", "scheduler", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        env = services[name]["environment"]
        assert {"REENGAGE_DATABASE_URL", "REENGAGE_REDIS_URL", "REENGAGE_BROKER_URL"} <= set(env)
        assert env["REENGAGE_SECRET_KEY"].startswith("${REENGAGE_SECRET_KEY:?")


def test_the_image_installs_the_wheel_and_runs_unprivileged() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert "FROM python:3.11-slim" in lines
    assert any("uv build --wheel" in line for line in lines)
    assert any("/dist/reengage-*.whl" in line for line in lines)
    assert "USER reengage" in lines
    assert lines.index("USER reengage") > max(i for i, x in enumerate(lines) if "RUN " in x)
    assert 'ENTRYPOINT ["reengage"]' in lines
