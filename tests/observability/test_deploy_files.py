"""The monitoring files of the compose deployment, checked without Docker: compose.yaml parses and
mounts only files that exist, Prometheus scrapes every Tidings process of it on the port that
process serves its metrics on (and `promtool check config` accepts the file), Grafana is
provisioned with that Prometheus, and the dashboard shows the brief's five numbers with queries
that `promtool` parses and that name only metrics the app exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

import jobs.scheduler  # noqa: F401 - every module that declares metrics is loaded
from webapp import metrics
from webapp.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "compose.yaml"
PROMETHEUS = PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "dashboards" / "tidings.json"
BRIEF_PANELS = (
    "Open connections",
    "Message throughput",
    "Error rates",
    "Reconnection attempts",
    "Delivery success rate",
)
MORE_PANELS = ("p95 delivery latency", "Outbox lag", "Job failures and dead letters")
# Suffixes Prometheus adds to a family's name in the text format, by the family's type.
SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return load_yaml(PROMETHEUS)  # type: ignore[no-any-return]


def command_of(service: dict[str, Any]) -> list[str]:
    return list(service.get("command") or ["tidings", "serve"])  # the image's CMD


def app_services(compose: dict[str, Any], kind: str) -> list[str]:
    """Names of the services running a Tidings process of one kind: web, worker or scheduler."""
    kinds = {"serve": "web", "jobs": "worker", "scheduler": "scheduler"}
    found = []
    for name, service in compose["services"].items():
        if service.get("build") != ".":
            continue
        command = command_of(service)
        if kinds.get(command[1]) == kind:
            found.append(name)
    return found


def scrape_targets(prometheus: dict[str, Any], job: str) -> list[tuple[str, int]]:
    config = next(c for c in prometheus["scrape_configs"] if c["job_name"] == job)
    targets = []
    for static in config.get("static_configs", []):
        for target in static["targets"]:
            host, port = target.rsplit(":", 1)
            targets.append((host, int(port)))
    for dns in config.get("dns_sd_configs", []):
        assert dns.get("type", "SRV") == "A", "a compose service name resolves to A records"
        targets.extend((name, int(dns["port"])) for name in dns["names"])
    return targets


def exported_sample_names() -> set[str]:
    """Every sample name the app's metrics can show, whether or not a labelled child exists yet."""
    registry: CollectorRegistry = metrics.REGISTRY
    names = set()
    for family in registry.collect():
        for suffix in SAMPLE_SUFFIXES[family.type]:
            names.add(family.name + suffix)
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def promtool() -> str:
    found = shutil.which("promtool") or str(PROJECT_ROOT / ".tools" / "bin" / "promtool")
    assert Path(found).exists(), "promtool is missing: `make promtool` unpacks it from Debian's prometheus package"
    return found


def test_compose_parses_and_every_file_it_mounts_exists(compose: dict[str, Any]) -> None:
    mounted = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                mounted.append((name, source))
    for kind in ("secrets", "configs"):
        for name, item in (compose.get(kind) or {}).items():
            if "file" in item:
                mounted.append((name, item["file"]))
    assert {source for _, source in mounted} >= {
        "./deploy/prometheus/prometheus.yml",
        "./deploy/grafana/provisioning",
        "./deploy/grafana/dashboards",
    }
    for name, source in mounted:
        assert (PROJECT_ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"


def test_prometheus_scrapes_every_web_process_with_the_metrics_token(
    compose: dict[str, Any], prometheus: dict[str, Any]
) -> None:
    web = next(c for c in prometheus["scrape_configs"] if c["job_name"] == "tidings-web")
    assert web.get("metrics_path", "/metrics") == "/metrics"
    credentials = web["authorization"]["credentials_file"]
    assert web["authorization"].get("type", "Bearer") == "Bearer"
    secret = Path(credentials).name
    assert credentials == f"/run/secrets/{secret}"
    assert secret in compose["services"]["prometheus"]["secrets"]
    source = compose["secrets"][secret]["environment"]
    targets = scrape_targets(prometheus, "tidings-web")
    assert sorted(host for host, _ in targets) == sorted(app_services(compose, "web")) == ["web1", "web2"]
    for host, port in targets:
        service = compose["services"][host]
        env = service["environment"]
        assert env["METRICS_TOKEN"].startswith("${" + source), "the web processes read the same variable"
        port_setting = int(env.get("PORT") or 8000)  # the Dockerfile's PORT
        assert port == port_setting, f"{host} serves on {port_setting}, scraped on {port}"
        assert any(mapping.endswith(f":{port}") for mapping in service["ports"])


@pytest.mark.parametrize(
    ("job", "kind", "setting"),
    [("tidings-worker", "worker", "WORKER_METRICS_PORT"), ("tidings-scheduler", "scheduler", "SCHEDULER_METRICS_PORT")],
)
def test_prometheus_scrapes_every_worker_and_the_scheduler_on_their_metrics_port(
    compose: dict[str, Any], prometheus: dict[str, Any], job: str, kind: str, setting: str
) -> None:
    targets = scrape_targets(prometheus, job)
    services = app_services(compose, kind)
    assert services, f"no {kind} in compose.yaml"
    assert sorted(host for host, _ in targets) == sorted(services)
    for host, port in targets:
        service = compose["services"][host]
        assert int(service["environment"][setting]) == port, f"{host} serves its metrics on {setting}"
        if kind == "worker":  # -p N: one port per process, from the setting on
            processes = int(command_of(service)[command_of(service).index("-p") + 1])
            assert processes == 1, "scrape one port per worker process"


def test_every_tidings_process_in_compose_is_scraped(compose: dict[str, Any], prometheus: dict[str, Any]) -> None:
    scraped = {
        host for config in prometheus["scrape_configs"] for host, _ in scrape_targets(prometheus, config["job_name"])
    }
    for kind in ("web", "worker", "scheduler"):
        assert set(app_services(compose, kind)) <= scraped, kind


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    # promtool opens the token file: point it at a stand-in for the secret compose mounts.
    token = tmp_path / "metrics_token"
    token.write_text("a-scrape-token")
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS.read_text().replace("/run/secrets/metrics_token", str(token)))
    checked = subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_grafana_is_provisioned_with_that_prometheus_and_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if volume.startswith("."))
    provisioning = PROJECT_ROOT / "deploy" / "grafana" / "provisioning"
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasource = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    provider = load_yaml(provisioning / "dashboards" / "tidings.yml")["providers"][0]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_the_dashboard_shows_the_brief_numbers_with_the_readme_delivery_rate() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert set(BRIEF_PANELS + MORE_PANELS) <= set(titles), titles
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(titles)
    readme = (PROJECT_ROOT / "README.md").read_text()
    formula = re.search(r"`(sum\(rate\(tidings_notification_delivery_seconds_bucket\{le=\"5\"\}[^`]+)`", readme)
    assert formula is not None, "the README defines the delivery success rate"
    rate = next(panel for panel in dashboard["panels"] if panel["title"] == "Delivery success rate")
    assert [target["expr"] for target in rate["targets"]] == [formula.group(1)]


def test_every_metric_the_dashboard_queries_is_exported_by_the_app() -> None:
    exported = exported_sample_names()
    used = {name for expr in dashboard_queries() for name in re.findall(r"\b(tidings_[a-z0-9_]+)", expr)}
    assert len(used) >= 15
    assert sorted(used - exported) == [], "queried, but no process exports it"


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
