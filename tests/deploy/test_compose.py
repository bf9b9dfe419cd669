"""docker-compose.yml: valid for Compose (Debian's docker-compose, offline), every command a
real ``batteryloop`` command line, every port published or scraped the one that line serves."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.cli_lines import (
    AGREED_METRICS,
    DEPLOY,
    REPO,
    http_endpoint,
    parse,
    queried_metrics,
    tool,
)

COMPOSE = REPO / "docker-compose.yml"
WHY = "apt-get install docker-compose (.ci/run does)"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def batteryloop_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service["image"].startswith("batteryloop:")
    }


def compose_config(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("docker-compose", WHY), "config", "-q"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_with(tmp_path: Path, old: str, new: str) -> Path:
    text = COMPOSE.read_text()
    assert old in text, f"the mutation's anchor {old!r} is gone from docker-compose.yml"
    (tmp_path / "docker-compose.yml").write_text(text.replace(old, new, 1))
    shutil.copytree(DEPLOY, tmp_path / "deploy", ignore=shutil.ignore_patterns("node_modules"))
    return tmp_path


def test_compose_file_is_valid() -> None:
    result = compose_config(REPO)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("\nservices:\n", "\nservics:\n", "servics"),
        ('    ports: ["127.0.0.1:6066:6066"]', "    ports: {web: 6066}", "should be an array"),
        ("  restart: unless-stopped", "  restart: unless-stopped\n  comand: [x]", "comand"),
        ("      kafka-eu: {condition", "      kafka-xx: {condition", "kafka-xx"),
    ],
)
def test_a_broken_compose_file_is_refused(tmp_path: Path, old: str, new: str, reason: str) -> None:
    result = compose_config(copy_with(tmp_path, old, new))
    assert result.returncode != 0
    assert reason in result.stderr


def test_every_batteryloop_command_parses() -> None:
    services = batteryloop_services()
    commands = {name: parse(s["command"], f"compose {name}") for name, s in services.items()}
    # the stack runs what the issue asks of it: provisioning, a worker per region, mirrors both
    # ways, the gateway, the simulator
    regions = {(a.command, getattr(a, "region", None)) for a in commands.values()}
    assert {("topics", r) for r in ("EU", "JP")} <= {(c, r and r.name) for c, r in regions}
    assert {("worker", "EU"), ("worker", "JP"), ("gateway", "EU"), ("gateway", "JP")} <= {
        (c, r and r.name) for c, r in regions
    }
    mirrors = {(a.source.name, a.target.name) for a in commands.values() if a.command == "mirror"}
    assert mirrors == {("EU", "JP"), ("JP", "EU")}


def test_published_ports_are_the_ports_the_commands_serve() -> None:
    for name, service in batteryloop_services().items():
        endpoint = http_endpoint(parse(service["command"], name))
        published = [int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])]
        if endpoint is None:
            assert not published, f"{name} publishes {published} but serves no HTTP"
            continue
        host, port = endpoint
        # inside a container, a server bound to 127.0.0.1 is unreachable for the others
        assert host == "0.0.0.0", f"{name} binds {host}: Prometheus could not scrape it"
        assert all(p == port for p in published), f"{name}: publishes {published}, serves {port}"


def test_prometheus_scrapes_every_process_on_its_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        if job["job_name"].startswith("batteryloop")
        for group in job["static_configs"]
        for target in group["targets"]
    }
    expected = set()
    for name, service in batteryloop_services().items():
        endpoint = http_endpoint(parse(service["command"], name))
        if endpoint is not None:
            expected.add(f"{name}:{endpoint[1]}")
    assert targets == expected


def test_images_are_pinned() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for name, service in compose()["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"v?\d+(\.\d+){1,2}", tag), f"{name}: {image} unpinned"
        if repository == "batteryloop":
            assert tag == version, f"{name}: {image}, but pyproject.toml says {version}"


def test_secrets_are_declared_files_with_committed_examples_only() -> None:
    data = compose()
    declared = data["secrets"]
    for name, service in data["services"].items():
        for secret in service.get("secrets", []):
            assert secret in declared, f"{name} uses the undeclared secret {secret}"
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "deploy/secrets/sharing-secret"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    assert ignored.returncode == 0, "deploy/secrets/ is not ignored by git"
    for name, secret in declared.items():
        default = re.fullmatch(r"\$\{(\w+):-(.+)\}", secret["file"])
        assert default, f"secret {name}: its path must come from the environment, with a default"
        assert (REPO / (default.group(2) + ".example")).is_file(), f"no example for {name}"


def test_grafana_queries_only_agreed_metrics() -> None:
    dashboard = (DEPLOY / "grafana/dashboards/batteryloop.json").read_text()
    panels = [p for p in yaml.safe_load(dashboard)["panels"] if p["type"] != "row"]
    seen: set[str] = set()
    for panel in panels:
        for target in panel["targets"]:
            names = queried_metrics(target["expr"])
            assert names, f"panel {panel['title']!r} queries no batteryloop metric"
            assert names <= AGREED_METRICS, f"panel {panel['title']!r}: {names - AGREED_METRICS}"
            seen |= names
    assert seen == AGREED_METRICS, f"no panel for {AGREED_METRICS - seen}"


def test_metric_names_are_checked() -> None:
    """The check above must see a misspelt name and fold histogram series."""
    assert queried_metrics("rate(batteryloop_events_procesed_total[5m])") - AGREED_METRICS
    assert queried_metrics("x(batteryloop_batch_seconds_bucket{a='b'})") == {
        "batteryloop_batch_seconds"
    }
