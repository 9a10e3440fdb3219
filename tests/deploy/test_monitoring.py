"""Prometheus and Grafana: promtool checks, and a real Prometheus scraping the real server.

Needs Debian's ``prometheus`` package (``make test`` installs it when missing).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CONTENT, STYLE
from tests.live_server import free_ports

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy/prometheus"
DASHBOARD = ROOT / "deploy/grafana/style-transfer.json"
ADAPTER = ROOT / "deploy/k8s/prometheus-adapter.yaml"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: make test installs Debian's prometheus package"
    return path


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_promtool_accepts_the_example_config_and_rules():
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", "rules.yml")):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_kubernetes_scrape_config(tmp_path):
    """Debian builds Prometheus without Kubernetes discovery: swap it for a static target and
    check everything else (the relabelling) with promtool."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus-kubernetes.yml").read_text())
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")[0]["role"] == "pod"
        job["static_configs"] = [{"targets": ["127.0.0.1:8082"]}]
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_on_synthetic_series():
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_tests_can_fail(tmp_path):
    """The rule tests are not vacuous: a wrong expected value is reported."""
    tests = (PROMETHEUS_DIR / "rules_test.yml").read_text().replace("value: 100", "value: 99")
    (tmp_path / "rules_test.yml").write_text(tests)
    shutil.copy(PROMETHEUS_DIR / "rules.yml", tmp_path)
    assert promtool("test", "rules", "rules_test.yml", cwd=tmp_path).returncode == 1


class Prometheus:
    """A real Prometheus on a free loopback port, scraping its targets every second."""

    def __init__(self, base: Path, targets: list[str]):
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(PROMETHEUS_DIR / "rules.yml")],
            "scrape_configs": [
                {"job_name": "style-transfer", "static_configs": [{"targets": targets}]}
            ],
        }
        (base / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (base / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={base / 'prometheus.yml'}",
                f"--storage.tsdb.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def query(self, expr: str) -> list[dict]:
        reply = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = reply.json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = self.query(expr)
                if result:
                    return result
            except requests.RequestException:
                pass
            time.sleep(0.5)
        pytest.fail(f"no samples for {expr} after {timeout:.0f} s")

    def metric_names(self) -> set[str]:
        return set(
            requests.get(f"{self.url}/api/v1/label/__name__/values", timeout=10).json()["data"]
        )

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(server, tmp_path_factory):
    """Prometheus scraping the session's TorchServe, after one real request."""
    with open(CONTENT / "astronaut.png", "rb") as c, open(STYLE / "starry_night.jpg", "rb") as s:
        reply = requests.post(
            server.predict_url,
            files={"content": c, "style": s},
            data={"size": "64", "steps": "3"},
            timeout=120,
        )
    assert reply.status_code == 200
    # The one port a pod's prometheus.io/port annotation names: every series must be there.
    targets = [server.histograms.removeprefix("http://")]
    instance = Prometheus(tmp_path_factory.mktemp("prometheus"), targets)
    try:
        up = instance.wait_for('up{job="style-transfer"} == 1')
        deadline = time.monotonic() + 30
        while len(up) < len(targets) and time.monotonic() < deadline:
            time.sleep(0.5)
            up = instance.query('up{job="style-transfer"} == 1')
        assert len(up) == len(targets), up
        yield instance
    finally:
        instance.close()


def test_prometheus_ingests_the_handlers_metrics_after_a_request(prometheus):
    ok = prometheus.wait_for('nst_jobs_total{job="style-transfer",outcome="ok"}')
    assert float(ok[0]["value"][1]) >= 1
    steps = prometheus.wait_for("nst_optimization_steps_total")
    assert float(steps[0]["value"][1]) >= 3
    assert prometheus.wait_for("ts_inference_requests_total")
    assert prometheus.wait_for("nst_final_style_loss")


def test_the_annotated_port_alone_carries_torchserves_series(prometheus):
    up = prometheus.wait_for("nst_torchserve_metrics_up == 1")
    assert len(up) == 1
    assert prometheus.wait_for('ts_inference_requests_total{job="style-transfer"}')
    assert prometheus.wait_for('Requests2XX{job="style-transfer"}')


def test_the_histograms_are_scraped_with_their_buckets(prometheus):
    buckets = prometheus.wait_for('nst_job_seconds_bucket{outcome="ok",size_class="256"}')
    bounds = sorted(float(b["metric"]["le"]) for b in buckets)
    assert bounds[0] <= 0.25 and bounds[-2] >= 300 and bounds[-1] == float("inf")
    assert prometheus.wait_for('nst_job_steps_count{outcome="ok"} >= 1')
    assert prometheus.wait_for("nst_batch_fill_ratio_count >= 1")


# TorchServe's own metrics break Prometheus' naming rules in ways this project cannot change
# (CamelCase names such as Requests2XX, counters without _total), and TorchServe adds its
# CamelCase labels to every metric a handler emits through it.
TORCHSERVE_METRICS = {
    m["name"]
    for kind in yaml.safe_load((ROOT / "nst_server/resources/metrics.yaml").read_text())[
        "ts_metrics"
    ].values()
    for m in kind
}
TORCHSERVE_LABELS = {"ModelName", "Level", "Hostname"}


def torchserve_finding(finding: str, scrape: str) -> bool:
    """A promtool finding caused by TorchServe: one of its metrics, or CamelCase label names
    that are all TorchServe's own."""
    name = finding.split(" ", 1)[0]
    if name in TORCHSERVE_METRICS:
        return True
    if "label names should be written in 'snake_case'" not in finding:
        return False
    labels = {
        label
        for family in text_string_to_metric_families(scrape)
        if family.name == name or f"{family.name}_total" == name
        for sample in family.samples
        for label in sample.labels
    }
    return {label for label in labels if label != label.lower()} <= TORCHSERVE_LABELS


def test_promtool_finds_nothing_in_our_metrics_on_a_real_scrape(server, prometheus):
    prometheus.wait_for('nst_jobs_total{outcome="ok"}')
    for text in (server.metrics_text(), server.histograms_text()):
        result = subprocess.run(
            [tool("promtool"), "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
        )
        findings = [line for line in (result.stdout + result.stderr).splitlines() if line]
        ours = [f for f in findings if not torchserve_finding(f, text)]
        assert ours == [], "\n".join(ours)


def test_recording_rules_evaluate_on_real_series(prometheus):
    for record in (
        "nst:requests:rate5m",
        "nst:queue_latency_seconds:avg5m",
        "nst:inference_latency_seconds:avg5m",
        "nst:job_seconds:p95_5m",
        "nst:job_failed:ratio_rate5m",
    ):
        prometheus.wait_for(record, timeout=30)


def metric_names_in(expr: str) -> set[str]:
    """Metric names an expression selects (words followed by ``{``)."""
    return set(re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\{", expr))


def test_adapter_rule_query_runs_on_real_series(prometheus):
    rule = yaml.safe_load(ADAPTER.read_text())["rules"]["custom"][0]
    query = (
        rule["metricsQuery"]
        .replace("<<.LabelMatchers>>", 'job="style-transfer"')
        .replace("<<.GroupBy>>", "job")
    )
    series = rule["seriesQuery"].split("{")[0]
    assert series in prometheus.metric_names()
    result = prometheus.wait_for(query, timeout=30)
    assert float(result[0]["value"][1]) >= 0


DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "panels": {
            "type": "array",
            "minItems": 5,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos", "targets", "datasource"],
                "properties": {
                    "id": {"type": "integer"},
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {k: {"type": "integer", "minimum": 0} for k in "hwxy"},
                    },
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["refId", "expr"],
                            "properties": {"expr": {"type": "string", "minLength": 1}},
                        },
                    },
                },
            },
        },
    },
}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_is_importable_json():
    board = dashboard()
    jsonschema.validate(board, DASHBOARD_SCHEMA)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))


def datasource_refs(node) -> list[dict]:
    """Every ``datasource`` object anywhere in the dashboard (panels, targets, variables)."""
    if isinstance(node, dict):
        found = [node["datasource"]] if isinstance(node.get("datasource"), dict) else []
        return found + [ref for value in node.values() for ref in datasource_refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in datasource_refs(item)]
    return []


def test_dashboard_provisions_as_a_file_with_a_datasource_variable():
    """File provisioning and the kube-prometheus-stack sidecar load the JSON as it is: no
    import step fills ``__inputs``. So the data source is a ``datasource`` variable (the
    user's default Prometheus, switchable), and every query names it."""
    text = DASHBOARD.read_text()
    board = json.loads(text)
    assert "__inputs" not in board and "${DS_" not in text
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    refs = datasource_refs(board)
    assert len(refs) > len(board["panels"])  # panels, their targets and the job variable
    assert all(ref == {"type": "prometheus", "uid": "${datasource}"} for ref in refs)
    # The ConfigMap the sidecar watches carries the same file.
    kustomization = yaml.safe_load((ROOT / "deploy/kustomization.yaml").read_text())
    (generated,) = [m for m in kustomization["configMapGenerator"] if "dashboard" in m["name"]]
    assert generated["files"] == ["grafana/style-transfer.json"]
    assert generated["options"]["labels"] == {"grafana_dashboard": "1"}


def test_dashboard_covers_the_main_views():
    titles = " ".join(p["title"].lower() for p in dashboard()["panels"])
    for view in (
        "outcome",
        "percentiles",
        "queue wait",
        "objective",
        "steps per second",
        "batch fill",
        "cache hit ratio",
        "deadline stops",
        "gpu memory",
    ):
        assert view in titles


def test_dashboard_queries_run_and_name_metrics_that_exist(server, prometheus):
    """Each name is ingested already, or exported with no sample yet: TorchServe lists a
    declared metric's TYPE before its first event (Requests5XX; GPU-only metrics on a CPU)."""
    prometheus.wait_for('nst_jobs_total{outcome="ok"}')
    prometheus.wait_for("nst_job_seconds_bucket")
    existing = prometheus.metric_names()
    exported = set(re.findall(r"^# TYPE (\S+) ", server.metrics_text(), re.MULTILINE))
    for panel in dashboard()["panels"]:
        answered = False
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$job", ".*")
            answered |= bool(prometheus.query(expr))  # parses and runs
            for name in metric_names_in(expr):
                assert name in existing or name in exported, (
                    f"{panel['title']}: {name} is not a metric the server exports"
                )
        # Real data after real requests, except where this CPU server has none to give.
        if panel["title"] not in ("GPU memory", "Deadline stops"):
            assert answered, f"{panel['title']}: no data"
