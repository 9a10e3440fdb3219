"""Kubernetes manifests: schema-valid (kubernetes-validate, strict) and consistent."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import nst_server.mar as build_mar

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.33.0"  # the oldest release our manifests promise to work with


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def kustomization() -> dict:
    return load(DEPLOY / "kustomization.yaml")


def manifests() -> list[dict]:
    """Every document of every file kustomization.yaml lists."""
    return [
        doc
        for name in kustomization()["resources"]
        for doc in yaml.safe_load_all((DEPLOY / name).read_text())
        if doc
    ]


def resources() -> dict[str, dict]:
    """kind -> the server's manifest of that kind (named style-transfer, else the first)."""
    found: dict[str, dict] = {}
    for doc in manifests():
        if doc["kind"] not in found or doc["metadata"]["name"] == "style-transfer":
            found[doc["kind"]] = doc
    return found


def generated_configmap() -> dict:
    """The ConfigMap kustomize's configMapGenerator makes (before its hash suffix)."""
    generator = kustomization()["configMapGenerator"][0]
    data = {Path(f).name: (DEPLOY / f).read_text() for f in generator["files"]}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": generator["name"]},
        "data": data,
    }


def container() -> dict:
    return resources()["Deployment"]["spec"]["template"]["spec"]["containers"][0]


CORE_KINDS = (
    "Namespace",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
)


@pytest.mark.parametrize("kind", CORE_KINDS)
def test_core_manifest_is_schema_valid(kind):
    manifest = resources()[kind]
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    kubernetes_validate.validate(manifest, kubernetes_validate.utils.latest_version(), strict=True)


@pytest.mark.parametrize(
    "manifest",
    [doc for doc in manifests() if doc["kind"] in CORE_KINDS],
    ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}",
)
def test_every_core_manifest_is_schema_valid(manifest):
    """The jobs' Redis and its policy too, beside the server's (custom resources such as
    the ServiceMonitor have their own checks)."""
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_the_jobs_api_is_served_and_reaches_its_redis():
    """Port 8085 in the pod, the Service and the Ingress; the store is the Redis Service the
    manifests run, and the network policies let only the server pods reach it."""
    by_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in manifests()}
    server = container()
    assert {"name": "jobs", "containerPort": 8085} in server["ports"]
    env = {e["name"]: e.get("value") for e in server["env"]}
    redis_service = by_name[("Service", "style-transfer-redis")]
    port = redis_service["spec"]["ports"][0]["port"]
    assert env["NST_JOBS_STORE"] == f"redis://style-transfer-redis:{port}/0"
    assert "jobs" in {p["name"] for p in resources()["Service"]["spec"]["ports"]}
    paths = resources()["Ingress"]["spec"]["rules"][0]["http"]["paths"]
    assert any(p["path"] == "/v1/jobs" and p["backend"]["service"]["port"]["name"] == "jobs"
               for p in paths)  # fmt: skip
    egress = by_name[("NetworkPolicy", "style-transfer")]["spec"]["egress"]
    assert egress[0]["ports"] == [{"port": port, "protocol": "TCP"}]
    admitted = by_name[("NetworkPolicy", "style-transfer-redis")]["spec"]["ingress"][0]
    assert admitted["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "style-transfer"
    }


def test_generated_configmap_is_schema_valid():
    kubernetes_validate.validate(generated_configmap(), K8S_VERSION, strict=True)


def test_validator_rejects_a_broken_deployment():
    broken = copy.deepcopy(resources()["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_every_referenced_file_exists():
    for name in kustomization()["resources"]:
        assert (DEPLOY / name).is_file(), name
    for name in kustomization()["configMapGenerator"][0]["files"]:
        assert (DEPLOY / name).is_file(), name


def test_deployment_asks_for_a_gpu_and_bounded_cpu_and_memory():
    res = container()["resources"]
    assert res["limits"]["nvidia.com/gpu"] == 1 == res["requests"]["nvidia.com/gpu"]
    for kind in ("cpu", "memory"):
        assert kind in res["requests"] and kind in res["limits"]


def test_probes_use_the_healthcheck_script():
    c = container()
    assert c["readinessProbe"]["exec"]["command"][-1] == "ready"
    assert c["startupProbe"]["exec"]["command"][-1] == "ready"
    assert c["livenessProbe"]["exec"]["command"][-1] == "live"
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        assert "/opt/nst/scripts/healthcheck.py" in c[probe]["exec"]["command"]


def test_termination_outlasts_the_longest_job():
    """preStop drains for longer than a job may run; the grace period covers the drain."""
    merged = build_mar.model_config(
        ROOT / "nst_server/resources/model-config.yaml", DEPLOY / "k8s/model-overrides.yaml"
    )
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[2] == "drain"
    drain_s = float(command[command.index("--timeout") + 1])
    grace_s = resources()["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert merged["responseTimeout"] < drain_s < grace_s


def test_configmap_and_secret_are_mounted_where_the_env_points():
    c = container()
    spec = resources()["Deployment"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert volumes["config"]["configMap"]["name"] == generated_configmap()["metadata"]["name"]
    for var, key in (
        ("TS_CONFIG_FILE", "config.properties"),
        ("NST_MODEL_OVERRIDE", "model-overrides.yaml"),
    ):
        assert env[var] == f"{mounts['config']}/{key}"
        assert key in generated_configmap()["data"]
    assert "secretName" in volumes["api-keys"]["secret"]
    assert env["NST_API_KEYS_FILE"].startswith(mounts["api-keys"] + "/")
    assert env["TS_DISABLE_TOKEN_AUTHORIZATION"] == "true"  # replaced by the Secret's keys
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    for writable in ("/home/model-server/run", "/home/model-server/logs", "/tmp"):
        assert writable in mounts.values()


def test_service_monitor_hpa_pdb_and_policy_point_at_the_pods():
    r = resources()
    labels = r["Deployment"]["spec"]["template"]["metadata"]["labels"]
    containers = r["Deployment"]["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for c in containers for p in c["ports"]}
    assert 8081 not in ports.values()
    service_ports = {p["name"] for p in r["Service"]["spec"]["ports"]}
    assert service_ports <= set(ports)
    for selector in (
        r["Service"]["spec"]["selector"],
        r["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        r["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    allowed = {p["port"] for rule in r["NetworkPolicy"]["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == {8080, 8082, 8083, 8085, 8090}  # never the management port
    target = r["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", r["Deployment"]["metadata"]["name"])
    annotations = r["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    # The annotated port is the one that serves every series (histograms + TorchServe's).
    assert int(annotations["prometheus.io/port"]) == ports["histograms"]
    monitored = [e["port"] for e in r["ServiceMonitor"]["spec"]["endpoints"]]
    assert monitored == ["histograms"]  # one scrape per pod: no series counted twice


def test_hpa_metric_is_the_one_the_adapter_rule_serves():
    hpa = resources()["HorizontalPodAutoscaler"]
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    rules = load(DEPLOY / "k8s/prometheus-adapter.yaml")["rules"]["custom"]
    assert metric in {rule["name"]["as"] for rule in rules}


def test_service_monitor_crd_has_required_fields():
    monitor = resources()["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= resources()["Service"]["metadata"]["labels"].items()
    )
    service_ports = {p["name"] for p in resources()["Service"]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports and endpoint["path"] == "/metrics"


def test_kserve_inference_service_has_required_fields():
    isvc = load(DEPLOY / "kserve/inferenceservice.yaml")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService" and isvc["metadata"]["name"]
    predictor = isvc["spec"]["predictor"]
    (serving,) = predictor["containers"]
    assert serving["name"] == "kserve-container"  # the name KServe routes to
    assert serving["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert serving["ports"][0]["containerPort"] == 8080
    merged = build_mar.model_config(ROOT / "nst_server/resources/model-config.yaml", None)
    assert predictor["timeout"] > merged["responseTimeout"]
    # Its container part is a core Container: validate it inside a Pod.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kserve-check"},
        "spec": {"containers": predictor["containers"], "volumes": predictor["volumes"]},
    }
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_kserve_predictor_has_the_deployments_protections():
    """Drain, grace period, non-root, read-only root filesystem with the same writable
    mounts: the KServe path is as protected as the Deployment, with its own NetworkPolicy."""
    predictor = load(DEPLOY / "kserve/inferenceservice.yaml")["spec"]["predictor"]
    pod = resources()["Deployment"]["spec"]["template"]["spec"]
    (serving,) = predictor["containers"]
    for key in ("terminationGracePeriodSeconds", "securityContext", "automountServiceAccountToken"):
        assert predictor[key] == pod[key], key
    for key in ("lifecycle", "securityContext", "livenessProbe", "startupProbe", "readinessProbe"):
        assert serving[key] == container()[key], key
    mounts = {m["mountPath"] for m in serving["volumeMounts"]}
    assert {"/home/model-server/run", "/home/model-server/logs", "/tmp"} <= mounts
    policy = load(DEPLOY / "kserve/networkpolicy.yaml")
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": load(DEPLOY / "kserve/inferenceservice.yaml")[
            "metadata"
        ]["name"]
    }
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == {8080, 8082, 8083}


def test_ingress_authenticates_limits_and_outlasts_the_deadline():
    r = resources()
    ingress = r["Ingress"]
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    merged = build_mar.model_config(
        ROOT / "nst_server/resources/model-config.yaml", DEPLOY / "k8s/model-overrides.yaml"
    )
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(notes[prefix + timeout]) > merged["responseTimeout"]
    props = dict(
        line.split("=", 1)
        for line in (DEPLOY / "config.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert int(notes[prefix + "proxy-body-size"].rstrip("m")) * 2**20 == int(
        props["max_request_size"]
    )
    assert int(notes[prefix + "limit-rps"]) > 0
    # auth-url: the Service's auth port, served by the pod's auth sidecar.
    service = r["Service"]
    url = notes[prefix + "auth-url"]
    host = f"{service['metadata']['name']}.{r['Namespace']['metadata']['name']}.svc"
    auth_port = next(p for p in service["spec"]["ports"] if p["name"] == "auth")
    assert url.startswith(f"http://{host}") and f":{auth_port['port']}/" in url
    containers = r["Deployment"]["spec"]["template"]["spec"]["containers"]
    sidecar = next(c for c in containers if c["name"] == "auth")
    assert "scripts/auth_gate.py" in " ".join(sidecar["command"])
    assert {e["name"]: e["value"] for e in sidecar["env"]}["NST_API_KEYS_FILE"] == {
        e["name"]: e["value"] for e in container()["env"]
    }["NST_API_KEYS_FILE"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
