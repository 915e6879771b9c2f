"""The operational files: Kubernetes manifests, Prometheus alerts, the Grafana dashboard.

They are checked with the real tools (kubectl kustomize, promtool) where the machine has them
(.ci/run installs them), and against the metrics the relay really exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from relay.cli import build_parser
from relay.observability.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
PROMQL_WORDS = {
    "sum",
    "by",
    "rate",
    "increase",
    "min",
    "max",
    "and",
    "or",
    "histogram_quantile",
    "clamp_min",
    "le",
    "job",
    "up",
    "on",
    "without",
    "stage",
    "status",
    "kind",
    "reason",
    "error_class",
    "endpoint",
}


def exported_metric_names() -> set[str]:
    names = set()
    for metric in Metrics().registry.collect():
        names |= {metric.name + suffix for suffix in SUFFIXES.get(metric.type, ("",))}
    return names


def metric_names_in(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    return {w for w in re.findall(r"[a-z_][a-z0-9_]*", expr) if w.startswith("relay_")}


def kustomize(path: Path) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (.ci/run installs it)")
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_alert_and_dashboard_queries_use_only_exported_metrics() -> None:
    exported = exported_metric_names()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((ROOT / "grafana" / "conversion-relay.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(metric_names_in(e) for e in exprs))
    assert used, "no relay metric referenced"
    assert used <= exported, f"not exported by the relay: {sorted(used - exported)}"


def test_dashboard_panels_have_unique_ids_and_layout() -> None:
    dashboard = json.loads((ROOT / "grafana" / "conversion-relay.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["targets"] and p["gridPos"]["w"] > 0 for p in dashboard["panels"])


def test_promtool_checks_and_unit_tests_the_alerts() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (.ci/run installs it)")
    folder = DEPLOY / "prometheus"
    subprocess.run(
        [promtool, "check", "rules", "alerts.yaml"], cwd=folder, check=True, capture_output=True
    )
    result = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yaml"], cwd=folder, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("overlay", ["base", "overlays/split-stages"])
def test_manifests_build_and_match_the_command_line(overlay: str) -> None:
    docs = kustomize(DEPLOY / overlay)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert deployments
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    port = int(configmap["data"]["RELAY_HTTP_PORT"])
    selectors = []
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        args = build_parser().parse_args(container["args"])
        assert args.command == "run"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["ports"][0]["containerPort"] == port
        # SIGTERM drains for RELAY_SHUTDOWN_GRACE_S; Kubernetes must wait longer than that.
        assert pod["terminationGracePeriodSeconds"] > float(
            configmap["data"]["RELAY_SHUTDOWN_GRACE_S"]
        )
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        match = deployment["spec"]["selector"]["matchLabels"]
        assert match.items() <= labels.items()
        selectors.append(match)
    for i, a in enumerate(selectors):  # no Deployment may adopt another's pods
        for b in selectors[i + 1 :]:
            assert not (a.items() <= b.items() or b.items() <= a.items())
