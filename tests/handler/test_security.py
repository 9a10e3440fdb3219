"""Secure defaults: what each config exposes, token auth for deployments, no inputs or
secrets on disk."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import time
from pathlib import Path

import requests
from PIL import Image, PngImagePlugin

import nst_server.control as control
from tests.conftest import STYLE
from tests.live_server import write_loopback_config

ROOT = Path(__file__).resolve().parents[2]


def props(name: str) -> dict[str, str]:
    return control.read_properties(ROOT / name)


def test_local_config_listens_on_loopback_only_without_model_api():
    local = props("nst_server/resources/config.properties")
    for key in ("inference_address", "management_address", "metrics_address"):
        assert local[key].startswith("http://127.0.0.1:"), key
    assert local["enable_model_api"] == "false"


def test_deployment_config_uses_the_handlers_keys_and_a_private_management_api():
    """TorchServe's own tokens expire after 60 min and differ per process: the deployment
    turns them off and the handler checks the keys file (tests/scripts/test_entrypoint.py)."""
    deploy = props("deploy/config.properties")
    assert deploy["disable_token_authorization"] == "true"
    assert deploy["management_address"].startswith("http://127.0.0.1:")
    assert deploy["enable_model_api"] == "false"
    assert deploy["allowed_urls"].startswith("file://") and "model-store" in deploy["allowed_urls"]


def test_token_auth_is_enforced_with_the_deployment_settings(tmp_path):
    """A real TorchServe with token auth on: no key, no answer; the key file stays in its
    working directory, outside the project tree."""
    config = tmp_path / "config.properties"
    inference = write_loopback_config(
        config, [f"model_store={tmp_path}", "enable_model_api=false"]
    )["inference"]
    run_dir = tmp_path / "run"
    env = control.server_env(run_dir, tmp_path / "logs")
    subprocess.run(
        [
            str(control.VENV_BIN / "torchserve"),
            "--start",
            "--ncs",
            "--ts-config",
            str(config),
            "--model-store",
            str(tmp_path),
        ],
        env=env,
        cwd=run_dir,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        key_file = run_dir / "key_file.json"
        deadline = time.monotonic() + 60
        keys = None
        while keys is None and time.monotonic() < deadline:
            try:  # TorchServe creates the file, then writes it: wait for whole JSON
                keys = json.loads(key_file.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.5)
        assert keys is not None, "no key_file.json after 60 s"
        url = f"http://127.0.0.1:{inference}/ping"
        for _ in range(60):
            try:
                anonymous = requests.get(url, timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert anonymous.status_code in (400, 401)  # TorchServe answers 400 without a token
        token = keys["inference"]["key"]
        assert (
            requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code
            == 200
        )
        assert not (ROOT / "key_file.json").exists()
    finally:
        control.stop(run_dir)


def test_uploads_and_tokens_never_reach_the_disk(server):
    marker = secrets.token_hex(16)
    info = PngImagePlugin.PngInfo()
    info.add_text("marker", marker)
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(buffer, format="PNG", pnginfo=info)
    token = f"secret-{secrets.token_hex(8)}"
    reply = requests.post(
        server.predict_url,
        files={"content": buffer.getvalue(), "style": (STYLE / "shipwreck.jpg").read_bytes()},
        data={"size": "32", "steps": "1"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert reply.status_code == 200
    base = server.log_dir.parent  # the server's run dir, TMPDIR, logs and model store
    for path in base.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            data = path.read_bytes()
            assert marker.encode() not in data, path
            assert token.encode() not in data, path
