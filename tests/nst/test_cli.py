import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.conftest import CONTENT, STYLE

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nst", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_cli_writes_a_stylised_png(tmp_path, weights_path):
    out = tmp_path / "out.png"
    done = run_cli(
        str(CONTENT / "chelsea.png"),
        str(STYLE / "the_scream.jpg"),
        "-o",
        str(out),
        "--size",
        "64",
        "--steps",
        "5",
        "--weights",
        str(weights_path),
    )
    assert done.returncode == 0, done.stderr
    assert "5 steps" in done.stdout and "5/5" in done.stderr  # tqdm progress bar
    image = Image.open(out)
    assert image.format == "PNG" and image.size == (64, 43)


def test_cli_output_format_follows_the_suffix(tmp_path, weights_path):
    out = tmp_path / "out.jpg"
    done = run_cli(
        str(CONTENT / "chelsea.png"),
        str(STYLE / "the_scream.jpg"),
        str(STYLE / "shipwreck.jpg"),
        "-o",
        str(out),
        "--size",
        "32",
        "--steps",
        "2",
        "--style-weights",
        "1,2",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert Image.open(out).format == "JPEG"


def test_cli_takes_a_mask_and_a_style_loss(tmp_path, weights_path):
    mask = tmp_path / "mask.png"
    image = Image.new("RGB", (60, 40), (255, 255, 255))
    image.paste((0, 0, 0), (0, 0, 30, 40))
    image.save(mask)
    args = [str(CONTENT / "chelsea.png"), str(STYLE / "the_scream.jpg"), "--size", "48"]
    done = run_cli(*args, "-o", str(tmp_path / "out.png"), "--steps", "2", "--mask", str(mask),
                   "--style-loss", "sliced_wasserstein", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "out.png").size == (48, 32)
    bad = run_cli(*args, "-o", str(tmp_path / "bad.png"), "--mask", str(STYLE / "the_scream.jpg"))
    assert bad.returncode == 2 and "mask" in bad.stderr
    assert not (tmp_path / "bad.png").exists()


def test_cli_reports_a_bad_parameter(tmp_path):
    done = run_cli(
        str(CONTENT / "chelsea.png"),
        str(STYLE / "the_scream.jpg"),
        "-o",
        str(tmp_path / "x.png"),
        "--steps",
        "0",
    )
    assert done.returncode == 2
    assert "steps must be an integer in [1, 10000]" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_cli_help_lists_every_parameter():
    import dataclasses

    from nst.params import StyleParams

    done = run_cli("--help")
    for f in dataclasses.fields(StyleParams):
        assert "--" + f.name.replace("_", "-") in done.stdout
