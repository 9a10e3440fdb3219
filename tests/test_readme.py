"""The README documents what the code declares."""

import dataclasses
from pathlib import Path

import yaml

from handler.metrics import METRICS
from handler.settings import ServerSettings
from nst.params import StyleParams

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_parameter_is_documented():
    for f in dataclasses.fields(StyleParams):
        assert f"| `{f.name}` |" in README, f.name


def test_every_limit_is_documented():
    for f in dataclasses.fields(ServerSettings):
        if f.name != "response_timeout_s":
            assert f"| `{f.name}` |" in README, f.name
    handler_block = yaml.safe_load((ROOT / "model-config.yaml").read_text())["handler"]
    assert set(handler_block) <= {f.name for f in dataclasses.fields(ServerSettings)}


def test_every_metric_is_documented():
    for name in METRICS:
        assert f"`{name}" in README, name


def test_readme_commands_are_make_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("serve", "stop", "test", "bench"):
        assert f"make {target}" in README
        assert f"\n{target}:" in makefile


def test_deploying_section_names_every_deploy_file():
    section = README[README.index("## Deploying") : README.index("## The engine")]
    deploy = ROOT / "deploy"
    for path in deploy.rglob("*"):
        if path.is_file() and path.name != "config.properties":
            assert path.name in section, f"deploy/{path.relative_to(deploy)} is not explained"
    assert "make image" in section and "kubectl apply -k deploy/" in section
