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
from nst.weights import TORCHVISION_CONVENTION, load_weights


def test_converts_a_full_torchvision_state_dict(tmp_path):
    model = vgg19(weights=None)  # real key names and shapes, random values
    checkpoint = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(model.state_dict(), checkpoint)
    out = tmp_path / "vgg19.safetensors"
    assert fetch.convert(checkpoint, out, "test") == 32  # 16 convs x (weight, bias)
    weights = load_weights(out)
    assert weights.convention == TORCHVISION_CONVENTION
    assert weights.deepest_layer == "conv5_4"
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
    assert len(err.splitlines()) == 1 and "NST_WEIGHTS" in err and "make weights" in err
