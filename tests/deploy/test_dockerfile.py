"""The Dockerfile read statically: hadolint-clean, non-root, model-ready health check, build
arguments for other bases and air-gapped builds, same steps as the scripts.

The image itself is built and run by tests/image/ (make test-image) on a Debian base; these
checks also cover what that build cannot: the GPU default base image.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.deploy.dockerfile import instructions

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).with_name("hadolint")


def hadolint(dockerfile: str) -> list[dict]:
    result = subprocess.run(
        [str(HADOLINT), "--format", "json", "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(result.stdout or "[]")


def test_hadolint_finds_nothing():
    assert hadolint((ROOT / "Dockerfile").read_text()) == []


def test_every_hadolint_ignore_is_justified_and_still_needed():
    text = (ROOT / "Dockerfile").read_text()
    ignores = re.findall(r"# hadolint ignore=(\S+)", text)
    assert ignores, "the apt-get line needs its DL3008 ignore"
    for rule in ignores:
        assert re.search(rf"{rule} \(.+\) is ignored on purpose", text), f"{rule}: say why"
        findings = hadolint(text.replace(f"# hadolint ignore={rule}", ""))
        assert rule in {f["code"] for f in findings}, f"{rule} no longer needed"


def test_runs_as_a_numeric_non_root_user():
    users = [args for keyword, args in instructions() if keyword == "USER"]
    assert users, "no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so Kubernetes can verify runAsNonRoot
    deployment = (ROOT / "deploy/k8s/deployment.yaml").read_text()
    assert f"runAsUser: {uid}" in deployment


def test_health_check_means_model_ready_and_entrypoint_is_the_tested_script():
    pairs = instructions()
    health = [args for keyword, args in pairs if keyword == "HEALTHCHECK"]
    assert len(health) == 1 and "scripts/healthcheck.py" in health[0]
    assert health[0].endswith('"ready"]')
    entry = [args for keyword, args in pairs if keyword == "ENTRYPOINT"]
    assert entry == ['["/opt/nst/scripts/entrypoint.sh"]']


def test_image_installs_the_project_with_its_pins_and_uses_its_commands():
    runs = " ".join(args for keyword, args in instructions() if keyword == "RUN")
    assert "nst-fetch-weights" in runs  # official weights, hash-checked
    assert "nst-build-mar" in runs
    assert "-c constraints.txt -r" in runs and "--no-cache-dir" in runs  # every version pinned
    assert "--no-deps -c constraints.txt ." in runs
    base = [
        args
        for keyword, args in instructions()
        if keyword == "ARG" and args.startswith("BASE_IMAGE=")
    ]
    assert re.fullmatch(r"BASE_IMAGE=nvidia/cuda:\d+\.\d+\.\d+-\S+", base[0])  # pinned tag


def test_air_gapped_builds_supply_weights_and_pip_sources_as_build_arguments():
    args = {a.split("=")[0] for keyword, a in instructions() if keyword == "ARG"}
    assert {"WEIGHTS_FILE", "WEIGHTS_SHA256", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"} <= args
    assert {"PIP_FIND_LINKS", "PIP_CERT"} <= args
    weights = next(a for keyword, a in instructions() if "nst-fetch-weights" in a)
    assert "--mount=type=bind,source=image-weights," in weights  # mounted, never a layer
    assert '--from "/tmp/image-weights/$WEIGHTS_FILE"' in weights
    assert '--sha256 "$WEIGHTS_SHA256"' in weights
    assert (ROOT / "image-weights/README.md").is_file()  # the mount's source always exists


def test_only_inference_jobs_and_metrics_ports_are_exposed():
    exposed = [args for keyword, args in instructions() if keyword == "EXPOSE"]
    assert exposed == ["8080 8082 8083 8085"]  # management stays on loopback in the container


def test_build_context_leaves_out_secrets_weights_and_local_state():
    ignore = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ignore[0] == "*", "an allow-list: everything out, then what the image needs"
    assert "**/key_file.json" in ignore
    allowed = [line[1:] for line in ignore if line.startswith("!")]
    used = " ".join(args for keyword, args in instructions() if keyword in ("COPY", "RUN"))
    for path in allowed:
        assert path.rstrip("/") in used, f"{path} is in the context but never used"
    for secret in ("key_file.json", ".venv", "model_store", "logs", "weights"):
        assert not any(path.startswith(secret) for path in allowed)
