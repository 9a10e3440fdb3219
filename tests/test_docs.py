"""README and docs/ say what the code declares."""

import dataclasses
import re
from pathlib import Path

import yaml

from docgen.api_tables import markdown_table, preset_table
from handler.histograms import JobHistograms
from handler.metrics import METRICS
from handler.settings import ServerSettings
from nst.params import StyleParams

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
API = (ROOT / "docs/api.md").read_text()
DEPLOY = (ROOT / "docs/deploy.md").read_text()


def test_readme_fits_on_a_page():
    assert len(README.encode()) < 8 * 1024


def test_the_parameter_table_is_the_one_the_code_generates():
    start = API.index("<!-- parameters:")
    table = API[API.index("\n", start) + 1 : API.index("<!-- end of parameters -->")]
    assert table == markdown_table(), "run `make docs`"
    for f in dataclasses.fields(StyleParams):
        assert f"| `{f.name}` |" in table, f.name
    start = API.index("<!-- presets:")
    presets = API[API.index("\n", start) + 1 : API.index("<!-- end of presets -->")]
    assert presets == preset_table(), "run `make docs`"


def test_every_limit_is_documented_with_its_default():
    for f in dataclasses.fields(ServerSettings):
        if f.name == "response_timeout_s":
            continue
        row = re.search(rf"^\| `{f.name}` \| ([^|]+) \|", API, re.M)
        assert row, f.name
        if isinstance(f.default, int | float) and not isinstance(f.default, bool):
            shown = row.group(1).strip().replace(",", "")
            assert float(shown) == f.default, (f.name, shown, f.default)
    handler_block = yaml.safe_load((ROOT / "nst_server/resources/model-config.yaml").read_text())[
        "handler"
    ]
    assert set(handler_block) <= {f.name for f in dataclasses.fields(ServerSettings)}


def test_every_metric_is_documented():
    histograms = [family.name for family in JobHistograms().registry.collect()]
    assert len(histograms) == 4
    for name in [*METRICS, *histograms]:
        assert f"`{name}" in DEPLOY, name


def test_every_alert_has_a_runbook_line():
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    alerts = [r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r]
    runbook = DEPLOY[DEPLOY.index("## Objectives and alerts") : DEPLOY.index("## Logs")]
    assert len(alerts) >= 7
    for alert in alerts:
        assert f"| `{alert}`" in runbook, alert


def test_readme_commands_are_make_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("serve", "stop", "test", "bench", "weights", "docs", "test-image"):
        assert f"make {target}" in README
    for doc in (README, DEPLOY):
        for target in set(re.findall(r"`make ([a-z-]+)", doc)):
            assert f"\n{target}:" in makefile, f"make {target} is no Makefile target"


def test_console_scripts_are_in_the_readme():
    scripts = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("[")[0]
    for name in re.findall(r"^([a-z-]+) =", scripts, re.M):
        assert f"`{name}" in README, name


def test_deploying_section_names_every_deploy_file():
    section = DEPLOY[DEPLOY.index("## Deploying") : DEPLOY.index("## Metrics")]
    deploy = ROOT / "deploy"
    for path in deploy.rglob("*"):
        if path.is_file() and path.name != "config.properties":
            assert path.name in section, f"deploy/{path.relative_to(deploy)} is not explained"
    assert "make image" in section and "kubectl apply -k deploy/" in section


def test_docs_links_point_at_files_that_exist():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), (doc.name, target)
