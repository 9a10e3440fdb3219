"""nst-build-mar and nst's first run on a machine without weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from nst_server import RESOURCES


def offline_env(tmp_path: Path) -> dict[str, str]:
    """No NST_WEIGHTS, an empty torch cache, and a download address on a loopback port that
    nobody listens on (stands for "no network")."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "NST_WEIGHTS"}
    return env | {
        "TORCH_HOME": str(tmp_path / "torch"),
        "NST_WEIGHTS_URL": f"http://127.0.0.1:{port}/vgg19-dcbb9e9d.pth",
    }


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_no_weights_and_no_network_is_one_clear_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "nst_server.mar", "--out", str(tmp_path)],
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    line = one_error_line(done)
    assert "could not download" in line and "NST_WEIGHTS" in line
    assert "`nst-fetch-weights" in line and "make " not in line  # commands an installed user has
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in done.stdout  # where it tried
    assert not list(tmp_path.glob("*.mar"))


def run_nst(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    photo = RESOURCES / "examples/astronaut.jpg"
    command = [sys.executable, "-m", "nst", str(photo), str(photo), "-o", str(tmp_path / "o.png")]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_nst_without_weights_or_network_says_what_to_do(tmp_path):
    done = run_nst(tmp_path, offline_env(tmp_path))
    assert done.returncode == 2
    line = one_error_line(done)
    assert "could not download" in line and "`nst-fetch-weights`" in line and "NST_WEIGHTS" in line
    assert not (tmp_path / "o.png").exists()


def test_nst_with_a_missing_weights_file_names_the_commands(tmp_path):
    missing = tmp_path / "nowhere.safetensors"
    done = run_nst(tmp_path, offline_env(tmp_path) | {"NST_WEIGHTS": str(missing)})
    assert done.returncode == 2
    line = one_error_line(done)
    assert str(missing) in line and "`nst-fetch-weights`" in line and "make " not in line


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"max_size": "1024"}, "handler.max_size"),  # a quoted number
        ({"precision": "fp16"}, "handler.precision"),
        ({"style_cache_mb": -1}, "handler.style_cache_mb"),
        ({"compile": "yes"}, "handler.compile"),
        ({"deadline_margin_s": 400}, "handler.deadline_margin_s"),  # responseTimeout is 300
        ({"cpu_defaults": {"steps": 5000}}, "handler.cpu_defaults"),
        ({"max_sise": 3}, "max_sise"),
    ],
)
def test_an_override_with_a_bad_handler_block_is_refused_in_one_line(tmp_path, block, key):
    """What the container's entrypoint runs on a ConfigMap: one line naming the key, a
    non-zero exit, no archive."""
    override = tmp_path / "model-overrides.yaml"
    override.write_text(yaml.safe_dump({"handler": block}))
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-m", "nst_server.mar", "--override", str(override), "--out", str(store)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    line = one_error_line(done)
    assert line.startswith("nst-build-mar: ") and key in line
    assert not store.exists()


def test_an_archive_is_up_to_date_for_what_it_was_built_from(tmp_path, weights_path):
    """What ``nst-server start`` keeps: an archive of this code, whatever config it packs,
    unless a --model-config or --weights is asked that it does not pack."""
    from nst_server.mar import DEFAULT_CONFIG, build, up_to_date

    override = tmp_path / "override.yaml"
    override.write_text("batchSize: 1\n")
    store = tmp_path / "store"
    build(weights_path, DEFAULT_CONFIG, store, override=override)
    assert up_to_date(store) and up_to_date(store, weights=weights_path)
    assert not up_to_date(store, DEFAULT_CONFIG)  # the override is not the shipped config
    assert not up_to_date(store, weights=tmp_path / "other.safetensors")
    assert not up_to_date(tmp_path / "empty")
    with zipfile.ZipFile(store / "style_transfer.mar") as mar:  # unpacked at each start
        assert {e.compress_type for e in mar.infolist()} == {zipfile.ZIP_STORED}


def test_the_code_digest_follows_every_file_the_workers_read(tmp_path, monkeypatch):
    """A changed module or stub (``nst`` loads its exports from ``__init__.pyi``) makes the
    archive out of date; bytecode caches and other files do not."""
    import shutil

    from nst_server import mar

    copies = {name: tmp_path / name for name in mar.PACKAGES}
    for name, copy in copies.items():
        shutil.copytree(mar.package_dir(name), copy)
    monkeypatch.setattr(mar, "package_dir", copies.__getitem__)
    digests = [mar.code_digest()]
    (copies["nst"] / "__pycache__").mkdir(exist_ok=True)
    (copies["nst"] / "__pycache__" / "extra.pyc").write_bytes(b"cache")
    (copies["nst"] / "notes.txt").write_text("not code")
    digests.append(mar.code_digest())
    for changed in ("__init__.pyi", "job.py"):
        with (copies["nst"] / changed).open("a") as file:
            file.write("\n# changed\n")
        digests.append(mar.code_digest())
    assert digests[0] == digests[1] and len(set(digests)) == 3


def test_the_depth_of_the_packed_weights_is_read_without_loading_them(tmp_path, weights_path):
    """What the jobs API checks a submit's layers against, before the job is queued."""
    from nst import ParamError, StyleParams, check_layers_depth
    from nst.layers import layer_names
    from nst.weights import save_weights
    from nst_server.mar import DEFAULT_CONFIG, build, packed_depth
    from tests.nst.test_weights import CAFFE, synthetic_features

    short = tmp_path / "to-conv3_1.safetensors"
    save_weights(short, synthetic_features(10), CAFFE)  # features[10] is conv3_1
    depth = packed_depth(build(short, DEFAULT_CONFIG, tmp_path / "store"))
    assert depth == 12 and layer_names()[depth - 1] == "relu3_1"
    check_layers_depth(StyleParams(content_layers=("relu2_2",), style_layers=("relu3_1",)), depth)
    with pytest.raises(ParamError, match="deeper than the loaded weights") as refused:
        check_layers_depth(StyleParams(content_layers=("relu2_2",)), depth)  # relu4_1.. styles
    assert refused.value.field == "style_layers"
    full = packed_depth(build(weights_path, DEFAULT_CONFIG, tmp_path / "full"))
    assert full is not None and layer_names()[full - 1] == "relu5_1"
    assert packed_depth(tmp_path / "absent.mar") is None
    assert packed_depth(short) is None  # not an archive
