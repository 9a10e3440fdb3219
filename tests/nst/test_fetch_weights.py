"""Fetching the official weights: hash check, conversion, download over loopback, failures."""

import functools
import hashlib
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from torchvision.models import vgg19

from nst import fetch_weights as fetch
from nst.layers import layer_names
from nst.weights import TORCHVISION_CONVENTION, load_weights


def test_converts_a_full_torchvision_state_dict(tmp_path):
    model = vgg19(weights=None)  # real key names and shapes, random values
    checkpoint = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(model.state_dict(), checkpoint)
    out = tmp_path / "vgg19.safetensors"
    assert fetch.convert(checkpoint, out, "test") == 32  # 16 convs x (weight, bias)
    weights = load_weights(out)
    assert weights.convention == TORCHVISION_CONVENTION
    assert layer_names()[weights.last_index] == "conv5_4"
    assert torch.equal(weights.state_dict["features.34.weight"], model.features[34].weight)


def test_hash_prefix_comes_from_the_official_url():
    assert (
        fetch.expected_prefix("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth")
        == "dcbb9e9d"
    )


def test_verify_rejects_a_wrong_checksum():
    url = "https://example.invalid/vgg19-dcbb9e9d.pth"
    fetch.verify("dcbb9e9d" + "0" * 56, url, None)
    with pytest.raises(fetch.FetchError, match="does not start with"):
        fetch.verify(hashlib.sha256(b"other").hexdigest(), url, None)
    with pytest.raises(fetch.FetchError, match="mismatch"):
        fetch.verify("dcbb9e9d" + "0" * 56, url, "dcbb9e9d" + "1" * 56)


@pytest.fixture
def checkpoint_server(tmp_path):
    """A loopback HTTP server offering a VGG19 checkpoint named with its real hash prefix."""
    model = vgg19(weights=None)
    raw = tmp_path / "raw.pth"
    torch.save(model.state_dict(), raw)
    prefix = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    served = tmp_path / "served"
    served.mkdir()
    raw.rename(served / f"vgg19-{prefix}.pth")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/vgg19-{prefix}.pth", model
    httpd.shutdown()


def test_fetch_downloads_verifies_and_converts(tmp_path, checkpoint_server):
    url, model = checkpoint_server
    out = tmp_path / "weights/vgg19.safetensors"
    assert fetch.main(["-o", str(out), "--url", url]) == 0
    weights = load_weights(out)
    assert torch.equal(weights.state_dict["features.0.weight"], model.features[0].weight)
    assert fetch.main(["-o", str(out), "--url", url, "--if-missing"]) == 0  # no second download


def test_fetch_refuses_a_download_whose_hash_is_not_the_names(tmp_path, checkpoint_server):
    url, _ = checkpoint_server
    wrong = url.rsplit("-", 1)[0] + "-00000000.pth"
    with pytest.raises(fetch.FetchError):  # the server has no such file: 404
        fetch.fetch(tmp_path / "w.safetensors", wrong)


def test_an_unreachable_address_is_one_line_of_advice(tmp_path, capsys):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/vgg19-dcbb9e9d.pth"
    assert fetch.main(["-o", str(tmp_path / "w.safetensors"), "--url", url]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NST_WEIGHTS" in err and "`nst-fetch-weights" in err
    assert "make " not in err  # commands an installed user has


@pytest.fixture
def local_checkpoint(tmp_path):
    """A VGG19 checkpoint on disk (random values, real names) and its sha256."""
    model = vgg19(weights=None)
    path = tmp_path / "vgg19-local.pth"
    torch.save(model.state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), model


def test_a_local_checkpoint_must_carry_the_official_hash_or_the_given_one(
    tmp_path, local_checkpoint
):
    path, sha256, model = local_checkpoint
    out = tmp_path / "out.safetensors"
    with pytest.raises(fetch.FetchError, match="does not start with dcbb9e9d"):
        fetch.from_file(path, out)  # not torchvision's official file
    with pytest.raises(fetch.FetchError, match="mismatch"):
        fetch.from_file(path, out, "0" * 64)
    assert not out.exists()
    assert fetch.main(["-o", str(out), "--from", str(path), "--sha256", sha256]) == 0
    weights = load_weights(out)
    assert torch.equal(weights.state_dict["features.0.weight"], model.features[0].weight)


def test_local_safetensors_need_a_sha256_and_are_copied_as_they_are(tmp_path, weights_path):
    out = tmp_path / "copy.safetensors"
    with pytest.raises(fetch.FetchError, match="needs --sha256"):
        fetch.from_file(weights_path, out)
    sha256 = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    assert fetch.from_file(weights_path, out, sha256) == len(load_weights(weights_path).state_dict)
    assert out.read_bytes() == weights_path.read_bytes()


def test_a_missing_or_unreadable_local_file_is_one_line_of_advice(tmp_path, capsys):
    missing = tmp_path / "vgg19-dcbb9e9d.pth"
    assert fetch.main(["-o", str(tmp_path / "w.safetensors"), "--from", str(missing)]) == 1
    assert "not found" in capsys.readouterr().err
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    sha256 = hashlib.sha256(broken.read_bytes()).hexdigest()
    argv = ["-o", str(tmp_path / "w.safetensors"), "--from", str(broken), "--sha256", sha256]
    assert fetch.main(argv) == 1
    assert "not a readable safetensors file" in capsys.readouterr().err
    broken_checkpoint = tmp_path / "broken.pth"
    broken_checkpoint.write_bytes(b"not a checkpoint")
    sha256 = hashlib.sha256(broken_checkpoint.read_bytes()).hexdigest()
    argv = ["-o", str(tmp_path / "w.safetensors"), "--from", str(broken_checkpoint)]
    assert fetch.main([*argv, "--sha256", sha256]) == 1
    assert "not a loadable weights-only state dict" in capsys.readouterr().err


def test_the_default_output_is_the_torch_hub_cache(tmp_path, monkeypatch):
    """Where torchvision keeps its checkpoints, following TORCH_HOME, as the engine looks."""
    from nst.weights import CACHED_NAME, cached_weights, weights_candidates

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("NST_WEIGHTS", raising=False)
    expected = tmp_path / "torch" / "hub" / "checkpoints" / CACHED_NAME
    assert cached_weights() == expected
    assert weights_candidates()[0] == expected
    assert fetch.parser().get_default("output") == expected
