"""The OpenAPI contract: generated (never edited), valid, and what the live server does."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from docgen.openapi import CONTRACT, EXAMPLE_PNG, PATH, contract_text, openapi
from handler.settings import ServerSettings
from nst.params import StyleParams
from tests.live_server import TEST_MODEL_CONFIG

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "nst_server/resources/examples"


def test_the_committed_contract_is_the_generated_one():
    assert CONTRACT.read_text() == contract_text(), "run `make docs` and commit docs/openapi.yaml"


def test_the_contract_is_valid_openapi_3_1():
    spec = yaml.safe_load(CONTRACT.read_text())
    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_every_parameter_is_in_both_bodies_with_the_servers_range():
    spec = yaml.safe_load(contract_text(TEST_MODEL_CONFIG))
    body = spec["paths"][PATH]["post"]["requestBody"]["content"]
    form = body["multipart/form-data"]["schema"]["properties"]
    params = spec["components"]["schemas"]["Params"]["properties"]
    for f in dataclasses.fields(StyleParams):
        assert f.name in form and f.name in params, f.name
        assert params[f.name]["description"].startswith(f.metadata["help"])
    handler = TEST_MODEL_CONFIG["handler"]
    assert params["size"]["maximum"] == form["size"]["maximum"] == handler["max_size"]
    assert params["steps"]["default"] == handler["defaults"]["steps"]
    styles = [name for name in form if name.startswith("style_") and name[6:].isdigit()]
    assert len(styles) == handler["max_styles"] - 1
    assert form["optimizer"]["enum"] == ["lbfgs", "adam"]


def fuzz_contract(tmp_path: Path, bounded: bool) -> Path:
    """The test server's contract; ``bounded``: with small maxima, so that every request
    it allows is quick (then only valid requests may be generated from it). Unbounded (for
    requests that break the contract), JSON bodies only: TorchServe's frontend keeps the last
    of repeated multipart fields, so a list sent as repeated fields reaches the handler as
    one valid value, which no handler can refuse (tests/handler/test_server.py sends bad
    multipart requests of its own)."""
    description = ServerSettings.from_model_config(TEST_MODEL_CONFIG).describe()
    if bounded:
        for name, hi in {"size": 48, "steps": 3, "levels": 2, "style_scale": 1.5}.items():
            description["parameters"][name]["maximum"] = hi
        description["parameters"]["preset"]["choices"] = ["none"]  # presets set many steps
    contract = openapi(description)
    # The KServe routes are checked with their own clients (tests/handler/test_kserve.py).
    contract["paths"] = {PATH: contract["paths"][PATH]}
    if not bounded:
        body = contract["paths"]["/predictions/style_transfer"]["post"]["requestBody"]
        body["content"].pop("multipart/form-data")
    path = tmp_path / f"contract-{'bounded' if bounded else 'full'}.yaml"
    path.write_text(yaml.safe_dump(contract))
    return path


CONFORMANCE = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, checks",
    [
        ("positive", CONFORMANCE),
        ("negative", CONFORMANCE + ",negative_data_rejection"),
    ],
)
def test_fuzzing_the_live_server_from_the_contract(server, tmp_path, mode, checks):
    """schemathesis: examples, boundary values and random requests. Requests the contract
    allows (bounded to small sizes): no 5xx, every status, content type, header and JSON
    body as the contract says. Requests that break it: refused with a 4xx."""
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            str(fuzz_contract(tmp_path, bounded=mode == "positive")),
            "--url",
            server.inference,
            "--mode",
            mode,
            "--checks",
            checks,
            "--max-examples",
            "20",
            "--seed",
            "7",
            "--request-timeout",
            "60",
            "--generation-database",
            "none",
            "--no-color",
            "--workers",
            "4",  # the test server's batchSize: batches fill instead of waiting maxBatchDelay
            "--phases",
            "examples,fuzzing",  # the coverage phase's hundreds of cases: minutes here
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    assert "Test cases:" in summary and " generated" in summary


def test_a_stream_matches_the_contracts_line_schema(server):
    spec = yaml.safe_load(CONTRACT.read_text())
    registry = Registry().with_resource(
        "urn:contract", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    line_schema = Draft202012Validator(
        {"$ref": "urn:contract#/components/schemas/StreamLine"}, registry=registry
    )
    reply = requests.post(
        server.predict_url,
        files={
            "content": (IMAGES / "astronaut.jpg").read_bytes(),
            "style": base64.b64decode(EXAMPLE_PNG),
        },
        data={"size": "32", "steps": "4", "preview_every": "1", "stream": "true"},
        timeout=120,
    )
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(raw) for raw in reply.iter_lines() if raw]
    for line in lines:
        line_schema.validate(line)
    assert lines[-1]["type"] == "result"
