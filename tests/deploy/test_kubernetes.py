"""deploy/: the kustomize base and the EU and JP overlays, rendered with `kubectl kustomize`, every
core object validated strictly against the Kubernetes API's schemas (kubernetes-validate), the
Strimzi and Prometheus Operator resources against their CRD schemas (deploy/validate, Node), and
every container's command line read by the real ``batteryloop`` parser."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from connectors.settings import Settings
from schemas.values import Region
from tests.deploy.cli_lines import DEPLOY, http_endpoint, missing, parse, tool
from tests.deploy.strimzi_topics import kafka_topic, registry_topics

KUBERNETES_VERSION = "1.32.0"  # the API the manifests are written for
REGIONS = ("eu", "jp")
PARTNER = {"eu": "jp", "jp": "eu"}
VALIDATE = DEPLOY / "validate"
# Secrets the operator creates by hand (deploy/overlays/*/kustomization.yaml says how); the
# others a pod references are made by Strimzi: one per KafkaUser, and the cluster CA's.
HAND_MADE_SECRETS = {
    "batteryloop-sharing",
    "batteryloop-gateway-tokens",
    "batteryloop-partner-kafka",
}
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

Resource = dict[str, Any]


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubectl", "kubectl (with kustomize built in) renders the overlays"), "kustomize"]
        + [str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module", params=REGIONS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Resource]]:
    result = kustomize(DEPLOY / "overlays" / request.param)
    assert result.returncode == 0, result.stderr
    return request.param, [r for r in yaml.safe_load_all(result.stdout) if r]


def validate_custom(resources: list[Resource]) -> list[Resource]:
    node = tool("node", "Node.js runs deploy/validate (npm ci --prefix deploy/validate)")
    if not (VALIDATE / "node_modules").is_dir():
        missing("deploy/validate/node_modules missing: run npm ci --prefix deploy/validate")
    result = subprocess.run(
        [node, str(VALIDATE / "validate-crs.mjs")],
        input=json.dumps(resources),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out: list[Resource] = json.loads(result.stdout)
    return out


def is_custom(resource: Resource) -> bool:
    return resource["apiVersion"].split("/")[0].endswith((".strimzi.io", ".coreos.com"))


def of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def workloads(resources: list[Resource]) -> list[Resource]:
    return [r for r in resources if r["kind"] in ("Deployment", "StatefulSet")]


def batteryloop_containers(resources: list[Resource]) -> list[tuple[Resource, Resource]]:
    return [
        (workload, container)
        for workload in workloads(resources)
        for container in workload["spec"]["template"]["spec"]["containers"]
        if container["image"].startswith("batteryloop:")
    ]


def environment(workload: Resource, container: Resource, resources: list[Resource]) -> dict:
    """The variables Kubernetes gives the container, as far as the manifests say them: literal
    values, ConfigMaps (envFrom), the pod name (a StatefulSet's first pod), and a placeholder
    for Secret values, which are not in the manifests."""
    env: dict[str, str] = {}
    maps = {m["metadata"]["name"]: m.get("data", {}) for m in of_kind(resources, "ConfigMap")}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in maps, f"{workload['metadata']['name']}: no ConfigMap {name}"
        env.update(maps[name])
    pod = f"{workload['metadata']['name']}-0"
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), var["value"])
        elif var["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[var["name"]] = pod
        else:
            env[var["name"]] = "secret-from-the-cluster"
    return env


def command_line(workload: Resource, container: Resource, resources: list[Resource]) -> list[str]:
    """The container's argv after Kubernetes' $(VAR) expansion; an unknown variable fails."""
    env = environment(workload, container, resources)
    argv = []
    for arg in container.get("command", []) + container.get("args", []):
        unknown = [v for v in _VAR.findall(arg) if v not in env]
        assert not unknown, f"{workload['metadata']['name']}: {arg} uses undefined {unknown}"
        argv.append(_VAR.sub(lambda m: env[m.group(1)], arg))
    return argv


def test_core_objects_are_valid_strictly(rendered: tuple[str, list[Resource]]) -> None:
    region, resources = rendered
    core = [r for r in resources if not is_custom(r)]
    assert {"StatefulSet", "Deployment", "Service", "ConfigMap"} <= {r["kind"] for r in core}
    for resource in core:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    assert not of_kind(resources, "Secret"), "a Secret is committed"


def test_custom_resources_are_valid_against_their_crds(
    rendered: tuple[str, list[Resource]],
) -> None:
    region, resources = rendered
    custom = [r for r in resources if is_custom(r)]
    kinds = {r["kind"] for r in custom}
    assert kinds == {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "ServiceMonitor"}
    failures = [r for r in validate_custom(custom) if r["errors"]]
    assert not failures, failures


def test_broken_resources_are_refused() -> None:
    result = kustomize(DEPLOY / "overlays" / "eu")
    assert result.returncode == 0, result.stderr
    resources = [r for r in yaml.safe_load_all(result.stdout) if r]
    worker = copy.deepcopy(of_kind(resources, "StatefulSet")[0])
    worker["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSION, strict=True)
    topic = copy.deepcopy(of_kind(resources, "KafkaTopic")[0])
    topic["spec"]["partitions"] = "six"
    monitor = copy.deepcopy(of_kind(resources, "ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["interval"] = "often"
    pool = copy.deepcopy(of_kind(resources, "KafkaNodePool")[0])
    del pool["spec"]["storage"]
    unknown = {"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaBridge", "metadata": {}}
    checked = validate_custom([topic, monitor, pool, unknown])
    assert all(r["errors"] for r in checked), checked


def test_a_broken_kustomization_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "overlay"
    broken.mkdir()
    text = (DEPLOY / "overlays/eu/kustomization.yaml").read_text()
    (broken / "kustomization.yaml").write_text(text.replace("../../base", str(DEPLOY / "base")))
    assert kustomize(broken).returncode != 0  # kafka.yaml, topics.yaml are not there


def test_every_container_runs_a_real_command_line(rendered: tuple[str, list[Resource]]) -> None:
    region, resources = rendered
    seen = set()
    for workload, container in batteryloop_containers(resources):
        name = workload["metadata"]["name"]
        args = parse(command_line(workload, container, resources), f"{region} {name}")
        seen.add(args.command)
        if args.command == "mirror":  # runs where the data is owned: redacted before it leaves
            assert args.source.value == region.upper()
            assert args.target.value == PARTNER[region].upper()
        else:
            assert args.region.value == region.upper(), f"{name} serves {args.region}"
        if args.command == "worker":
            assert args.instance_id == f"{name}-0"
            assert args.store == "rocksdb"
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            claims = {c["metadata"]["name"] for c in workload["spec"]["volumeClaimTemplates"]}
            assert mounts.get(str(args.data_dir)) in claims, f"{name}: --data-dir on no volume"
    assert seen == {"worker", "mirror", "gateway"}


def test_settings_read_from_the_manifests_give_client_configs(
    rendered: tuple[str, list[Resource]],
) -> None:
    region, resources = rendered
    for workload, container in batteryloop_containers(resources):
        env = environment(workload, container, resources)
        settings = Settings.from_env(env)
        regions = [Region(region.upper())]
        if container["name"] == "mirror":
            regions.append(Region(PARTNER[region].upper()))
        for r in regions:
            config = settings.client_config(r)
            assert config["security.protocol"] == "SASL_SSL"
            assert config["sasl.username"] and config["sasl.password"]
            assert config["ssl.ca.location"].startswith("/etc/batteryloop/")
        spec = workload["spec"]["template"]["spec"]
        # Service links would add BATTERYLOOP_KAFKA_BOOTSTRAP_PORT etc., read as properties
        assert spec["enableServiceLinks"] is False, workload["metadata"]["name"]


def test_ports_services_and_service_monitors_agree(rendered: tuple[str, list[Resource]]) -> None:
    region, resources = rendered
    services = of_kind(resources, "Service")
    monitors = of_kind(resources, "ServiceMonitor")
    for workload, container in batteryloop_containers(resources):
        name = workload["metadata"]["name"]
        args = parse(command_line(workload, container, resources), name)
        endpoint = http_endpoint(args)
        assert endpoint is not None
        host, port = endpoint
        assert host == "0.0.0.0", f"{name} binds {host}"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert list(ports.values()) == [port], f"{name}: container ports {ports}, serves {port}"
        labels = workload["spec"]["template"]["metadata"]["labels"]
        (service,) = [s for s in services if s["spec"]["selector"].items() <= labels.items()]
        service_ports = {p["name"] for p in service["spec"]["ports"] if p["targetPort"] in ports}
        assert service_ports, f"{name}: its Service does not reach port {port}"
        (monitor,) = [
            m
            for m in monitors
            if m["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        ]
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
        assert all(e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] in ports, f"{name} {probe}"


def test_references_resolve(rendered: tuple[str, list[Resource]]) -> None:
    region, resources = rendered
    (kafka,) = of_kind(resources, "Kafka")
    cluster = kafka["metadata"]["name"]
    generated = {u["metadata"]["name"] for u in of_kind(resources, "KafkaUser")}
    generated.add(f"{cluster}-cluster-ca-cert")
    secrets = set()
    for workload in workloads(resources):
        spec = workload["spec"]["template"]["spec"]
        secrets |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        for container in spec["containers"]:
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secrets.add(ref["name"])
    assert secrets - generated == HAND_MADE_SECRETS
    for resource in resources:
        if resource["kind"].startswith("Kafka") and resource["kind"] != "Kafka":
            assert resource["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    maps = of_kind(resources, "ConfigMap")
    (data,) = [m["data"] for m in maps if m["metadata"]["name"].startswith("batteryloop-settings")]
    (tls,) = [lis for lis in kafka["spec"]["kafka"]["listeners"] if lis["type"] == "internal"]
    local = f"BATTERYLOOP_{region.upper()}_BOOTSTRAP"
    assert data[local] == f"{cluster}-kafka-bootstrap:{tls['port']}"
    assert data[f"BATTERYLOOP_{PARTNER[region].upper()}_BOOTSTRAP"] != data[local]


def test_kafka_topics_are_the_registry(rendered: tuple[str, list[Resource]]) -> None:
    region, resources = rendered
    have = {t["spec"]["topicName"]: t["spec"] for t in of_kind(resources, "KafkaTopic")}
    want = {s.name: kafka_topic(s)["spec"] for s in registry_topics(region)}
    assert have == want


def test_the_dashboard_config_map_is_the_compose_dashboard(
    rendered: tuple[str, list[Resource]],
) -> None:
    region, resources = rendered
    (dashboard,) = [
        m for m in of_kind(resources, "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]
    ]
    text = (DEPLOY / "grafana/dashboards/batteryloop.json").read_text()
    assert dashboard["data"] == {"batteryloop.json": text}
